//! The conversions between this crate's types and the types generated from the WIT package,
//! written once for both sides of the component boundary: the guest's glue (wit-bindgen) and
//! the host's (wasmtime's `bindgen!`) each call [`wit_conversions!`] with the module of their
//! generated `types` interface, and get `From` both ways for every shared type. Fields and
//! cases are listed here once; the record's fields come from [`record_fields!`].

/// `From` both ways between `$w::$ty` and this crate's `$ty`, for a WIT enum or variant whose
/// cases carry nothing or one convertible value.
#[doc(hidden)]
#[macro_export]
macro_rules! __wit_cases {
    ($w:ident, $wty:ident = $ty:ident { $($case:ident $(($x:ident))?),* $(,)? }) => {
        impl From<$w::$wty> for $crate::$ty {
            fn from(v: $w::$wty) -> Self {
                match v { $( $w::$wty::$case $(($x))? => $crate::$ty::$case $(($x.into()))?, )* }
            }
        }
        impl From<$crate::$ty> for $w::$wty {
            fn from(v: $crate::$ty) -> Self {
                match v { $( $crate::$ty::$case $(($x))? => $w::$wty::$case $(($x.into()))?, )* }
            }
        }
    };
}

/// `From` both ways between `$w::$wty` and this crate's `$ty`, for a WIT record.
#[doc(hidden)]
#[macro_export]
macro_rules! __wit_fields {
    ($w:ident, $wty:ident = $ty:ident { $($field:ident),* $(,)? }) => {
        impl From<$w::$wty> for $crate::$ty {
            fn from(v: $w::$wty) -> Self {
                $crate::$ty { $( $field: v.$field.into(), )* }
            }
        }
        impl From<$crate::$ty> for $w::$wty {
            fn from(v: $crate::$ty) -> Self {
                $w::$wty { $( $field: v.$field.into(), )* }
            }
        }
    };
}

/// Expands to `From` both ways between every type of the WIT `types` interface (in module
/// `$w`) and this crate's. Call it where `$w` is in scope, in the crate that generated it.
#[macro_export]
macro_rules! wit_conversions {
    ($w:ident) => {
        $crate::__wit_cases!($w, CircuitState = CircuitState {
            Closed, Open, HalfOpen, ForcedOpen, ForcedClosed
        });
        $crate::__wit_cases!($w, PermitKind = PermitKind { Normal, Probe });
        $crate::__wit_cases!($w, Outcome = Outcome { Success, Failure, Ignored, Slow });
        $crate::__wit_cases!($w, StoreFailureMode = StoreFailureMode { Open, Closed });
        $crate::__wit_cases!($w, FailurePolicy = FailurePolicy {
            ConsecutiveFailures(n), FailureRate(r)
        });
        $crate::__wit_fields!($w, FailureRate = FailureRate { threshold, minimum_calls });
        $crate::__wit_cases!($w, TransitionReason = TransitionReason {
            Tripped, ProbeStarted, ProbeTakenOver, ProbeSucceeded, ProbeReleased, ProbeFailed,
            Recovered, ForcedOpen, ForcedClosed, OverrideExpired, Reset, Reconciled,
        });
        $crate::__wit_cases!($w, StoreError = StoreError {
            Unavailable(m), Timeout(m), Throttled(m), Misconfigured(m), Corrupt(c)
        });
        $crate::__wit_cases!($w, Event = Event {
            Transition(t), CorruptRecord(f), StoreDegraded(f), StoreRecovered(c)
        });
        $crate::__wit_fields!($w, CorruptItem = CorruptItem { detail, version });
        $crate::__wit_fields!($w, WindowDelta = WindowDelta {
            calls, failures, slow_calls, environment
        });
        $crate::__wit_fields!($w, WindowCounts = WindowCounts {
            calls, failures, slow_calls, environments
        });
        $crate::__wit_fields!($w, StoreFault = StoreFault { circuit, error, retry_at_ms });
        $crate::__wit_fields!($w, Transition = Transition {
            circuit, from_state, to_state, version, at_ms, opened_at_ms, reason,
            override_reason, local_only, failure_count, slow_call_count,
        });
        $crate::__wit_fields!($w, CircuitInfo = CircuitInfo {
            name, state, version, failure_count, slow_call_count, opened_at_ms, open_until_ms,
            retry_after_ms, override_reason, override_until_ms, local_only,
        });
        $crate::__wit_fields!($w, Permit = Permit {
            id, kind, acquired_at_ms, lease_until_ms, episode_ms
        });
        $crate::__wit_fields!($w, Config = Config {
            failure_policy, recovery_timeout_ms, success_threshold, local_cache_max_age_ms,
            backoff_multiplier, max_recovery_timeout_ms, recovery_jitter, probe_lease_ms,
            store_retry_after_ms, store_failure_mode, minimum_environments, window_ms,
            slow_call_ms,
        });
        impl From<$w::CircuitRecord> for $crate::Record {
            fn from(r: $w::CircuitRecord) -> Self {
                $crate::record_fields!($crate::convert_record, r => $crate::Record)
            }
        }
        impl From<$crate::Record> for $w::CircuitRecord {
            fn from(r: $crate::Record) -> Self {
                $crate::record_fields!($crate::convert_record, r => $w::CircuitRecord)
            }
        }
        impl From<$w::SwapResult> for $crate::SwapResult {
            fn from(s: $w::SwapResult) -> Self {
                match s {
                    $w::SwapResult::Written => $crate::SwapResult::Written,
                    $w::SwapResult::Conflict(r) => $crate::SwapResult::Conflict(r.map(Into::into)),
                }
            }
        }
        impl From<$crate::SwapResult> for $w::SwapResult {
            fn from(s: $crate::SwapResult) -> Self {
                match s {
                    $crate::SwapResult::Written => $w::SwapResult::Written,
                    $crate::SwapResult::Conflict(r) => $w::SwapResult::Conflict(r.map(Into::into)),
                }
            }
        }
    };
}
