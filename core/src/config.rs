//! Validation of names and configurations, done once when a circuit is created.

use crate::types::{Config, ConfigError, FailurePolicy, FailureRate};

/// Longest accepted circuit name, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;

/// The most environments a trip may wait for: a window's set of environments lives in one
/// store item per shard (DynamoDB items hold 400 KB).
pub const MAX_MINIMUM_ENVIRONMENTS: u32 = 1_000;

/// Longest accepted duration: ten years. Anything longer is a unit mistake, and the bound keeps
/// `now + duration` far from overflowing.
pub const MAX_DURATION_MS: u64 = 10 * 366 * 24 * 3600 * 1000;

fn refuse(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The shortest probe lease when none is configured: a probe slower than a short break must
/// not be taken over while it still runs (30 s: API Gateway's integration limit is 29 s).
pub const MIN_DEFAULT_PROBE_LEASE_MS: u64 = 30_000;

/// The cap of a growing break when none is configured (Envoy's default ejection cap): with a
/// multiplier above 1, twenty failed probes must not push the next one a year away.
pub const DEFAULT_MAX_RECOVERY_TIMEOUT_MS: u64 = 300_000;

/// Checks a circuit name: not empty, at most [`MAX_NAME_BYTES`], no control characters (names
/// reach logs, terminals and the CLI's table).
pub fn validate_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(refuse("name", "must not be empty"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(refuse(
            "name",
            format!(
                "must not contain control characters, got {:?} in {:?}",
                c,
                name.chars().take(64).collect::<String>()
            ),
        ));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(refuse(
            "name",
            format!(
                "must be at most {MAX_NAME_BYTES} bytes, got {} bytes",
                name.len()
            ),
        ));
    }
    Ok(())
}

/// Checks an environment identity: not empty, at most 256 bytes, no `#` (it separates the
/// environment from the call number in probe tokens).
pub fn validate_environment(environment: &str) -> Result<(), ConfigError> {
    if environment.is_empty() {
        return Err(refuse("environment", "must not be empty"));
    }
    if environment.len() > 256 {
        return Err(refuse("environment", "must be at most 256 bytes"));
    }
    if environment.contains('#') {
        return Err(refuse("environment", "must not contain '#'"));
    }
    if environment.chars().any(|c| c.is_control()) {
        return Err(refuse("environment", "must not contain control characters"));
    }
    Ok(())
}

fn duration(field: &str, value: u64, min: u64) -> Result<(), ConfigError> {
    if value < min {
        return Err(refuse(
            field,
            format!("must be at least {min} ms, got {value}"),
        ));
    }
    if value > MAX_DURATION_MS {
        return Err(refuse(
            field,
            format!("must be at most {MAX_DURATION_MS} ms (ten years), got {value}"),
        ));
    }
    Ok(())
}

impl Config {
    /// Checks every field; the error names the first field that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.failure_policy {
            FailurePolicy::ConsecutiveFailures(0) => {
                return Err(refuse(
                    "failure_policy.consecutive_failures",
                    "must be at least 1, got 0",
                ));
            }
            FailurePolicy::ConsecutiveFailures(_) => {}
            FailurePolicy::FailureRate(FailureRate {
                threshold,
                minimum_calls,
            }) => {
                // A threshold of 0 would trip on a fleet that never failed.
                if !(threshold > 0.0 && threshold <= 1.0) {
                    return Err(refuse(
                        "failure_policy.failure_rate.threshold",
                        format!("must be a number above 0 and at most 1, got {threshold}"),
                    ));
                }
                if minimum_calls == 0 {
                    return Err(refuse(
                        "failure_policy.failure_rate.minimum_calls",
                        "must be at least 1, got 0",
                    ));
                }
            }
        }
        duration("recovery_timeout_ms", self.recovery_timeout_ms, 1)?;
        if self.success_threshold == 0 {
            return Err(refuse("success_threshold", "must be at least 1, got 0"));
        }
        duration("local_cache_max_age_ms", self.local_cache_max_age_ms, 0)?;
        if !self.backoff_multiplier.is_finite() || self.backoff_multiplier < 1.0 {
            return Err(refuse(
                "backoff_multiplier",
                format!(
                    "must be a finite number of at least 1.0, got {}",
                    self.backoff_multiplier
                ),
            ));
        }
        if let Some(max) = self.max_recovery_timeout_ms {
            duration("max_recovery_timeout_ms", max, 1)?;
            if max < self.recovery_timeout_ms {
                return Err(refuse(
                    "max_recovery_timeout_ms",
                    format!(
                        "must be at least recovery_timeout_ms ({}), got {max}",
                        self.recovery_timeout_ms
                    ),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.recovery_jitter) {
            return Err(refuse(
                "recovery_jitter",
                format!("must be between 0.0 and 1.0, got {}", self.recovery_jitter),
            ));
        }
        if let Some(lease) = self.probe_lease_ms {
            duration("probe_lease_ms", lease, 1)?;
        }
        duration("store_retry_after_ms", self.store_retry_after_ms, 0)?;
        if !(1..=MAX_MINIMUM_ENVIRONMENTS).contains(&self.minimum_environments) {
            return Err(refuse(
                "minimum_environments",
                format!(
                    "must be from 1 to {MAX_MINIMUM_ENVIRONMENTS}, got {}",
                    self.minimum_environments
                ),
            ));
        }
        duration("window_ms", self.window_ms, 1)?;
        if let Some(slow) = self.slow_call_ms {
            duration("slow_call_ms", slow, 1)?;
        }
        Ok(())
    }

    /// How long a probe permit is held before it may be taken over: `probe_lease_ms`, else
    /// `recovery_timeout_ms` but at least [`MIN_DEFAULT_PROBE_LEASE_MS`].
    pub fn probe_lease(&self) -> u64 {
        self.probe_lease_ms
            .unwrap_or(self.recovery_timeout_ms.max(MIN_DEFAULT_PROBE_LEASE_MS))
    }

    /// The longest break: `max_recovery_timeout_ms`, else, when the break grows (a multiplier
    /// above 1), [`DEFAULT_MAX_RECOVERY_TIMEOUT_MS`] but at least `recovery_timeout_ms`.
    pub fn max_recovery_timeout(&self) -> u64 {
        match self.max_recovery_timeout_ms {
            Some(max) => max,
            None if self.backoff_multiplier > 1.0 => self
                .recovery_timeout_ms
                .max(DEFAULT_MAX_RECOVERY_TIMEOUT_MS),
            None => self.recovery_timeout_ms,
        }
    }

    /// The consecutive failures in one environment that trip a closed circuit: `u32::MAX`
    /// under the failure-rate policy, where no streak in one environment trips it alone.
    pub fn failure_threshold(&self) -> u32 {
        match self.failure_policy {
            FailurePolicy::ConsecutiveFailures(n) => n,
            FailurePolicy::FailureRate(_) => u32::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_seed() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.failure_threshold(), 5);
        assert_eq!(c.recovery_timeout_ms, 30_000);
        assert_eq!(c.success_threshold, 3);
        assert_eq!(c.local_cache_max_age_ms, 5_000);
        assert_eq!(c.probe_lease(), 30_000);
    }

    #[test]
    fn a_short_break_keeps_a_probe_lease_that_covers_a_slow_call() {
        let short = Config {
            recovery_timeout_ms: 5_000,
            ..Config::default()
        };
        assert_eq!(short.probe_lease(), MIN_DEFAULT_PROBE_LEASE_MS);
        let long = Config {
            recovery_timeout_ms: 120_000,
            ..Config::default()
        };
        assert_eq!(long.probe_lease(), 120_000);
        let explicit = Config {
            probe_lease_ms: Some(2_000),
            ..short
        };
        assert_eq!(explicit.probe_lease(), 2_000);
    }

    #[test]
    fn a_growing_break_has_a_default_cap() {
        let growing = Config {
            backoff_multiplier: 2.0,
            ..Config::default()
        };
        assert_eq!(growing.max_recovery_timeout(), 300_000);
        let long = Config {
            recovery_timeout_ms: 600_000,
            ..growing.clone()
        };
        assert_eq!(long.max_recovery_timeout(), 600_000);
        assert_eq!(Config::default().max_recovery_timeout(), 30_000);
    }

    fn rate(threshold: f64, minimum_calls: u32) -> FailurePolicy {
        FailurePolicy::FailureRate(FailureRate {
            threshold,
            minimum_calls,
        })
    }

    #[test]
    fn each_invalid_field_is_named() {
        type Mutation = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "failure_policy.consecutive_failures",
                Box::new(|c| c.failure_policy = FailurePolicy::ConsecutiveFailures(0)),
            ),
            (
                "recovery_timeout_ms",
                Box::new(|c| c.recovery_timeout_ms = 0),
            ),
            (
                "recovery_timeout_ms",
                Box::new(|c| c.recovery_timeout_ms = MAX_DURATION_MS + 1),
            ),
            ("success_threshold", Box::new(|c| c.success_threshold = 0)),
            (
                "local_cache_max_age_ms",
                Box::new(|c| c.local_cache_max_age_ms = u64::MAX),
            ),
            (
                "backoff_multiplier",
                Box::new(|c| c.backoff_multiplier = 0.5),
            ),
            (
                "backoff_multiplier",
                Box::new(|c| c.backoff_multiplier = f64::NAN),
            ),
            (
                "max_recovery_timeout_ms",
                Box::new(|c| c.max_recovery_timeout_ms = Some(10)),
            ),
            ("recovery_jitter", Box::new(|c| c.recovery_jitter = 1.5)),
            ("recovery_jitter", Box::new(|c| c.recovery_jitter = -0.1)),
            ("probe_lease_ms", Box::new(|c| c.probe_lease_ms = Some(0))),
            ("slow_call_ms", Box::new(|c| c.slow_call_ms = Some(0))),
            (
                "failure_policy.failure_rate.threshold",
                Box::new(|c| c.failure_policy = rate(0.0, 100)),
            ),
            (
                "failure_policy.failure_rate.threshold",
                Box::new(|c| c.failure_policy = rate(f64::NAN, 100)),
            ),
            (
                "failure_policy.failure_rate.threshold",
                Box::new(|c| c.failure_policy = rate(1.5, 100)),
            ),
            (
                "failure_policy.failure_rate.minimum_calls",
                Box::new(|c| c.failure_policy = rate(0.5, 0)),
            ),
            (
                "store_retry_after_ms",
                Box::new(|c| c.store_retry_after_ms = u64::MAX),
            ),
        ];
        for (field, mutate) in cases {
            let mut c = Config::default();
            mutate(&mut c);
            let err = c.validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.to_string().contains(field));
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(validate_name("").unwrap_err().field, "name");
        assert!(validate_name(&"x".repeat(MAX_NAME_BYTES)).is_ok());
        let err = validate_name(&"x".repeat(MAX_NAME_BYTES + 1)).unwrap_err();
        assert!(err.message.contains("1025 bytes"), "{err}");
        assert_eq!(
            validate_environment("a#b").unwrap_err().field,
            "environment"
        );
        assert!(validate_environment("").is_err());
        for bad in ["a\nb", "tab\there", "nul\0", "esc\u{1b}[31m", "del\u{7f}"] {
            let err = validate_name(bad).unwrap_err();
            assert_eq!(err.field, "name");
            assert!(err.message.contains("control characters"), "{err}");
        }
        assert!(validate_name("payments/eu-west-1 ünïcode").is_ok());
    }
}
