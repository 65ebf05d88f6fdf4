//! The fleetbreaker Node addon: the wasmtime host and its stores. The JavaScript layer (`lib/`)
//! carries the API; this module only exposes the host.
//!
//! A call that needs no I/O is decided on the JavaScript thread and returned as a value; one
//! that must ask the store moves to a background runtime and returns a Promise, so the event
//! loop never waits on the store.

mod errors;
// Its functions are exported to JavaScript only (nothing in Rust calls them).
#[cfg_attr(test, allow(dead_code))]
mod settings;

use std::future::Future;
use std::sync::{Arc, Mutex};

use fleetbreaker::bridge::poll_here;
use fleetbreaker::embed::{self, Action, Casing, Level, Misuse, Override, StoreHandle, Value};
use fleetbreaker::{Breaker, CircuitInfo, Clock as _, Error, ManualClock, Outcome, Permit};
use napi::bindgen_prelude::{Either, Object, ToNapiValue, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;

use crate::errors::to_napi;
use crate::settings::{NativeSettings, value_of};

type Resolver<D> = Box<dyn FnOnce(Env) -> napi::Result<D> + Send>;

/// Polls `future` once on this thread (inside the runtime's context, where store clients find
/// their reactor): a value if it needed no I/O, else a Promise the runtime resolves.
fn run<'env, T, D, C>(
    env: &'env Env,
    future: impl Future<Output = T> + Send + 'static,
    convert: C,
) -> napi::Result<Either<D, Object<'env>>>
where
    T: Send + 'static,
    D: napi::bindgen_prelude::ToNapiValue + 'static,
    C: FnOnce(&Env, T) -> napi::Result<D> + Send + 'static,
{
    let waiting = match poll_here(future) {
        Ok(value) => return convert(env, value).map(Either::A),
        Err(waiting) => waiting,
    };
    let (deferred, promise) = env.create_deferred::<D, Resolver<D>>()?;
    waiting.then(move |value| deferred.resolve(Box::new(move |env| convert(&env, value))));
    Ok(Either::B(promise))
}

fn ms(v: f64, field: &str) -> napi::Result<u64> {
    if (0.0..=1e15).contains(&v) {
        Ok(v.round() as u64)
    } else {
        Err(napi::Error::new(
            Status::InvalidArg,
            format!("{field} must be a non-negative number of ms, got {v}"),
        ))
    }
}

/// A store of shared records.
#[napi]
pub struct NativeStore {
    handle: StoreHandle,
}

#[napi(object)]
pub struct StoreStats {
    pub reads: f64,
    pub writes: f64,
    pub failed_calls: f64,
}

/// A helper used on the wrong store, or with an unknown argument.
fn misuse(m: Misuse) -> napi::Error {
    napi::Error::new(Status::InvalidArg, m.to_string())
}

/// Where a persistence object keeps its circuits, and its one store (see
/// `fleetbreaker::embed::Persistence`).
#[napi]
pub struct NativePersistence {
    inner: embed::Persistence,
}

#[napi]
impl NativePersistence {
    #[napi(factory)]
    pub fn memory() -> NativePersistence {
        NativePersistence {
            inner: embed::Persistence::memory(),
        }
    }

    #[napi(factory)]
    pub fn sqlite(env: &Env, path: Unknown<'_>) -> napi::Result<NativePersistence> {
        let path = value_of(&path)?.unwrap_or(Value::Null);
        let inner = embed::Persistence::sqlite(Casing::Camel, path)
            .map_err(|e| to_napi(env, Error::Config(e)))?;
        Ok(NativePersistence { inner })
    }

    /// The table's options (camelCase; other keys are ignored); throws an
    /// `ERR_CIRCUIT_CONFIG` error naming the field. The store opens now, its SDK configuration
    /// loading in the background.
    #[napi(factory)]
    pub fn dynamodb(env: &Env, options: Unknown<'_>) -> napi::Result<NativePersistence> {
        let fields = settings::fields_of(env, &options, "options")?;
        let settings = embed::DynamoDbSettings::parse(Casing::Camel, fields)
            .map_err(|e| to_napi(env, Error::Config(e)))?;
        Ok(NativePersistence {
            inner: embed::Persistence::dynamodb(settings),
        })
    }

    /// What to warn the user of (an option that has no effect), if anything.
    #[napi(getter)]
    pub fn warning(&self) -> Option<String> {
        self.inner.dynamodb_settings()?.warning.clone()
    }

    /// The partition key value in effect with composite keys; null otherwise.
    #[napi(getter)]
    pub fn partition_value(&self) -> Option<String> {
        self.inner.dynamodb_settings()?.partition_value()
    }

    /// The store for a breaker with `storeTimeout` seconds (null: the deadline in use).
    #[napi]
    pub fn store(&self, env: &Env, store_timeout: Option<f64>) -> napi::Result<NativeStore> {
        let handle = self
            .inner
            .store(Casing::Camel, store_timeout)
            .map_err(|e| to_napi(env, e))?;
        Ok(NativeStore { handle })
    }

    /// Creates the DynamoDB table with TTL on `expiration` (development and tests).
    #[napi]
    pub fn create_table<'env>(&self, env: &'env Env) -> napi::Result<Either<(), Object<'env>>> {
        let created = self.inner.create_table().map_err(misuse)?;
        run(env, created, |env, r| r.map_err(|e| to_napi(env, e)))
    }
}

#[napi]
impl NativeStore {
    #[napi]
    pub fn stats(&self) -> StoreStats {
        let s = self.handle.stats();
        StoreStats {
            reads: s.reads as f64,
            writes: s.writes as f64,
            failed_calls: s.errors as f64,
        }
    }

    /// Memory stores: every later call fails with `kind` (null: works again).
    #[napi]
    pub fn set_fault(&self, kind: Option<String>) -> napi::Result<()> {
        self.handle.set_fault(kind.as_deref()).map_err(misuse)
    }

    /// Memory stores: replaces `circuit`'s item with one that is not a valid record.
    #[napi]
    pub fn put_corrupt(
        &self,
        circuit: String,
        version: Option<f64>,
        detail: String,
    ) -> napi::Result<()> {
        let version = version.map(|v| ms(v, "version")).transpose()?;
        self.handle
            .put_corrupt(&circuit, version, detail)
            .map_err(misuse)
    }

    /// Deletes `circuit`'s item, as a TTL or an operator does (tests).
    #[napi]
    pub fn remove<'env>(
        &self,
        env: &'env Env,
        circuit: String,
    ) -> napi::Result<Either<(), Object<'env>>> {
        let removed = self.handle.remove(circuit);
        run(env, removed, |env, r| r.map_err(|e| to_napi(env, e)))
    }

    /// Memory stores: loads, or writes, or both wait until released (tests of races with a
    /// slow store).
    #[napi]
    pub fn hold(&self, loads: bool, writes: bool) -> napi::Result<()> {
        self.in_memory()?.hold(loads, writes);
        Ok(())
    }

    #[napi]
    pub fn release(&self, loads: bool, writes: bool) -> napi::Result<()> {
        self.in_memory()?.release(loads, writes);
        Ok(())
    }

    /// Memory stores: the valid record of `circuit` (a look that neither counts as a read nor
    /// meets an injected fault).
    #[napi(ts_return_type = "Record<string, string | number | null> | null")]
    pub fn record<'env>(
        &self,
        env: &'env Env,
        circuit: String,
    ) -> napi::Result<Option<Object<'env>>> {
        match self.in_memory()?.record(&circuit) {
            None => Ok(None),
            Some(r) => settings::to_object(env, fleetbreaker::embed::record_values(&r)).map(Some),
        }
    }
}

impl NativeStore {
    fn in_memory(&self) -> napi::Result<&fleetbreaker::MemoryStore> {
        self.handle.in_memory().map_err(misuse)
    }
}

/// The addon's version: the Cargo workspace's, which `package.json` must carry too (a test
/// checks it).
#[napi]
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The kill switch's warning, the first time it is asked for in this process.
#[napi]
pub fn disabled_warning() -> Option<&'static str> {
    embed::disabled_warning()
}

/// A manual clock for an environment (the system clock needs none).
#[napi]
pub struct NativeClock(ManualClock);

#[napi]
impl NativeClock {
    #[napi(constructor)]
    pub fn new(now_ms: f64) -> napi::Result<NativeClock> {
        Ok(NativeClock(ManualClock::new(ms(now_ms, "now")?)))
    }

    #[napi]
    pub fn set_ms(&self, now_ms: f64) -> napi::Result<()> {
        self.0.set(ms(now_ms, "now")?);
        Ok(())
    }

    /// Moves both clocks forward by `ms`.
    #[napi]
    pub fn advance_ms(&self, ms_: f64) -> napi::Result<()> {
        self.0.advance(ms(ms_, "ms")?);
        Ok(())
    }

    /// Steps the wall clock only (back when negative), as NTP does. (`ManualClock.step` checks
    /// the number.)
    #[napi]
    pub fn step_wall_ms(&self, delta_ms: f64) {
        self.0.step_wall(delta_ms.round() as i64);
    }

    /// The monotonic clock, in ms.
    #[napi]
    pub fn monotonic_ms(&self) -> f64 {
        self.0.monotonic_ms() as f64
    }

    #[napi]
    pub fn now_ms(&self) -> f64 {
        self.0.now_ms() as f64
    }
}

/// Named values (snake_case), handed to JavaScript as a new object with camelCase keys: made
/// where the value is delivered, so it can travel to the JavaScript thread first.
pub struct Fields(Vec<(&'static str, Value)>);

impl ToNapiValue for Fields {
    unsafe fn to_napi_value(
        raw: napi::sys::napi_env,
        fields: Self,
    ) -> napi::Result<napi::sys::napi_value> {
        let env = Env::from_raw(raw);
        let object = settings::to_object(&env, fields.0)?;
        // SAFETY: the object was made in this very `env`, on its thread.
        unsafe { Object::to_napi_value(raw, object) }
    }
}

/// An event, as JavaScript receives it: `kind`, `circuit`, its one log line (`logLevel`:
/// `error`, `warn` or `info`; `logText`) and its details (see
/// `fleetbreaker::embed::EventView`).
fn event_object(event: &fleetbreaker::Event) -> Fields {
    let view = fleetbreaker::embed::event_view(event);
    let level = match view.level {
        Level::Error => "error",
        Level::Warn => "warn",
        _ => "info",
    };
    let mut fields = vec![
        ("kind", Value::Text(view.kind.into())),
        ("circuit", Value::Text(view.circuit)),
        ("log_level", Value::Text(level.into())),
        ("log_text", Value::Text(view.text)),
    ];
    fields.extend(view.fields);
    Fields(fields)
}

/// What a caller sees of a circuit (`fleetbreaker::embed::info_values`; times in epoch ms).
fn info(i: CircuitInfo) -> Fields {
    Fields(fleetbreaker::embed::info_values(i))
}

/// Weak: a pending event must not keep the process alive.
type EventCallback = ThreadsafeFunction<Fields, (), Fields, Status, false, true>;

/// One component instance: the breakers of one persistence store in one process.
#[napi]
pub struct NativeEnvironment {
    env: fleetbreaker::Environment,
}

#[napi]
impl NativeEnvironment {
    /// `onEvent(event)` receives every event, on the JavaScript thread, after the call that
    /// caused it.
    #[napi(constructor)]
    pub fn new(
        env: &Env,
        store: &NativeStore,
        clock: Option<&NativeClock>,
        on_event: EventCallback,
        environment_id: Option<String>,
    ) -> napi::Result<NativeEnvironment> {
        let on_event = Arc::new(on_event);
        let mut builder =
            fleetbreaker::Environment::builder(store.handle.store()).on_event(move |event| {
                on_event.call(event_object(event), ThreadsafeFunctionCallMode::NonBlocking);
            });
        if let Some(manual) = clock {
            builder = builder.clock(manual.0.clone());
        }
        if let Some(id) = environment_id {
            builder = builder.id(id);
        }
        Ok(NativeEnvironment {
            env: builder.build().map_err(|e| to_napi(env, e))?,
        })
    }

    /// The circuits breakers of this environment hold (a circuit is released with its last
    /// breaker).
    #[napi]
    pub fn circuits_in_use(&self) -> u32 {
        self.env.circuits_in_use() as u32
    }
}

/// What `acquire` decided.
#[napi(string_enum = "lowercase")]
pub enum AdmissionKind {
    Admitted,
    /// The fleet's single probe of a half-open circuit.
    Probe,
    /// Rejected (with `info`).
    Rejected,
    /// The kill switch is on: run the call without the breaker.
    Disabled,
}

/// What an operator does to a circuit (cases in the order of `Action::ALL`).
#[napi(string_enum = "camelCase")]
pub enum OperatorAction {
    ForceOpen,
    ForceClosed,
    Reset,
}

/// How a call ended: the cases of `fleetbreaker::Outcome`, in the order of `Outcome::ALL`
/// (`failure` counts, `ignored` does not count either way, `slow` is a success slower than
/// `slowCall`, counted as a failure and reported as a slow call).
#[napi(string_enum = "lowercase")]
pub enum CallOutcome {
    Success,
    Failure,
    Ignored,
    Slow,
}

/// Leave to make one call, handed back to `complete`. One that is never completed is released
/// when it is collected (a probe permit in the background).
#[napi]
pub struct NativePermit(Mutex<Option<Permit>>);

/// The answer to `acquire`. `permit` is there to complete unless the call was rejected (with
/// the kill switch on, completing it does nothing);
/// `leaseMs` is how long from now the admission lease runs (0: none), to be kept on
/// JavaScript's own monotonic clock.
#[napi(object, object_from_js = false)]
pub struct Acquired {
    pub kind: AdmissionKind,
    pub permit: Option<NativePermit>,
    pub lease_ms: f64,
    #[napi(ts_type = "Record<string, string | number | boolean | null>")]
    pub info: Option<Fields>,
}

/// The circuit `name` in an environment.
#[napi]
pub struct NativeCircuit {
    breaker: Breaker,
}

#[napi]
impl NativeCircuit {
    #[napi(constructor)]
    pub fn new(
        env: &Env,
        environment: &NativeEnvironment,
        name: String,
        settings: &NativeSettings,
    ) -> napi::Result<NativeCircuit> {
        let config = settings.inner.config();
        let breaker = Breaker::builder(name)
            .config(config)
            .environment(&environment.env)
            .build()
            .map_err(|e| to_napi(env, e))?;
        Ok(NativeCircuit { breaker })
    }

    /// Asks for a permit: `Acquired` at once when no store I/O is needed, else a Promise of it.
    /// `leasedSuccesses` are the successes JavaScript counted under the last lease.
    #[napi]
    pub fn acquire<'env>(
        &self,
        env: &'env Env,
        leased_successes: u32,
    ) -> napi::Result<Either<Acquired, Object<'env>>> {
        self.breaker.add_leased_successes(leased_successes);
        let breaker = self.breaker.clone();
        let lease_of = self.breaker.clone();
        run(
            env,
            async move { breaker.acquire().await },
            move |env, result| convert_acquired(env, result, &lease_of),
        )
    }

    /// Reports how the call made with `permit` ended: undefined at once, or a Promise when the
    /// outcome must be written.
    #[napi]
    pub fn complete<'env>(
        &self,
        env: &'env Env,
        permit: &NativePermit,
        outcome: CallOutcome,
    ) -> napi::Result<Either<(), Object<'env>>> {
        let outcome = Outcome::ALL[outcome as usize];
        let taken = permit.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(permit) = taken else {
            return Err(napi::Error::new(
                Status::InvalidArg,
                "this permit was already completed",
            ));
        };
        let breaker = self.breaker.clone();
        run(
            env,
            async move { breaker.complete(permit, outcome).await },
            |_, r| Ok(r),
        )
    }

    /// Reports a call JavaScript admitted under the lease (with the successes counted before
    /// it); used for failures.
    #[napi]
    pub fn complete_leased<'env>(
        &self,
        env: &'env Env,
        leased_successes: u32,
        outcome: CallOutcome,
    ) -> napi::Result<Either<(), Object<'env>>> {
        let outcome = Outcome::ALL[outcome as usize];
        self.breaker.add_leased_successes(leased_successes);
        let breaker = self.breaker.clone();
        run(
            env,
            async move { breaker.complete_leased(outcome).await },
            |_, r| Ok(r),
        )
    }

    #[napi]
    pub fn info<'env>(&self, env: &'env Env) -> napi::Result<Either<Fields, Object<'env>>> {
        let breaker = self.breaker.clone();
        run(env, async move { breaker.info().await }, |env, r| {
            r.map(info).map_err(|e| to_napi(env, e))
        })
    }

    /// An operator's action: `duration` in seconds (`undefined` or null: until changed),
    /// `reason` a string or none; both are checked by the host.
    #[napi]
    pub fn act<'env>(
        &self,
        env: &'env Env,
        action: OperatorAction,
        duration: Unknown<'_>,
        reason: Unknown<'_>,
    ) -> napi::Result<Either<Fields, Object<'env>>> {
        let value = |v: &Unknown<'_>| Ok::<_, napi::Error>(value_of(v)?.unwrap_or(Value::Null));
        let action = Action::ALL[action as usize];
        let checked = Override::parse(action, value(&duration)?, value(&reason)?)
            .map_err(|e| to_napi(env, Error::Config(e)))?;
        let breaker = self.breaker.clone();
        run(
            env,
            async move { checked.apply(breaker).await.deliver() },
            |env, r| r.map(info).map_err(|e| to_napi(env, e)),
        )
    }
}

fn convert_acquired(
    env: &Env,
    result: Result<Permit, Error>,
    breaker: &Breaker,
) -> napi::Result<Acquired> {
    let (kind, permit, lease_ms, info) = match result {
        Ok(permit) => {
            let kind = match (permit.is_disabled(), permit.is_probe()) {
                (true, _) => AdmissionKind::Disabled,
                (false, true) => AdmissionKind::Probe,
                (false, false) => AdmissionKind::Admitted,
            };
            // What is left of the lease now, as the component last decided it (a later call
            // that ended it counts): JavaScript keeps it on its own clock.
            let lease_ms = match permit.lease_until_ms() {
                Some(_) => breaker.lease_remaining_ms() as f64,
                None => 0.0,
            };
            let permit = NativePermit(Mutex::new(Some(permit)));
            (kind, Some(permit), lease_ms, None)
        }
        Err(Error::Open(i)) => (AdmissionKind::Rejected, None, 0.0, Some(info(*i))),
        Err(e) => return Err(to_napi(env, e)),
    };
    Ok(Acquired {
        kind,
        permit,
        lease_ms,
        info,
    })
}
