//! What the language packages wrap, so that they only parse arguments, convert results and
//! raise their language's errors: the configuration as users write it ([`Settings`]), and the
//! circuit-name and override-duration checks, each with the one text of its refusals.
//!
//! ```
//! use fleetbreaker::embed::{Casing, Settings, Value};
//!
//! let settings = Settings::parse(Casing::Camel, [("recoveryTimeout", Value::Int(10))]).unwrap();
//! assert_eq!(settings.config().recovery_timeout_ms, 10_000);
//!
//! let refused = Settings::parse(Casing::Snake, [("failure_threshold", Value::Int(0))]).unwrap_err();
//! assert_eq!(refused.field, "failure_threshold");
//! assert_eq!(refused.message, "must be absent or an integer from 1 to 4294967295, got 0");
//! ```

mod dynamodb;
mod operator;
mod persistence;
mod settings;
mod store;

use std::sync::atomic::{AtomicBool, Ordering};

use fleetbreaker_core::{CircuitInfo, ConfigError, Event, Record, Stored, Transition};

/// The refusal of a second, different configuration for a circuit already in use in an
/// environment (Node keeps its own handles per name, for its lease mirror, and refuses with
/// this; Python, when the configs differ only in their exception types).
pub fn config_conflict(name: &str) -> ConfigError {
    crate::environment::config_conflict(name)
}

/// A record as the packages show it (tests' and operators' looks): every field of the core's
/// one field list, by its snake_case name, as `Int`, `Text` or `Null`.
pub fn record_values(record: &Record) -> Vec<(&'static str, Value)> {
    record
        .to_stored()
        .into_iter()
        .map(|(field, value)| {
            let value = match value {
                None => Value::Null,
                // Times and counters are far below 2^63.
                Some(Stored::Number(n)) => Value::Int(n as i64),
                Some(Stored::Text(t)) => Value::Text(t),
            };
            (field, value)
        })
        .collect()
}

/// What a caller sees of a circuit, as the packages show it: every field of
/// [`CircuitInfo`] by its snake_case name (times in epoch ms, `None` as `Null`). Python shows
/// the `_ms` fields in seconds without the suffix, as Powertools does; Node keeps them.
pub fn info_values(info: CircuitInfo) -> Vec<(&'static str, Value)> {
    let ms = |v: Option<u64>| v.map_or(Value::Null, |n| Value::Int(n as i64));
    vec![
        ("name", Value::Text(info.name)),
        ("state", Value::Text(info.state.as_str().into())),
        ("failure_count", Value::Int(info.failure_count.into())),
        ("version", Value::Int(info.version as i64)),
        ("opened_at_ms", ms(info.opened_at_ms)),
        ("open_until_ms", ms(info.open_until_ms)),
        ("retry_after_ms", ms(info.retry_after_ms)),
        (
            "override_reason",
            info.override_reason.map_or(Value::Null, Value::Text),
        ),
        ("override_until_ms", ms(info.override_until_ms)),
        ("local_only", Value::Bool(info.local_only)),
        ("slow_call_count", Value::Int(info.slow_call_count.into())),
    ]
}

/// An event as the packages hand it to their code: what happened, to which circuit, the one
/// log line, and the details by snake_case name (in the order of the Python testing tuples).
#[derive(Clone, Debug, PartialEq)]
pub struct EventView {
    /// `transition`, `store_degraded`, `corrupt_record` or `store_recovered`.
    pub kind: &'static str,
    /// The circuit's name.
    pub circuit: String,
    /// The level to log it at.
    pub level: log::Level,
    /// The text to log.
    pub text: String,
    /// The details: a transition's `from_state`, `to_state`, `version`, `at_ms`,
    /// `opened_at_ms`, `reason`, `override_reason`, `local_only`, `failure_count`,
    /// `slow_call_count`; store trouble's `error` (its kind), `message` and, when degraded,
    /// `retry_at_ms`.
    pub fields: Vec<(&'static str, Value)>,
    /// How many of `fields`, from the first, a positional view (Python's event tuples) shows:
    /// fields added later are left out of it, so that unpacking it keeps working.
    pub positional: usize,
}

/// A transition's details as the packages show them (the `fields` of its [`EventView`]).
pub fn transition_values(t: &Transition) -> Vec<(&'static str, Value)> {
    let int = |n: u64| Value::Int(n as i64);
    vec![
        ("from_state", Value::Text(t.from_state.as_str().into())),
        ("to_state", Value::Text(t.to_state.as_str().into())),
        ("version", int(t.version)),
        ("at_ms", int(t.at_ms)),
        ("opened_at_ms", t.opened_at_ms.map_or(Value::Null, int)),
        ("reason", Value::Text(t.reason.as_str().into())),
        (
            "override_reason",
            t.override_reason.clone().map_or(Value::Null, Value::Text),
        ),
        ("local_only", Value::Bool(t.local_only)),
        ("failure_count", int(u64::from(t.failure_count))),
        ("slow_call_count", int(u64::from(t.slow_call_count))),
    ]
}

/// The view of `event`.
pub fn event_view(event: &Event) -> EventView {
    let (level, text) = crate::events::log_line(event);
    let int = |n: u64| Value::Int(n as i64);
    let (kind, circuit, fields) = match event {
        Event::Transition(t) => ("transition", &t.circuit, transition_values(t)),
        Event::StoreDegraded(f) => (
            "store_degraded",
            &f.circuit,
            vec![
                ("error", Value::Text(f.error.kind().into())),
                ("message", Value::Text(f.error.to_string())),
                ("retry_at_ms", int(f.retry_at_ms)),
            ],
        ),
        Event::CorruptRecord(f) => (
            "corrupt_record",
            &f.circuit,
            vec![("message", Value::Text(f.error.to_string()))],
        ),
        Event::StoreRecovered(c) => ("store_recovered", c, vec![]),
    };
    // Transitions gained their counts after the tuples were documented.
    let positional = if kind == "transition" {
        8
    } else {
        fields.len()
    };
    EventView {
        kind,
        circuit: circuit.clone(),
        level,
        text,
        fields,
        positional,
    }
}

/// The warning a package shows, once per process, when the kill switch lets a call through:
/// `Some` the first time it is asked for, `None` after.
pub fn disabled_warning() -> Option<&'static str> {
    static SHOWN: AtomicBool = AtomicBool::new(false);
    (!SHOWN.swap(true, Ordering::Relaxed)).then_some(
        "FLEETBREAKER_DISABLED (or POWERTOOLS_CIRCUIT_BREAKER_DISABLED) is set: circuit breakers \
         are bypassed. This is for development only; nothing protects the downstream.",
    )
}

/// An event's log level.
pub use log::Level;

pub use dynamodb::DynamoDbSettings;
pub use operator::{Action, Override};
pub use persistence::Persistence;
pub use store::{Misuse, StoreHandle};

pub use settings::{
    Casing, MAX_SECONDS, MAX_STORE_TIMEOUT_SECONDS, Settings, Value, check_name,
    override_duration_ms, store_timeout_conflict,
};
