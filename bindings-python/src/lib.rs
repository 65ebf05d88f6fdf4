//! `fleetbreaker._native`: the wasmtime host and its stores, for the Python package. The
//! Python layer (`python/fleetbreaker`) carries the API; this module only exposes the host.

mod bridge;
mod errors;
mod settings;

use std::sync::Mutex;

use fleetbreaker::{Breaker, CircuitInfo, Clock as _, Error, ManualClock, Outcome};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyWeakrefMethods, PyWeakrefReference};

use fleetbreaker::embed::{self, Action, Casing, Level, Override, StoreHandle};

use crate::errors::{check, misuse};

/// A store of shared records.
#[pyclass(module = "fleetbreaker._native", frozen)]
struct Store {
    handle: StoreHandle,
}

/// Where a persistence object keeps its circuits, and its one store (see
/// `fleetbreaker::embed::Persistence`).
#[pyclass(module = "fleetbreaker._native", frozen)]
struct Persistence {
    inner: embed::Persistence,
}

#[pymethods]
impl Persistence {
    #[staticmethod]
    fn memory() -> Persistence {
        Persistence {
            inner: embed::Persistence::memory(),
        }
    }

    #[staticmethod]
    fn sqlite(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<Persistence> {
        let parsed = embed::Persistence::sqlite(Casing::Snake, settings::value_of(path));
        let inner = check(py, parsed.map_err(Error::Config))?;
        Ok(Persistence { inner })
    }

    /// The table's options by name; raises `CircuitBreakerConfigError` naming the field. The
    /// store opens now, its SDK configuration loading in the background.
    #[staticmethod]
    fn dynamodb(py: Python<'_>, options: &Bound<'_, PyDict>) -> PyResult<Persistence> {
        let parsed = embed::DynamoDbSettings::parse(Casing::Snake, settings::fields_of(options)?);
        let checked = check(py, parsed.map_err(Error::Config))?;
        let inner = py.detach(|| embed::Persistence::dynamodb(checked));
        Ok(Persistence { inner })
    }

    /// What to warn the user of (an option that has no effect), if anything.
    #[getter]
    fn warning(&self) -> Option<String> {
        self.inner.dynamodb_settings()?.warning.clone()
    }

    /// The partition key value in effect with composite keys; None otherwise.
    #[getter]
    fn partition_value(&self) -> Option<String> {
        self.inner.dynamodb_settings()?.partition_value()
    }

    /// The store for a breaker with `store_timeout` seconds (None: the deadline in use).
    #[pyo3(signature = (store_timeout=None))]
    fn store(&self, py: Python<'_>, store_timeout: Option<f64>) -> PyResult<Store> {
        let opened = py.detach(|| self.inner.store(Casing::Snake, store_timeout));
        Ok(Store {
            handle: check(py, opened)?,
        })
    }

    /// Creates the DynamoDB table with TTL on `expiration` (development and tests).
    fn create_table(&self, py: Python<'_>) -> PyResult<()> {
        let created = self.inner.create_table().map_err(misuse)?;
        check(py, bridge::block_plain(py, created))
    }
}

#[pymethods]
impl Store {
    /// Memory stores: later loads and writes wait until `release_calls` (tests of a slow
    /// store).
    fn hold_calls(&self) -> PyResult<()> {
        self.handle.in_memory().map_err(misuse)?.hold_calls();
        Ok(())
    }

    fn release_calls(&self) -> PyResult<()> {
        self.handle.in_memory().map_err(misuse)?.release_calls();
        Ok(())
    }

    /// Deletes `circuit`'s item, as a TTL or an operator does (tests).
    fn remove(&self, py: Python<'_>, circuit: String) -> PyResult<()> {
        check(py, bridge::block_plain(py, self.handle.remove(circuit)))
    }

    /// (reads, writes, failed calls) so far.
    fn stats(&self) -> (u64, u64, u64) {
        let s = self.handle.stats();
        (s.reads, s.writes, s.errors)
    }

    /// Memory stores: makes every later call fail (`None`: work again).
    fn set_fault(&self, fault: Option<&str>) -> PyResult<()> {
        self.handle.set_fault(fault).map_err(misuse)
    }

    /// Memory stores: replaces `circuit`'s item with one that is not a valid record.
    fn put_corrupt(&self, circuit: &str, version: Option<u64>, detail: String) -> PyResult<()> {
        self.handle
            .put_corrupt(circuit, version, detail)
            .map_err(misuse)
    }

    /// The valid record of `circuit` as a dict, or None (see `StoreHandle::record`).
    fn record<'py>(
        &self,
        py: Python<'py>,
        circuit: String,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let record = check(py, bridge::block_plain(py, self.handle.record(circuit)))?;
        record
            .map(|r| settings::fields_dict(py, fleetbreaker::embed::record_values(&r)))
            .transpose()
    }
}

/// A manual clock for an environment (the system clock needs none).
#[pyclass(module = "fleetbreaker._native", frozen)]
struct Clock(ManualClock);

#[pymethods]
impl Clock {
    #[new]
    fn new(now_ms: u64) -> Clock {
        Clock(ManualClock::new(now_ms))
    }

    fn now_ms(&self) -> u64 {
        self.0.now_ms()
    }

    fn set_ms(&self, now_ms: u64) {
        self.0.set(now_ms);
    }

    fn advance_ms(&self, ms: u64) {
        self.0.advance(ms);
    }

    /// Steps the wall clock only (back when negative), as NTP does; the monotonic clock stays.
    fn step_wall_ms(&self, delta_ms: i64) {
        self.0.step_wall(delta_ms);
    }
}

/// Calls Python from one of the host's hooks: an error is reported as unraisable, since it
/// must not break the call that caused the event.
fn from_hook(call: impl FnOnce(Python<'_>) -> PyResult<()>) {
    Python::attach(|py| {
        if let Err(e) = call(py) {
            e.write_unraisable(py, None);
        }
    });
}

/// One component instance: the breakers of one persistence store in one process.
#[pyclass(module = "fleetbreaker._native", frozen)]
struct Environment {
    env: fleetbreaker::Environment,
}

/// An event, as the environment hands it to the Python layer: what happened, to which circuit,
/// its log line, and its details by name.
#[pyclass(module = "fleetbreaker._native", frozen, get_all)]
struct Event {
    /// `transition`, `store_degraded`, `corrupt_record` or `store_recovered`.
    kind: &'static str,
    circuit: String,
    /// A `logging` level.
    log_level: u8,
    log_text: String,
    /// The details (see `fleetbreaker::embed::EventView`), in order.
    fields: Py<PyDict>,
    /// How many of the details, in order, the tuples of `fleetbreaker.testing.record_events`
    /// show.
    positional: usize,
}

impl Event {
    fn new(py: Python<'_>, event: &fleetbreaker::Event) -> PyResult<Event> {
        let view = fleetbreaker::embed::event_view(event);
        let fields = settings::fields_dict(py, view.fields)?;
        Ok(Event {
            kind: view.kind,
            circuit: view.circuit,
            log_level: match view.level {
                Level::Error => 40,
                Level::Warn => 30,
                Level::Info => 20,
                Level::Debug => 10,
                Level::Trace => 5,
            },
            log_text: view.text,
            fields: fields.unbind(),
            positional: view.positional,
        })
    }
}

#[pymethods]
impl Environment {
    /// `on_event(Event)` receives every event, after the call that caused it.
    #[new]
    #[pyo3(signature = (store, clock, on_event, environment_id=None))]
    fn new(
        py: Python<'_>,
        store: &Store,
        clock: Option<&Clock>,
        on_event: Py<PyAny>,
        environment_id: Option<String>,
    ) -> PyResult<Environment> {
        let mut builder =
            fleetbreaker::Environment::builder(store.handle.store()).on_event(move |event| {
                from_hook(|py| on_event.call1(py, (Event::new(py, event)?,)).map(drop))
            });
        if let Some(manual) = clock {
            builder = builder.clock(manual.0.clone());
        }
        if let Some(id) = environment_id {
            builder = builder.id(id);
        }
        Ok(Environment {
            env: check(py, builder.build())?,
        })
    }

    #[getter]
    fn id(&self) -> String {
        self.env.id().to_string()
    }

    /// The circuits breakers of this environment hold (a circuit is released with its last
    /// breaker).
    fn circuits_in_use(&self) -> usize {
        self.env.circuits_in_use()
    }

    /// The component instances this environment holds: one per circuit in use that was called.
    fn component_circuits(&self, py: Python<'_>) -> usize {
        let env = self.env.clone();
        bridge::block_plain(py, async move { env.component_circuits().await })
    }
}

/// Leave to make one call, handed back to `complete`.
#[pyclass(module = "fleetbreaker._native", frozen)]
struct Permit(Mutex<Option<fleetbreaker::Permit>>);

impl Permit {
    fn take(&self) -> PyResult<fleetbreaker::Permit> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| {
                pyo3::exceptions::PyRuntimeError::new_err("this permit was already completed")
            })
    }
}

#[pymethods]
impl Permit {
    /// The call will not be completed (it was cancelled): a probe permit is released in the
    /// background, without waiting here.
    fn abandon(&self) {
        drop(self.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

/// The circuit `name` in an environment.
#[pyclass(module = "fleetbreaker._native", frozen)]
struct Circuit {
    breaker: Breaker,
}

/// How a call ended, as the Python layer reports it (cases in the order of `Outcome::ALL`).
#[pyclass(
    frozen,
    eq,
    eq_int,
    from_py_object,
    rename_all = "SCREAMING_SNAKE_CASE"
)]
#[pyo3(module = "fleetbreaker._native", name = "Outcome")]
#[derive(Clone, Copy, PartialEq)]
enum CallOutcome {
    Success,
    /// A failure that counts.
    Failure,
    /// An error that does not count either way (or a call that was cancelled).
    Ignored,
    /// A success slower than `slow_call`: counts as a failure, reported as a slow call.
    Slow,
}

impl From<CallOutcome> for Outcome {
    fn from(o: CallOutcome) -> Outcome {
        Outcome::ALL[o as usize]
    }
}

/// What an operator does to a circuit (cases in the order of `Action::ALL`).
#[pyclass(
    frozen,
    eq,
    eq_int,
    from_py_object,
    rename_all = "SCREAMING_SNAKE_CASE"
)]
#[pyo3(module = "fleetbreaker._native", name = "Action")]
#[derive(Clone, Copy, PartialEq)]
enum OperatorAction {
    ForceOpen,
    ForceClosed,
    Reset,
}

/// What `acquire` decided.
#[pyclass(frozen, eq, eq_int, rename_all = "SCREAMING_SNAKE_CASE")]
#[pyo3(module = "fleetbreaker._native")]
#[derive(Clone, Copy, PartialEq)]
enum AdmissionKind {
    Admitted,
    /// The fleet's single probe of a half-open circuit.
    Probe,
    Rejected,
    /// The kill switch is on: run the call without the breaker.
    Disabled,
}

/// The answer to `acquire`: the permit to complete (`None` exactly when the call was
/// rejected; with the kill switch on, completing it does nothing), or what the rejected caller
/// sees of the circuit.
#[pyclass(module = "fleetbreaker._native", frozen, get_all)]
struct Admission {
    kind: AdmissionKind,
    permit: Option<Py<Permit>>,
    /// Admitted under the admission lease, without asking the component.
    leased: bool,
    /// A rejected call's view of the circuit (see `info_of`).
    info: Option<Py<PyDict>>,
}

/// What a caller sees of a circuit: a dict of `fleetbreaker::embed::info_values` (times in
/// epoch ms; `CircuitInfo._from_native` shows them in seconds).
fn info_of(py: Python<'_>, info: CircuitInfo) -> PyResult<Py<PyDict>> {
    settings::fields_dict(py, fleetbreaker::embed::info_values(info)).map(Bound::unbind)
}

fn acquired(py: Python<'_>, result: Result<fleetbreaker::Permit, Error>) -> PyResult<Py<PyAny>> {
    let (kind, permit, info) = match result {
        Ok(permit) => {
            let kind = match (permit.is_disabled(), permit.is_probe()) {
                (true, _) => AdmissionKind::Disabled,
                (false, true) => AdmissionKind::Probe,
                (false, false) => AdmissionKind::Admitted,
            };
            (kind, Some(permit), None)
        }
        Err(Error::Open(info)) => (AdmissionKind::Rejected, None, Some(info_of(py, *info)?)),
        Err(e) => return Err(errors::to_py(py, e)),
    };
    let leased = permit.as_ref().is_some_and(|p| p.is_leased());
    let permit = permit
        .map(|p| Py::new(py, Permit(Mutex::new(Some(p)))))
        .transpose()?;
    let admission = Admission {
        kind,
        permit,
        leased,
        info,
    };
    Ok(Py::new(py, admission)?.into_any())
}

fn done(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

#[pymethods]
impl Circuit {
    /// A breaker of circuit `name`, with `settings` (None: the circuit's, if it is in use here,
    /// else the defaults). `config` is what the circuit keeps for the package (the first
    /// breaker's stays while it is in use; see `config`). While this object and the bound
    /// method `on_transition`'s object live, the method is called with the details of each
    /// transition of the circuit.
    #[new]
    #[pyo3(signature = (environment, name, settings, config, on_transition=None))]
    fn new(
        py: Python<'_>,
        environment: &Environment,
        name: String,
        settings: Option<&settings::Settings>,
        config: Py<PyAny>,
        on_transition: Option<Py<PyAny>>,
    ) -> PyResult<Circuit> {
        let mut builder = Breaker::builder(name)
            .environment(&environment.env)
            .attachment(std::sync::Arc::new(config));
        if let Some(settings) = settings {
            builder = builder.config(settings.inner.config());
        }
        if let Some(method) = on_transition {
            // Held weakly (its object, with its function): the breaker that listens goes away
            // freely, and its hook with it.
            let method = method.bind(py);
            let listener = PyWeakrefReference::new(&method.getattr("__self__")?)?.unbind();
            let function = method.getattr("__func__")?.unbind();
            builder = builder.on_transition(move |t| {
                from_hook(|py| match listener.bind(py).upgrade() {
                    None => Ok(()),
                    Some(listener) => {
                        let fields = settings::fields_dict(py, embed::transition_values(t))?;
                        function.call1(py, (listener, fields)).map(drop)
                    }
                })
            });
        }
        // Making the circuit ready may wait for the component, which another thread may be
        // using: without the GIL.
        let breaker = check(py, py.detach(move || builder.build()))?;
        Ok(Circuit { breaker })
    }

    /// The `config` the circuit keeps: its first breaker's.
    #[getter]
    fn config(&self, py: Python<'_>) -> Py<PyAny> {
        let kept = self
            .breaker
            .attachment()
            .and_then(|a| a.downcast_ref::<Py<PyAny>>());
        kept.map_or_else(|| py.None(), |c| c.clone_ref(py))
    }

    /// Admits a call under the admission lease if it holds (counted as a success unless
    /// `leased_call_failed` says otherwise). The healthy path's only native call. Never with
    /// `slow_call`: every call is then timed, from its permit.
    fn try_admit_leased(&self) -> bool {
        self.breaker.try_admit_leased()
    }

    /// A call admitted by `try_admit_leased` ended with `outcome` (failure, slow or ignored).
    /// With `event_loop` (an async caller): None at once, or an asyncio future if the outcome
    /// must be written first; likewise for `acquire` and `complete`.
    #[pyo3(signature = (outcome, event_loop=None))]
    fn leased_call_failed(
        &self,
        py: Python<'_>,
        outcome: CallOutcome,
        event_loop: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let (breaker, outcome) = (self.breaker.clone(), Outcome::from(outcome));
        let failed = async move { breaker.with_events().leased_call_failed(outcome).await };
        bridge::call(py, event_loop, failed, done)
    }

    #[pyo3(signature = (event_loop=None))]
    fn acquire(&self, py: Python<'_>, event_loop: Option<Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let breaker = self.breaker.clone();
        let acquire = async move { breaker.with_events().acquire().await };
        bridge::call(py, event_loop, acquire, acquired)
    }

    #[pyo3(signature = (permit, outcome, event_loop=None))]
    fn complete(
        &self,
        py: Python<'_>,
        permit: &Permit,
        outcome: CallOutcome,
        event_loop: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let (permit, outcome) = (permit.take()?, Outcome::from(outcome));
        let breaker = self.breaker.clone();
        let complete = async move { breaker.with_events().complete(permit, outcome).await };
        bridge::call(py, event_loop, complete, done)
    }

    fn info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let breaker = self.breaker.clone();
        let info = check(
            py,
            bridge::block(py, async move { breaker.with_events().info().await }),
        )?;
        Ok(info_of(py, info)?.into_any())
    }

    /// An operator's action: `duration` in seconds (None: until changed), `reason` a string
    /// or None; both are checked by the host.
    #[pyo3(signature = (action, duration, reason))]
    fn act(
        &self,
        py: Python<'_>,
        action: OperatorAction,
        duration: &Bound<'_, PyAny>,
        reason: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let action = Action::ALL[action as usize];
        let checked = Override::parse(
            action,
            settings::value_of(duration),
            settings::value_of(reason),
        );
        let checked = check(py, checked.map_err(Error::Config))?;
        let breaker = self.breaker.clone();
        let info = check(py, bridge::block(py, checked.apply(breaker)))?;
        Ok(info_of(py, info)?.into_any())
    }
}

/// Call after a snapshot restore (Lambda SnapStart): environments take new identities and
/// open new connections.
#[pyfunction]
fn after_restore() {
    fleetbreaker::fork::after_restore();
}

/// The kill switch's warning, the first time it is asked for in this process.
#[pyfunction]
fn disabled_warning() -> Option<&'static str> {
    embed::disabled_warning()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Store>()?;
    m.add_class::<Clock>()?;
    m.add_class::<Environment>()?;
    m.add_class::<Event>()?;
    m.add_class::<Circuit>()?;
    m.add_class::<Permit>()?;
    m.add_class::<settings::Settings>()?;
    m.add_function(wrap_pyfunction!(settings::check_name, m)?)?;
    m.add_function(wrap_pyfunction!(settings::config_conflict, m)?)?;
    m.add_class::<bridge::PendingEvents>()?;
    m.add_function(wrap_pyfunction!(after_restore, m)?)?;
    m.add_function(wrap_pyfunction!(disabled_warning, m)?)?;
    m.add_class::<Persistence>()?;
    m.add_class::<CallOutcome>()?;
    m.add_class::<OperatorAction>()?;
    m.add_class::<AdmissionKind>()?;
    m.add_class::<Admission>()?;
    // The package's version is the Cargo workspace's (pyproject marks it dynamic).
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Armed now, so a fork right after import is seen.
    fleetbreaker::fork::watch();
    Ok(())
}
