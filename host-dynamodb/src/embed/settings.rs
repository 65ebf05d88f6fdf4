//! The configuration as the languages write it: the Powertools field names, durations in
//! seconds, every limit, and the one text for each refusal. The Python and Node packages hand
//! their users' values over as [`Value`]s; what comes back is the same [`ConfigError`] in both,
//! with only the field names cased for the language.

use std::borrow::Cow;
use std::fmt;

use fleetbreaker_core::config::MAX_MINIMUM_ENVIRONMENTS;
use fleetbreaker_core::{Config, ConfigError, FailurePolicy, FailureRate, StoreFailureMode};

/// A user's value, as a binding read it, before any check. Bindings map their own types onto
/// these and nothing more: the checks and the texts are the same for every language.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `None` in Python, `null` in JavaScript.
    Null,
    /// A boolean (never taken for a number).
    Bool(bool),
    /// A whole number: a Python `int`, or a JavaScript number with no fraction.
    Int(i64),
    /// Any other number (a Python `float`, an `int` too large for 64 bits).
    Float(f64),
    /// A string.
    Text(String),
    /// A string that is not valid Unicode (a lone surrogate): it cannot reach a log or a key.
    BadText,
    /// Anything else, by the language's own name for its type (`list`, `object`, ...).
    Other(String),
}

impl Value {
    fn number(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }
}

/// How a value is shown in a refusal: the same text whichever language the value came from.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) if x.is_nan() => f.write_str("NaN"),
            Value::Float(x) if x.is_infinite() => {
                f.write_str(if *x > 0.0 { "Infinity" } else { "-Infinity" })
            }
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Text(s) => write!(f, "{:?}", s.chars().take(64).collect::<String>()),
            Value::BadText => f.write_str("a string with a lone surrogate"),
            Value::Other(kind) => write!(f, "a value of type {kind}"),
        }
    }
}

/// How a language spells field names: Python `failure_threshold`, Node `failureThreshold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Casing {
    /// `snake_case` (Python, Rust).
    Snake,
    /// `camelCase` (JavaScript).
    Camel,
}

impl Casing {
    /// `snake` (a field's snake_case name) spelled this way.
    pub fn spell(self, snake: &'static str) -> Cow<'static, str> {
        match self {
            Casing::Snake => Cow::Borrowed(snake),
            Casing::Camel => {
                let mut out = String::with_capacity(snake.len());
                let mut upper = false;
                for c in snake.chars() {
                    if c == '_' {
                        upper = true;
                    } else if upper {
                        out.push(c.to_ascii_uppercase());
                        upper = false;
                    } else {
                        out.push(c);
                    }
                }
                Cow::Owned(out)
            }
        }
    }
}

/// Longest accepted duration, in seconds: ten years (a longer one is a unit mistake).
pub const MAX_SECONDS: f64 = (fleetbreaker_core::config::MAX_DURATION_MS / 1000) as f64;

/// Longest accepted store deadline, in seconds: a store call that may take longer than this
/// holds a caller far past any function's patience.
pub const MAX_STORE_TIMEOUT_SECONDS: f64 = 60.0;

/// The shortest positive duration: one millisecond, the unit everything is kept in.
const MIN_POSITIVE_SECONDS: f64 = 0.001;

/// Why a field's value was refused; becomes a [`ConfigError`] once the field is spelled.
struct Refusal(String);

fn count(value: &Value) -> Result<u32, Refusal> {
    match *value {
        Value::Int(i) if (1..=i64::from(u32::MAX)).contains(&i) => Ok(i as u32),
        _ => Err(Refusal(format!(
            "must be an integer from 1 to {}, got {value}",
            u32::MAX
        ))),
    }
}

fn optional_count(value: &Value) -> Result<Option<u32>, Refusal> {
    match value {
        Value::Null => Ok(None),
        _ => count(value).map(Some).map_err(|_| {
            Refusal(format!(
                "must be absent or an integer from 1 to {}, got {value}",
                u32::MAX
            ))
        }),
    }
}

fn optional_rate(value: &Value) -> Result<Option<f64>, Refusal> {
    match (value, value.number()) {
        (Value::Null, _) => Ok(None),
        (_, Some(r)) if r > 0.0 && r <= 1.0 => Ok(Some(r)),
        _ => Err(Refusal(format!(
            "must be absent or a number above 0 and at most 1, got {value}"
        ))),
    }
}

fn environments(value: &Value) -> Result<u32, Refusal> {
    let max = MAX_MINIMUM_ENVIRONMENTS;
    match *value {
        Value::Int(i) if (1..=i64::from(max)).contains(&i) => Ok(i as u32),
        _ => Err(Refusal(format!(
            "must be an integer from 1 to {max}, got {value}"
        ))),
    }
}

/// A range of seconds a duration field accepts, and how its refusal says so.
struct Seconds {
    min: f64,
    max: f64,
    note: &'static str,
}

impl Seconds {
    fn check(&self, value: &Value) -> Result<f64, Refusal> {
        match value.number() {
            Some(s) if (self.min..=self.max).contains(&s) => Ok(s),
            _ => Err(self.refusal("", value)),
        }
    }

    fn refusal(&self, absent: &str, value: &Value) -> Refusal {
        let Seconds { min, max, note } = self;
        Refusal(format!(
            "must be {absent}a number of seconds from {min} to {max}{note}, got {value}"
        ))
    }
}

const DURATION: Seconds = Seconds {
    min: MIN_POSITIVE_SECONDS,
    max: MAX_SECONDS,
    note: " (ten years)",
};
const DURATION_OR_ZERO: Seconds = Seconds {
    min: 0.0,
    ..DURATION
};
const STORE_TIMEOUT: Seconds = Seconds {
    min: MIN_POSITIVE_SECONDS,
    max: MAX_STORE_TIMEOUT_SECONDS,
    note: "",
};

fn duration(value: &Value) -> Result<f64, Refusal> {
    DURATION.check(value)
}

fn duration_or_zero(value: &Value) -> Result<f64, Refusal> {
    DURATION_OR_ZERO.check(value)
}

fn optional_duration(value: &Value) -> Result<Option<f64>, Refusal> {
    match value {
        Value::Null => Ok(None),
        _ => DURATION
            .check(value)
            .map(Some)
            .map_err(|_| DURATION.refusal("absent or ", value)),
    }
}

fn store_timeout(value: &Value) -> Result<f64, Refusal> {
    STORE_TIMEOUT.check(value)
}

fn multiplier(value: &Value) -> Result<f64, Refusal> {
    match value.number() {
        Some(m) if m.is_finite() && m >= 1.0 => Ok(m),
        _ => Err(Refusal(format!(
            "must be a finite number of at least 1, got {value}"
        ))),
    }
}

fn fraction(value: &Value) -> Result<f64, Refusal> {
    match value.number() {
        Some(j) if (0.0..=1.0).contains(&j) => Ok(j),
        _ => Err(Refusal(format!(
            "must be a number from 0 to 1, got {value}"
        ))),
    }
}

fn mode(value: &Value) -> Result<StoreFailureMode, Refusal> {
    match value {
        Value::Text(s) if s == "open" => Ok(StoreFailureMode::Open),
        Value::Text(s) if s == "closed" => Ok(StoreFailureMode::Closed),
        _ => Err(Refusal(format!(
            "must be \"open\" or \"closed\", got {value}"
        ))),
    }
}

/// A checked field's value as the packages show it.
trait Shown {
    fn shown(&self) -> Value;
}

impl Shown for Option<u32> {
    fn shown(&self) -> Value {
        self.map_or(Value::Null, |n| n.shown())
    }
}

impl Shown for u32 {
    fn shown(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl Shown for f64 {
    fn shown(&self) -> Value {
        Value::Float(*self)
    }
}

impl Shown for Option<f64> {
    fn shown(&self) -> Value {
        self.map_or(Value::Null, Value::Float)
    }
}

impl Shown for StoreFailureMode {
    fn shown(&self) -> Value {
        Value::Text(
            match self {
                StoreFailureMode::Open => "open",
                StoreFailureMode::Closed => "closed",
            }
            .into(),
        )
    }
}

/// Declares the settings once: the struct, its defaults, its field names and their checks.
macro_rules! settings {
    ($( $(#[$doc:meta])* $field:ident: $ty:ty = $default:expr, checked by $check:ident; )*) => {
        /// A circuit's configuration as the Python and Node packages take it (durations in
        /// seconds; the Powertools names and defaults). [`Settings::parse`] checks it;
        /// [`Settings::config`] is what the breaker runs on.
        #[derive(Clone, Debug, PartialEq)]
        pub struct Settings {
            $( $(#[$doc])* pub $field: $ty, )*
        }

        impl Default for Settings {
            fn default() -> Settings {
                Settings { $( $field: $default, )* }
            }
        }

        impl Settings {
            /// Every field's name, in snake_case, in declaration order.
            pub const FIELDS: &'static [&'static str] = &[$( stringify!($field) ),*];

            /// Every field's name (snake_case) and value as given, in declaration order.
            fn given_values(&self) -> Vec<(&'static str, Value)> {
                vec![$( (stringify!($field), Shown::shown(&self.$field)) ),*]
            }

            fn set(&mut self, snake: &str, value: &Value) -> Option<Result<(), Refusal>> {
                match snake {
                    $( stringify!($field) => Some($check(value).map(|v| self.$field = v)), )*
                    _ => None,
                }
            }
        }
    };
}

settings! {
    /// Consecutive counted failures in one environment that open the circuit (absent: 5,
    /// unless `failure_rate_threshold` selects the failure-rate policy).
    failure_threshold: Option<u32> = None, checked by optional_count;
    /// The fleet's share of failed calls in the window that opens the circuit; setting it
    /// selects the failure-rate policy.
    failure_rate_threshold: Option<f64> = None, checked by optional_rate;
    /// Under the failure-rate policy: the fleet's calls the window must hold before its rate
    /// counts.
    minimum_calls: u32 = 100, checked by count;
    /// Seconds the circuit stays open before one call may probe.
    recovery_timeout: f64 = 30.0, checked by duration;
    /// Probe successes that close a half-open circuit.
    success_threshold: u32 = 3, checked by count;
    /// Seconds a read of the shared record is trusted (and the admission lease lasts).
    local_cache_max_age: f64 = 5.0, checked by duration_or_zero;
    /// Each further trip multiplies the break by this (1: a fixed break).
    backoff_multiplier: f64 = 1.0, checked by multiplier;
    /// The longest break, in seconds (`None`: see [`Config::max_recovery_timeout`]).
    max_recovery_timeout: Option<f64> = None, checked by optional_duration;
    /// Up to this fraction of the break is added at random.
    recovery_jitter: f64 = 0.0, checked by fraction;
    /// Seconds one call holds the probe permit (`None`: see [`Config::probe_lease`]).
    probe_lease: Option<f64> = None, checked by optional_duration;
    /// The deadline of every store call, in seconds.
    store_timeout: f64 = 1.0, checked by store_timeout;
    /// After a store error, seconds to protect locally before asking the store again.
    store_retry_after: f64 = 5.0, checked by duration_or_zero;
    /// While the store cannot be reached: admit calls (`open`) or reject them (`closed`).
    store_failure_mode: StoreFailureMode = StoreFailureMode::Open, checked by mode;
    /// Distinct environments that must have seen the failures before the circuit trips for
    /// the fleet (1: any one, as in Powertools).
    minimum_environments: u32 = 1, checked by environments;
    /// Seconds of the fleet's sliding window: the failure-rate policy's rate is taken over it,
    /// and another environment's failures count toward `minimum_environments` within it.
    window: f64 = 60.0, checked by duration;
    /// Seconds after which a successful call counts as a failure (a slow call); `None`: no
    /// call is too slow.
    slow_call: Option<f64> = None, checked by optional_duration;
}

/// A number of seconds as a refusal shows it: whole ones without a fraction.
fn shown(seconds: f64) -> Value {
    if seconds.fract() == 0.0 && seconds.abs() < 1e15 {
        Value::Int(seconds as i64)
    } else {
        Value::Float(seconds)
    }
}

fn ms(seconds: f64) -> u64 {
    (seconds * 1000.0).round() as u64
}

impl Settings {
    /// Checks `fields` (names spelled per `casing`; an absent field takes its default) and
    /// gives the settings, or the first refusal, naming the field and the value.
    pub fn parse<K: AsRef<str>>(
        casing: Casing,
        fields: impl IntoIterator<Item = (K, Value)>,
    ) -> Result<Settings, ConfigError> {
        let mut settings = Settings::default();
        let mut cap_given = None;
        for (key, value) in fields {
            let key = key.as_ref();
            let snake = Settings::FIELDS
                .iter()
                .copied()
                .find(|f| casing.spell(f) == key);
            let Some(snake) = snake else {
                let known: Vec<_> = Settings::FIELDS.iter().map(|f| casing.spell(f)).collect();
                return Err(ConfigError {
                    field: "config".into(),
                    message: format!(
                        "has no field {:?}; the fields are {}",
                        key.chars().take(64).collect::<String>(),
                        known.join(", ")
                    ),
                });
            };
            if let Some(Err(Refusal(message))) = settings.set(snake, &value) {
                return Err(ConfigError {
                    field: casing.spell(snake).into_owned(),
                    message,
                });
            }
            if snake == "max_recovery_timeout" {
                cap_given = Some(value);
            }
        }
        if settings.failure_threshold.is_some() && settings.failure_rate_threshold.is_some() {
            return Err(ConfigError {
                field: casing.spell("failure_rate_threshold").into_owned(),
                message: format!(
                    "cannot be set together with {}: each selects a failure policy (the \
                     fleet's failure rate, or consecutive failures in one environment); set one",
                    casing.spell("failure_threshold")
                ),
            });
        }
        if let (Some(max), Some(given)) = (settings.max_recovery_timeout, cap_given)
            && max < settings.recovery_timeout
        {
            return Err(ConfigError {
                field: casing.spell("max_recovery_timeout").into_owned(),
                message: format!(
                    "must be at least {} ({}), got {given}",
                    casing.spell("recovery_timeout"),
                    shown(settings.recovery_timeout)
                ),
            });
        }
        Ok(settings)
    }

    /// Every field's name (snake_case) and value, in declaration order: what the packages
    /// show as their config's attributes. An absent `failure_threshold` shows the default it
    /// stands for (none under the failure-rate policy).
    pub fn values(&self) -> Vec<(&'static str, Value)> {
        let mut values = self.given_values();
        if let Some((_, shown)) = values.iter_mut().find(|(f, _)| *f == "failure_threshold") {
            *shown = match self.config().failure_policy {
                FailurePolicy::ConsecutiveFailures(n) => n.shown(),
                FailurePolicy::FailureRate(_) => Value::Null,
            };
        }
        values
    }

    /// What the breaker runs on (milliseconds).
    pub fn config(&self) -> Config {
        let failure_policy = match self.failure_rate_threshold {
            Some(threshold) => FailurePolicy::FailureRate(FailureRate {
                threshold,
                minimum_calls: self.minimum_calls,
            }),
            None => FailurePolicy::ConsecutiveFailures(
                self.failure_threshold
                    .unwrap_or(Config::default().failure_threshold()),
            ),
        };
        Config {
            failure_policy,
            recovery_timeout_ms: ms(self.recovery_timeout),
            success_threshold: self.success_threshold,
            local_cache_max_age_ms: ms(self.local_cache_max_age),
            backoff_multiplier: self.backoff_multiplier,
            max_recovery_timeout_ms: self.max_recovery_timeout.map(ms),
            recovery_jitter: self.recovery_jitter,
            probe_lease_ms: self.probe_lease.map(ms),
            store_retry_after_ms: ms(self.store_retry_after),
            store_failure_mode: self.store_failure_mode,
            minimum_environments: self.minimum_environments,
            window_ms: ms(self.window),
            slow_call_ms: self.slow_call.map(ms),
        }
    }

    /// The store deadline.
    pub fn store_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.store_timeout)
    }
}

/// Checks a circuit name as a language passed it: a string, not empty, at most
/// [`MAX_NAME_BYTES`](fleetbreaker_core::config::MAX_NAME_BYTES) bytes, no control characters.
pub fn check_name(value: Value) -> Result<String, ConfigError> {
    match value {
        Value::Text(name) => fleetbreaker_core::config::validate_name(&name).map(|()| name),
        other => Err(ConfigError {
            field: "name".into(),
            message: format!("must be a string of valid Unicode, got {other}"),
        }),
    }
}

/// The refusal of a breaker whose store deadline differs from the one its persistence object
/// already connected with (one connection, one deadline).
pub fn store_timeout_conflict(casing: Casing, in_use: f64, given: f64) -> ConfigError {
    let field = casing.spell("store_timeout");
    ConfigError {
        message: format!(
            "must be the {} s this persistence store already uses, got {}; give breakers with \
             another {field} their own persistence store",
            shown(in_use),
            shown(given)
        ),
        field: field.into_owned(),
    }
}

/// Checks an operator override's duration as a language passed it (seconds; absent or null:
/// until changed) and gives it in milliseconds.
pub fn override_duration_ms(value: Value) -> Result<Option<u64>, ConfigError> {
    optional_duration(&value)
        .map(|seconds| seconds.map(ms))
        .map_err(|Refusal(message)| ConfigError {
            field: "duration".into(),
            message,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(casing: Casing, fields: &[(&str, Value)]) -> Result<Settings, ConfigError> {
        Settings::parse(casing, fields.iter().cloned())
    }

    #[test]
    fn no_fields_give_the_powertools_defaults() {
        let s = parse(Casing::Snake, &[]).unwrap();
        assert_eq!(s.config(), Config::default());
        assert_eq!(s.store_timeout(), std::time::Duration::from_secs(1));
    }

    #[test]
    fn values_show_every_field_in_order_and_parse_back_to_the_same_settings() {
        let s = parse(Casing::Snake, &[("probe_lease", Value::Int(45))]).unwrap();
        let values = s.values();
        let names: Vec<_> = values.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, Settings::FIELDS);
        assert!(values.contains(&("probe_lease", Value::Float(45.0))));
        assert!(values.contains(&("store_failure_mode", Value::Text("open".into()))));
        let again = Settings::parse(Casing::Snake, values).unwrap();
        assert_eq!(again.config(), s.config());
        assert_eq!(again.values(), s.values());
    }

    #[test]
    fn a_failure_rate_threshold_selects_the_rate_policy_and_shows_no_consecutive_threshold() {
        let s = parse(
            Casing::Camel,
            &[
                ("failureRateThreshold", Value::Float(0.25)),
                ("minimumCalls", Value::Int(40)),
            ],
        )
        .unwrap();
        assert_eq!(
            s.config().failure_policy,
            FailurePolicy::FailureRate(FailureRate {
                threshold: 0.25,
                minimum_calls: 40
            })
        );
        assert!(s.values().contains(&("failure_threshold", Value::Null)));
        let consecutive = parse(Casing::Snake, &[]).unwrap();
        assert!(
            consecutive
                .values()
                .contains(&("failure_threshold", Value::Int(5)))
        );
        let err = parse(
            Casing::Camel,
            &[
                ("failureThreshold", Value::Int(5)),
                ("failureRateThreshold", Value::Float(0.25)),
            ],
        )
        .unwrap_err();
        assert_eq!(err.field, "failureRateThreshold");
        assert!(
            err.message.contains("together with failureThreshold"),
            "{err}"
        );
    }

    #[test]
    fn camel_case_names_are_node_spelling_of_the_same_fields() {
        let s = parse(
            Casing::Camel,
            &[
                ("failureThreshold", Value::Int(2)),
                ("maxRecoveryTimeout", Value::Float(90.5)),
                ("storeFailureMode", Value::Text("closed".into())),
            ],
        )
        .unwrap();
        assert_eq!(s.failure_threshold, Some(2));
        assert_eq!(s.config().max_recovery_timeout_ms, Some(90_500));
        assert_eq!(s.store_failure_mode, StoreFailureMode::Closed);
        let err = parse(Casing::Camel, &[("failure_threshold", Value::Int(2))]).unwrap_err();
        assert_eq!(err.field, "config");
        assert!(err.message.contains("failureThreshold"), "{err}");
    }

    #[test]
    fn a_refusal_names_the_field_as_the_language_spells_it_and_shows_the_value() {
        let err = parse(
            Casing::Camel,
            &[("recoveryTimeout", Value::Float(f64::NAN))],
        )
        .unwrap_err();
        assert_eq!(err.field, "recoveryTimeout");
        assert_eq!(
            err.message,
            "must be a number of seconds from 0.001 to 316224000 (ten years), got NaN"
        );
        let err = parse(Casing::Snake, &[("failure_threshold", Value::Bool(true))]).unwrap_err();
        assert_eq!(err.field, "failure_threshold");
        assert_eq!(
            err.message,
            "must be absent or an integer from 1 to 4294967295, got true"
        );
    }

    #[test]
    fn a_cap_below_the_break_is_refused_naming_both_fields() {
        let err = parse(
            Casing::Camel,
            &[
                ("recoveryTimeout", Value::Int(60)),
                ("maxRecoveryTimeout", Value::Int(10)),
            ],
        )
        .unwrap_err();
        assert_eq!(err.field, "maxRecoveryTimeout");
        assert_eq!(err.message, "must be at least recoveryTimeout (60), got 10");
    }

    #[test]
    fn every_duration_that_rounds_to_a_millisecond_is_accepted_and_none_below() {
        let s = parse(Casing::Snake, &[("recovery_timeout", Value::Float(0.001))]).unwrap();
        assert_eq!(s.config().recovery_timeout_ms, 1);
        assert!(parse(Casing::Snake, &[("recovery_timeout", Value::Float(0.0004))]).is_err());
        assert!(s.config().validate().is_ok());
    }

    #[test]
    fn an_override_lasts_whole_milliseconds_or_until_changed() {
        assert_eq!(
            override_duration_ms(Value::Float(1.5)).unwrap(),
            Some(1_500)
        );
        assert_eq!(override_duration_ms(Value::Null).unwrap(), None);
        let err = override_duration_ms(Value::Int(-1)).unwrap_err();
        assert_eq!(err.field, "duration");
        assert!(err.message.ends_with("got -1"), "{err}");
    }

    #[test]
    fn a_second_store_deadline_on_one_persistence_object_is_refused_by_name() {
        let err = store_timeout_conflict(Casing::Camel, 1.0, 2.5);
        assert_eq!(err.field, "storeTimeout");
        assert_eq!(
            err.message,
            "must be the 1 s this persistence store already uses, got 2.5; give breakers with \
             another storeTimeout their own persistence store"
        );
    }

    #[test]
    fn names_are_checked_once_for_every_language() {
        assert_eq!(
            check_name(Value::Text("payments".into())).unwrap(),
            "payments"
        );
        let err = check_name(Value::BadText).unwrap_err();
        assert_eq!(err.field, "name");
        assert_eq!(
            err.message,
            "must be a string of valid Unicode, got a string with a lone surrogate"
        );
        assert_eq!(
            check_name(Value::Text(String::new())).unwrap_err().message,
            "must not be empty"
        );
    }
}
