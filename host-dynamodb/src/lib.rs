//! # fleetbreaker
//!
//! A circuit breaker whose state is shared by a whole fleet of serverless functions. When a
//! downstream starts failing, every environment stops calling it within seconds; exactly one
//! caller at a time, fleet-wide, probes it while it recovers; and a healthy circuit writes
//! nothing.
//!
//! The breaker itself is a WebAssembly component (built from `fleetbreaker-core`) whose
//! contract is the WIT package `fleetbreaker:breaker`. This crate embeds it with wasmtime,
//! from native code precompiled when the crate is built, and gives it a store, a clock and an
//! event sink:
//! - [`Breaker`]: the Rust API (`acquire`/`complete`, `call`, operator overrides);
//! - [`Environment`]: the circuits of one process, shared by its breakers (each circuit with
//!   a component instance of its own, so one circuit's store I/O never delays another's);
//! - [`Store`]: the async store trait, with [`MemoryStore`] built in;
//! - [`add_to_linker`]: the same imports for embedders with their own `wasmtime::Store`;
//! - `embed` (feature `embed`): the configuration as the Python and Node packages take it,
//!   checked once for both.
//!
//! ```
//! # fn main() -> Result<(), fleetbreaker::Error> { futures_lite(async {
//! use fleetbreaker::{Breaker, Config, FailurePolicy, ManualClock, MemoryStore};
//!
//! let store = MemoryStore::new();
//! let clock = ManualClock::new(1_700_000_000_000);
//! let breaker = Breaker::builder("payments")
//!     .config(Config { failure_policy: FailurePolicy::ConsecutiveFailures(2), ..Config::default() })
//!     .store(store.clone())
//!     .clock(clock.clone())
//!     .build()?;
//!
//! // The protected call's own result comes back unchanged.
//! let ok: Result<u32, &str> = breaker.call(async { Ok(7) }).await?;
//! assert_eq!(ok, Ok(7));
//! for _ in 0..2 {
//!     let _ = breaker.call(async { Err::<u32, _>("downstream is down") }).await?;
//! }
//! // Now the circuit rejects calls, fleet-wide, without running them.
//! let rejected = breaker.call(async { Ok::<u32, &str>(1) }).await.unwrap_err();
//! assert_eq!(rejected.circuit().unwrap().retry_after_ms, Some(30_000));
//! # Ok(()) }) }
//! # fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f) }
//! ```
//!
//! # Defaults
//!
//! | field | default | meaning |
//! | --- | --- | --- |
//! | `failure_policy` | `ConsecutiveFailures(5)` | trip after 5 consecutive counted failures in one environment; `FailureRate { threshold, minimum_calls }`: trip when that share of the whole fleet's calls in the window failed |
//! | `recovery_timeout_ms` | 30 000 | the first break after a trip |
//! | `success_threshold` | 3 | probe successes that close a half-open circuit |
//! | `local_cache_max_age_ms` | 5 000 | how long a read of the shared record is trusted (and the admission lease lasts) |
//! | `backoff_multiplier` | 1.0 | each further trip multiplies the break (1.0: fixed) |
//! | `max_recovery_timeout_ms` | 300 000 when the multiplier is above 1 (at least `recovery_timeout_ms`) | cap of the break |
//! | `recovery_jitter` | 0.0 | up to this fraction of the break is added at random |
//! | `probe_lease_ms` | `recovery_timeout_ms`, at least 30 000 | how long a probe permit is held before another environment may take it over; a late outcome in the same half-open episode still counts |
//! | `store_retry_after_ms` | 5 000 | after a store error, how long to protect locally before asking the store again |
//! | `store_failure_mode` | `Open` | while the store is down, admit calls and protect locally (`Closed`: reject) |
//! | `minimum_environments` | 1 | distinct environments whose failures must agree before the circuit trips for the fleet |
//! | `window_ms` | 60 000 | the fleet's sliding window: the failure rate is taken over it, and other environments' failures count toward `minimum_environments` within it |
//! | `slow_call_ms` | none | a success slower than this counts as a failure, reported as a slow call (the admission lease is then off: every call is timed) |
//!
//! # The admission lease
//!
//! A healthy call must not cross into the component. While the circuit is closed, this
//! environment's copy of the record is fresh and no failure is pending, `acquire` hands the
//! host a deadline (the copy's expiry, on the monotonic clock): until then calls are admitted
//! by a clock read and a compare, successes are counted in an atomic, and a failure is
//! reported at once. The deadline is set while the component is locked, so a lease granted
//! by one call never outlives a trip decided by a later one.
//!
//! # Where hooks run
//!
//! Transition listeners and `on_event` run after the call that caused them, with no breaker
//! lock held, in the caller's task; so a hook may call any breaker. Events of work that
//! finished in the background (a call whose future was dropped, the release of an abandoned
//! probe permit) are delivered on the `fleetbreaker-events` thread.
//!
//! # Processes
//!
//! After `fork()` the child gets its own I/O runtime, store connections, SQLite thread,
//! component instances and (unless chosen) environment identity, on first use; the parent's
//! are left untouched. Call [`fork::after_restore`] after a snapshot restore.

#![warn(missing_docs)]

mod breaker;
pub mod bridge;
mod clock;
mod component;
#[cfg(feature = "embed")]
pub mod embed;
mod environment;
mod error;
mod events;
pub mod fork;
mod kill_switch;
mod stores;
mod util;

pub use breaker::{Breaker, BreakerBuilder, Delivery, Permit, Quick, WithEvents};
pub use clock::{Clock, ManualClock, SystemClock};
pub use component::host::{HostCtx, add_to_linker};
#[doc(hidden)]
pub use component::runtime::{check_precompiled, precompiled_component};
pub use component::runtime::{component_wasm, wit_package};
pub use environment::{Attachment, Environment, EnvironmentBuilder};
pub use error::Error;
pub use events::Events;
pub use fleetbreaker_core::{
    CircuitInfo, CircuitState, Config, ConfigError, CorruptItem, Event, FailurePolicy, FailureRate,
    Outcome, Record, StoreError, StoreFailureMode, StoreFault, SwapResult, Transition,
    TransitionReason, WINDOW_REPORT_INTERVAL_MS, WINDOW_SHARDS, WindowCounts, WindowDelta,
    window_starts,
};
pub use kill_switch::{KILL_SWITCH_VARIABLES, kill_switch};
#[cfg(feature = "dynamodb")]
pub use stores::dynamodb::{self, DynamoDbConfig, DynamoDbStore};
#[cfg(feature = "sqlite")]
pub use stores::sqlite::{self, SqliteStore};
pub use stores::{MemoryStore, Store, StoreFuture, StoreStats};
