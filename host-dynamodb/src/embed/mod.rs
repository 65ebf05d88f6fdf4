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
//! assert_eq!(refused.message, "must be an integer from 1 to 4294967295, got 0");
//! ```

mod settings;

use fleetbreaker_core::{ConfigError, Record, Stored};

/// The refusal of a second, different configuration for a circuit already in use in an
/// environment (the packages keep their own handles per name, and refuse with this).
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

pub use settings::{
    Casing, MAX_SECONDS, MAX_STORE_TIMEOUT_SECONDS, Settings, Value, check_name,
    override_duration_ms, store_timeout_conflict,
};
