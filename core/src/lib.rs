//! The fleetbreaker circuit breaker: a circuit breaker whose state is shared by a whole fleet
//! of serverless functions through one record per circuit in a store (DynamoDB, SQLite,
//! memory).
//!
//! This crate is the breaker itself, written once:
//! - [`machine`]: the pure state machine (no I/O, no clock: `now_ms` comes in, decisions and
//!   next records come out);
//! - [`Circuit`]: the algorithm that drives it over a [`Store`], a [`Clock`] and [`Events`];
//! - on `wasm32`, a small glue module exports it as the WebAssembly component of the WIT
//!   package `fleetbreaker:breaker`, which the host crate embeds.
//!
//! ```
//! use fleetbreaker_core::{Circuit, Config, FailurePolicy, Outcome, CircuitState};
//! use fleetbreaker_core::testing::{MemoryStore, TestEnv};
//!
//! let store = MemoryStore::default();
//! let mut env = TestEnv::new(store.clone(), 1_000);
//! let config = Config { failure_policy: FailurePolicy::ConsecutiveFailures(2), ..Config::default() };
//! let mut circuit = Circuit::new("payments", config, "env-1").unwrap();
//! for id in 1..=2 {
//!     // The host picks each permit's id at random; it is the probe token's unique part.
//!     let permit = circuit.acquire(&mut env, 0, id).unwrap();
//!     circuit.complete(&mut env, permit, Outcome::Failure);
//! }
//! let rejected = circuit.acquire(&mut env, 0, 3).unwrap_err();
//! assert_eq!(rejected.state, CircuitState::Open);
//! assert_eq!(rejected.retry_after_ms, Some(30_000));
//! ```
//!
//! # Defaults
//!
//! | field | default | meaning |
//! | --- | --- | --- |
//! | `failure_policy` | `ConsecutiveFailures(5)` | trip after 5 consecutive counted failures in one environment; `FailureRate { threshold, minimum_calls }`: trip when that share of the whole fleet's calls in the window failed |
//! | `recovery_timeout_ms` | 30 000 | the first break after a trip |
//! | `success_threshold` | 3 | probe successes that close a half-open circuit |
//! | `local_cache_max_age_ms` | 5 000 | how long a read of the shared record is trusted |
//! | `backoff_multiplier` | 1.0 | each further trip multiplies the break (1.0: fixed) |
//! | `max_recovery_timeout_ms` | 300 000 when the multiplier is above 1 (at least `recovery_timeout_ms`) | cap of the break |
//! | `recovery_jitter` | 0.0 | up to this fraction of the break is added at random |
//! | `probe_lease_ms` | `recovery_timeout_ms`, at least 30 000 | how long a probe permit is held before takeover |
//! | `store_retry_after_ms` | 5 000 | after a store error, how long to decide locally |
//! | `store_failure_mode` | `Open` | admit calls and protect locally while the store is down |
//! | `minimum_environments` | 1 | distinct environments whose failures must agree before the circuit trips for the fleet |
//! | `window_ms` | 60 000 | the fleet's sliding window: the failure rate is taken over it, and other environments' failures count toward `minimum_environments` within it |
//! | `slow_call_ms` | none | a success slower than this counts as a failure, reported as a slow call (the admission lease is then off: every call is timed) |

#![warn(missing_docs)]

mod circuit;
pub mod config;
pub mod machine;
mod record;
mod types;
mod windows;
mod wit_conversions;

#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[cfg(target_arch = "wasm32")]
mod component;

pub use circuit::{Circuit, Clock, Env, Events, Store};
pub use record::*;
pub use types::*;
pub use windows::{RATE_LOOKBACK_FACTOR, WINDOW_REPORT_INTERVAL_MS, WINDOW_SHARDS, window_starts};
