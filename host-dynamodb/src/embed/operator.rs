//! An operator's action on a circuit, as the packages take it: one entry point for the three
//! actions, with the arguments checked here (the same refusals in every language).

use std::time::Duration;

use fleetbreaker_core::{CircuitInfo, ConfigError};

use super::{Value, override_duration_ms};
use crate::{Breaker, Delivery, Error};

/// What an operator does to a circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reject every call, fleet-wide.
    ForceOpen,
    /// Admit every call and count nothing, fleet-wide.
    ForceClosed,
    /// Write a fresh closed record.
    Reset,
}

impl Action {
    /// Every action, in declaration order: a binding's own enum maps to these by position.
    pub const ALL: [Action; 3] = [Action::ForceOpen, Action::ForceClosed, Action::Reset];
}

/// An action with its checked arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    action: Action,
    duration: Option<Duration>,
    reason: String,
}

impl Override {
    /// Checks `duration` (seconds; null: until changed) and `reason` (a string; null: none) as
    /// a language passed them. A reset takes neither.
    ///
    /// ```
    /// use fleetbreaker::embed::{Action, Override, Value};
    ///
    /// let refused = Override::parse(Action::ForceOpen, Value::Null, Value::Int(5)).unwrap_err();
    /// assert_eq!(refused.to_string(), "invalid reason: must be a string, got 5");
    /// ```
    pub fn parse(action: Action, duration: Value, reason: Value) -> Result<Override, ConfigError> {
        let duration = override_duration_ms(duration)?.map(Duration::from_millis);
        let reason = match reason {
            Value::Null => String::new(),
            Value::Text(s) => s,
            other => {
                return Err(ConfigError {
                    field: "reason".into(),
                    message: format!("must be a string, got {other}"),
                });
            }
        };
        Ok(Override {
            action,
            duration,
            reason,
        })
    }

    /// Applies it to `breaker`'s circuit; the events are for the caller to deliver.
    pub async fn apply(self, breaker: Breaker) -> Delivery<Result<CircuitInfo, Error>> {
        let b = breaker.with_events();
        match self.action {
            Action::ForceOpen => b.force_open(self.duration, &self.reason).await,
            Action::ForceClosed => b.force_closed(self.duration, &self.reason).await,
            Action::Reset => b.reset().await,
        }
    }
}
