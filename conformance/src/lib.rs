//! The conformance scenarios of fleetbreaker, as data, and a runner that executes them against
//! any [`Driver`]: the core natively, the component through the host, and (with their own
//! runners) the Python and Node packages. See `conformance/README.md` for the format.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The clock's value when a scenario starts. Times in expectations are relative to it.
pub const DEFAULT_START_MS: u64 = 1_700_000_000_000;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Equals the file name without `.json`; says which path the scenario walks.
    pub name: String,
    pub description: String,
    #[serde(default = "default_circuit")]
    pub circuit: String,
    #[serde(default)]
    pub config: ScenarioConfig,
    /// The environments sharing the store; the first one acts first.
    #[serde(default = "default_environments")]
    pub environments: Vec<String>,
    #[serde(default = "default_start")]
    pub start_ms: u64,
    pub steps: Vec<Step>,
}

fn default_circuit() -> String {
    "payments".to_string()
}

fn default_environments() -> Vec<String> {
    vec!["a".to_string()]
}

fn default_start() -> u64 {
    DEFAULT_START_MS
}

/// The configuration; an absent field takes the breaker's default. Durations in ms.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioConfig {
    /// The consecutive-failures policy's threshold.
    pub failure_threshold: Option<u32>,
    /// Selects the failure-rate policy with this threshold.
    pub failure_rate_threshold: Option<f64>,
    /// The failure-rate policy's minimum of calls in the window (default 100).
    pub minimum_calls: Option<u32>,
    pub recovery_timeout_ms: Option<u64>,
    pub success_threshold: Option<u32>,
    pub local_cache_max_age_ms: Option<u64>,
    pub backoff_multiplier: Option<f64>,
    pub max_recovery_timeout_ms: Option<u64>,
    pub probe_lease_ms: Option<u64>,
    pub store_retry_after_ms: Option<u64>,
    /// `"open"` or `"closed"`.
    pub store_failure_mode: Option<String>,
    pub minimum_environments: Option<u32>,
    pub window_ms: Option<u64>,
    /// A success slower than this is a slow call.
    pub slow_call_ms: Option<u64>,
}

impl ScenarioConfig {
    /// The breaker configuration this describes (jitter off, so runs are deterministic).
    pub fn to_config(&self) -> fleetbreaker_core::Config {
        use fleetbreaker_core::{Config, FailurePolicy, FailureRate, StoreFailureMode};
        let d = Config::default();
        let failure_policy = match self.failure_rate_threshold {
            Some(threshold) => FailurePolicy::FailureRate(FailureRate {
                threshold,
                minimum_calls: self.minimum_calls.unwrap_or(100),
            }),
            None => FailurePolicy::ConsecutiveFailures(
                self.failure_threshold.unwrap_or(d.failure_threshold()),
            ),
        };
        Config {
            failure_policy,
            recovery_timeout_ms: self.recovery_timeout_ms.unwrap_or(d.recovery_timeout_ms),
            success_threshold: self.success_threshold.unwrap_or(d.success_threshold),
            local_cache_max_age_ms: self
                .local_cache_max_age_ms
                .unwrap_or(d.local_cache_max_age_ms),
            backoff_multiplier: self.backoff_multiplier.unwrap_or(d.backoff_multiplier),
            max_recovery_timeout_ms: self.max_recovery_timeout_ms.or(d.max_recovery_timeout_ms),
            recovery_jitter: 0.0,
            probe_lease_ms: self.probe_lease_ms.or(d.probe_lease_ms),
            store_retry_after_ms: self.store_retry_after_ms.unwrap_or(d.store_retry_after_ms),
            store_failure_mode: match self.store_failure_mode.as_deref() {
                None | Some("open") => StoreFailureMode::Open,
                Some("closed") => StoreFailureMode::Closed,
                Some(other) => panic!("unknown store_failure_mode {other:?}"),
            },
            minimum_environments: self.minimum_environments.unwrap_or(d.minimum_environments),
            window_ms: self.window_ms.unwrap_or(d.window_ms),
            slow_call_ms: self.slow_call_ms.or(d.slow_call_ms),
        }
    }
}

/// The store error an injected fault stands for.
impl Fault {
    pub fn to_store_error(self) -> fleetbreaker_core::StoreError {
        fleetbreaker_core::StoreError::of_kind(self.as_str(), "injected by the scenario")
            .expect("every fault names a store error kind")
    }

    /// The kind of a store error, as scenarios name it.
    pub fn kind_of(error: &fleetbreaker_core::StoreError) -> &'static str {
        error.kind()
    }
}

impl SeenEvent {
    /// How a runner reports a breaker event.
    pub fn from_event(event: &fleetbreaker_core::Event) -> SeenEvent {
        use fleetbreaker_core::Event;
        match event {
            Event::Transition(t) => SeenEvent::Transition {
                from: t.from_state.as_str().into(),
                to: t.to_state.as_str().into(),
                reason: t.reason.as_str().into(),
                version: t.version,
                local_only: t.local_only,
            },
            Event::CorruptRecord(_) => SeenEvent::CorruptRecord,
            Event::StoreDegraded(f) => SeenEvent::StoreDegraded {
                error: Fault::kind_of(&f.error).into(),
            },
            Event::StoreRecovered(_) => SeenEvent::StoreRecovered,
        }
    }
}

impl Stored {
    pub fn from_record(r: fleetbreaker_core::Record) -> Stored {
        Stored {
            state: r.state.as_str().into(),
            version: r.version,
            trips: r.trips,
            probe_successes: r.probe_successes,
            probe_owner: r.probe_owner,
            opened_at_ms: r.opened_at_ms,
            open_until_ms: r.open_until_ms,
            closed_at_ms: r.closed_at_ms,
            failure_count: r.failure_count,
            slow_call_count: r.slow_call_count,
            override_reason: r.override_reason,
            override_until_ms: r.override_until_ms,
            updated_by: r.updated_by,
        }
    }
}

impl Info {
    pub fn from_info(i: fleetbreaker_core::CircuitInfo) -> Info {
        Info {
            state: i.state.as_str().into(),
            version: i.version,
            failure_count: i.failure_count,
            slow_call_count: i.slow_call_count,
            local_only: i.local_only,
            retry_after_ms: i.retry_after_ms,
            override_reason: i.override_reason,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Ignored,
}

impl From<Outcome> for fleetbreaker_core::Outcome {
    fn from(o: Outcome) -> fleetbreaker_core::Outcome {
        match o {
            Outcome::Success => fleetbreaker_core::Outcome::Success,
            Outcome::Failure => fleetbreaker_core::Outcome::Failure,
            Outcome::Ignored => fleetbreaker_core::Outcome::Ignored,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// A normal permit (decided by the component or under the admission lease).
    Admitted,
    /// The probe permit.
    Probe,
    Rejected,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    Unavailable,
    Timeout,
    Throttled,
    Misconfigured,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Unavailable => "unavailable",
            Fault::Timeout => "timeout",
            Fault::Throttled => "throttled",
            Fault::Misconfigured => "misconfigured",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// A comment.
    Note(String),
    /// Moves the shared clock forward.
    AdvanceMs(u64),
    /// Switches the acting environment.
    Env(String),
    Acquire(AcquireStep),
    Complete(CompleteStep),
    /// Acquire, then complete at once with `outcome`, `times` times.
    Call(CallStep),
    ForceOpen(ForceStep),
    ForceClosed(ForceStep),
    Reset(OperatorStep),
    /// Every later store call fails with this, until `null`.
    StoreFault(Option<Fault>),
    /// Replaces the stored item with one that is not a valid record.
    CorruptItem(CorruptStep),
    /// Deletes the stored item, as DynamoDB's TTL or an operator does.
    DeleteItem {},
    ExpectStore(ExpectStore),
    ExpectInfo(ExpectInfo),
    /// The events emitted since the last `expect_events`, by every environment, in order.
    ExpectEvents(Vec<ExpectEvent>),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquireStep {
    pub expect: Decision,
    /// Names the permit for a later `complete`.
    #[serde(rename = "as")]
    pub name: Option<String>,
    /// Whether the call was admitted under the admission lease, without asking the breaker.
    pub leased: Option<bool>,
    /// For a rejection: the state and the wait it reports.
    pub state: Option<String>,
    pub retry_after_ms: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteStep {
    /// A permit named by `acquire`; by default the last one acquired by the acting environment.
    pub permit: Option<String>,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallStep {
    pub outcome: Outcome,
    #[serde(default = "admitted")]
    pub expect: Decision,
    #[serde(default = "one")]
    pub times: u32,
    /// Advances the clock by this much after each call.
    #[serde(default)]
    pub every_ms: u64,
    /// How long each call takes: the clock moves this much between its admission and its
    /// outcome (a success slower than `slow_call_ms` is a slow call).
    #[serde(default)]
    pub takes_ms: u64,
}

fn admitted() -> Decision {
    Decision::Admitted
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceStep {
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub reason: String,
    /// The store error expected instead of success (`unavailable`, `timeout`, ...).
    pub expect_error: Option<Fault>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorStep {
    pub expect_error: Option<Fault>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorruptStep {
    /// The version left readable in the item, if any.
    pub version: Option<u64>,
    /// What is wrong: `unknown_state`, `missing_version`, `wrong_types`.
    pub problem: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectStore {
    /// No valid record is stored (no item, or a corrupt one).
    pub absent: Option<bool>,
    pub state: Option<String>,
    pub version: Option<u64>,
    pub trips: Option<u32>,
    pub probe_successes: Option<u32>,
    /// The environment whose call holds the probe permit; `""` for none.
    pub probe_owner: Option<String>,
    pub opened_at_ms: Option<u64>,
    pub open_until_ms: Option<u64>,
    pub closed_at_ms: Option<u64>,
    pub failure_count: Option<u32>,
    pub slow_call_count: Option<u32>,
    pub override_reason: Option<String>,
    pub override_until_ms: Option<u64>,
    pub updated_by: Option<String>,
    /// Since the scenario started: successful loads, successful writes, and calls that failed
    /// with an injected fault (attempts the breaker made while the store was down).
    pub reads: Option<u64>,
    pub writes: Option<u64>,
    pub failed_calls: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectInfo {
    pub state: Option<String>,
    pub version: Option<u64>,
    pub failure_count: Option<u32>,
    pub slow_call_count: Option<u32>,
    pub local_only: Option<bool>,
    /// `null` expects no wait reported.
    #[serde(default, deserialize_with = "some_nullable")]
    pub retry_after_ms: Option<Option<u64>>,
    pub override_reason: Option<String>,
}

fn some_nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectEvent {
    pub env: String,
    pub kind: EventKind,
    pub from: Option<String>,
    pub to: Option<String>,
    pub reason: Option<String>,
    pub version: Option<u64>,
    /// For transitions; `false` unless given.
    #[serde(default)]
    pub local_only: bool,
    /// For `store_degraded`: the kind of store error.
    pub error: Option<Fault>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Transition,
    CorruptRecord,
    StoreDegraded,
    StoreRecovered,
}

/// A permit handed out by a driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PermitHandle(pub u64);

#[derive(Clone, Debug, PartialEq)]
pub enum Acquired {
    Admitted {
        permit: PermitHandle,
        probe: bool,
        leased: bool,
    },
    Rejected {
        state: String,
        retry_after_ms: Option<u64>,
    },
}

/// The stored record, in plain terms. Times are absolute.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stored {
    pub state: String,
    pub version: u64,
    pub trips: u32,
    pub probe_successes: u32,
    pub probe_owner: Option<String>,
    pub opened_at_ms: Option<u64>,
    pub open_until_ms: Option<u64>,
    pub closed_at_ms: Option<u64>,
    pub failure_count: u32,
    pub slow_call_count: u32,
    pub override_reason: Option<String>,
    pub override_until_ms: Option<u64>,
    pub updated_by: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Info {
    pub state: String,
    pub version: u64,
    pub failure_count: u32,
    pub slow_call_count: u32,
    pub local_only: bool,
    pub retry_after_ms: Option<u64>,
    pub override_reason: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCounts {
    pub reads: u64,
    pub writes: u64,
    pub failed_calls: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SeenEvent {
    Transition {
        from: String,
        to: String,
        reason: String,
        version: u64,
        local_only: bool,
    },
    CorruptRecord,
    StoreDegraded {
        error: String,
    },
    StoreRecovered,
}

/// What a runner implements to execute scenarios: the scenario's environments sharing one
/// store and one manual clock, each a separate instance of the breaker.
pub trait Driver {
    /// Asks for a permit, honouring the admission lease the way the runner's host does.
    fn acquire(&mut self, env: &str) -> Acquired;
    fn complete(&mut self, env: &str, permit: PermitHandle, outcome: Outcome);
    /// On error, the kind of store error (`unavailable`, ...).
    fn force_open(
        &mut self,
        env: &str,
        duration_ms: Option<u64>,
        reason: &str,
    ) -> Result<(), String>;
    fn force_closed(
        &mut self,
        env: &str,
        duration_ms: Option<u64>,
        reason: &str,
    ) -> Result<(), String>;
    fn reset(&mut self, env: &str) -> Result<(), String>;
    fn info(&mut self, env: &str) -> Info;
    fn advance(&mut self, ms: u64);
    fn set_store_fault(&mut self, fault: Option<Fault>);
    fn corrupt_item(&mut self, version: Option<u64>, problem: &str);
    /// Deletes the circuit's item.
    fn delete_item(&mut self);
    /// The valid stored record, or `None` (no item, or a corrupt one).
    fn stored(&mut self) -> Option<Stored>;
    /// So far: successful loads, successful writes, calls failed by an injected fault.
    fn store_counts(&mut self) -> StoreCounts;
    /// Events emitted since the last call, with the environment that emitted each.
    fn take_events(&mut self) -> Vec<(String, SeenEvent)>;
    /// The identity the driver gave to a scenario environment (probe tokens start with it).
    fn environment_id(&self, env: &str) -> String;
}

/// Where and why a scenario failed.
#[derive(Debug)]
pub struct Failure {
    pub scenario: String,
    pub step: usize,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} step {}: {}", self.scenario, self.step, self.message)
    }
}

/// Loads every `*.json` under `dir`, sorted by name. A scenario whose `name` is not its file
/// name is an error, so names stay honest.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut scenarios = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let scenario: Scenario =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let stem = path.file_stem().unwrap().to_string_lossy();
        if scenario.name != stem {
            return Err(format!(
                "{}: name {:?} differs from the file name",
                path.display(),
                scenario.name
            ));
        }
        scenarios.push(scenario);
    }
    if scenarios.is_empty() {
        return Err(format!("no scenarios found in {}", dir.display()));
    }
    Ok(scenarios)
}

/// The scenario folder of this repository.
pub fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// Runs every scenario of the repository with a fresh driver each, printing one line per
/// scenario. Panics with every failure listed if any failed.
pub fn run_all<D: Driver>(runner: &str, mut make: impl FnMut(&Scenario) -> D) -> usize {
    let scenarios = load_dir(&scenario_dir()).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    for scenario in &scenarios {
        let mut driver = make(scenario);
        match run(scenario, &mut driver) {
            Ok(()) => println!("{runner}: ok   {}", scenario.name),
            Err(f) => {
                println!("{runner}: FAIL {f}");
                failures.push(f.to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed on {runner}:\n{}",
        failures.len(),
        scenarios.len(),
        failures.join("\n")
    );
    scenarios.len()
}

struct Runner<'a, D: Driver> {
    scenario: &'a Scenario,
    driver: &'a mut D,
    env: String,
    permits: BTreeMap<String, PermitHandle>,
    last_permit: BTreeMap<String, PermitHandle>,
    events: Vec<(String, SeenEvent)>,
}

/// Runs one scenario.
pub fn run<D: Driver>(scenario: &Scenario, driver: &mut D) -> Result<(), Failure> {
    let mut runner = Runner {
        scenario,
        env: scenario.environments[0].clone(),
        driver,
        permits: BTreeMap::new(),
        last_permit: BTreeMap::new(),
        events: Vec::new(),
    };
    for (i, step) in scenario.steps.iter().enumerate() {
        runner.step(step).map_err(|message| Failure {
            scenario: scenario.name.clone(),
            step: i + 1,
            message,
        })?;
    }
    Ok(())
}

fn check<T: PartialEq + fmt::Debug>(
    what: &str,
    expected: &Option<T>,
    got: &T,
) -> Result<(), String> {
    match expected {
        Some(e) if e != got => Err(format!("{what}: expected {e:?}, got {got:?}")),
        _ => Ok(()),
    }
}

impl<D: Driver> Runner<'_, D> {
    fn rel(&self, t: Option<u64>) -> Option<u64> {
        t.map(|t| t.saturating_sub(self.scenario.start_ms))
    }

    fn acquire(&mut self, step: &AcquireStep) -> Result<(), String> {
        let got = self.driver.acquire(&self.env);
        match (&got, step.expect) {
            (
                Acquired::Admitted {
                    permit,
                    probe,
                    leased,
                },
                Decision::Admitted | Decision::Probe,
            ) => {
                let want_probe = step.expect == Decision::Probe;
                if *probe != want_probe {
                    return Err(format!("expected {:?}, got {got:?}", step.expect));
                }
                check("leased", &step.leased, leased)?;
                self.last_permit.insert(self.env.clone(), *permit);
                if let Some(name) = &step.name {
                    self.permits.insert(name.clone(), *permit);
                }
                Ok(())
            }
            (
                Acquired::Rejected {
                    state,
                    retry_after_ms,
                },
                Decision::Rejected,
            ) => {
                check("rejection state", &step.state, state)?;
                if step.retry_after_ms.is_some() {
                    check(
                        "retry_after_ms",
                        &step.retry_after_ms.map(Some),
                        retry_after_ms,
                    )?;
                }
                Ok(())
            }
            _ => Err(format!("expected {:?}, got {got:?}", step.expect)),
        }
    }

    fn operator(
        &mut self,
        result: Result<(), String>,
        expect: Option<Fault>,
    ) -> Result<(), String> {
        match (result, expect) {
            (Ok(()), None) => Ok(()),
            (Err(e), Some(f)) if e == f.as_str() => Ok(()),
            (r, e) => Err(format!("operator call: expected {e:?}, got {r:?}")),
        }
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Note(_) => Ok(()),
            Step::AdvanceMs(ms) => {
                self.driver.advance(*ms);
                Ok(())
            }
            Step::Env(env) => {
                if !self.scenario.environments.contains(env) {
                    return Err(format!("unknown environment {env:?}"));
                }
                self.env = env.clone();
                Ok(())
            }
            Step::Acquire(a) => self.acquire(a),
            Step::Complete(c) => {
                let permit = match &c.permit {
                    Some(name) => *self
                        .permits
                        .get(name)
                        .ok_or_else(|| format!("no permit named {name:?}"))?,
                    None => *self
                        .last_permit
                        .get(&self.env)
                        .ok_or("no permit acquired yet by this environment")?,
                };
                self.driver.complete(&self.env, permit, c.outcome);
                Ok(())
            }
            Step::Call(c) => {
                for i in 0..c.times {
                    let acquire = AcquireStep {
                        expect: c.expect,
                        name: None,
                        leased: None,
                        state: None,
                        retry_after_ms: None,
                    };
                    self.acquire(&acquire)
                        .map_err(|e| format!("call {} of {}: {e}", i + 1, c.times))?;
                    if c.expect != Decision::Rejected {
                        let permit = self.last_permit[&self.env];
                        if c.takes_ms > 0 {
                            self.driver.advance(c.takes_ms);
                        }
                        self.driver.complete(&self.env, permit, c.outcome);
                    }
                    if c.every_ms > 0 {
                        self.driver.advance(c.every_ms);
                    }
                }
                Ok(())
            }
            Step::ForceOpen(f) => {
                let r = self.driver.force_open(&self.env, f.duration_ms, &f.reason);
                self.operator(r, f.expect_error)
            }
            Step::ForceClosed(f) => {
                let r = self
                    .driver
                    .force_closed(&self.env, f.duration_ms, &f.reason);
                self.operator(r, f.expect_error)
            }
            Step::Reset(o) => {
                let r = self.driver.reset(&self.env);
                self.operator(r, o.expect_error)
            }
            Step::StoreFault(f) => {
                self.driver.set_store_fault(*f);
                Ok(())
            }
            Step::CorruptItem(c) => {
                self.driver.corrupt_item(c.version, &c.problem);
                Ok(())
            }
            Step::DeleteItem {} => {
                self.driver.delete_item();
                Ok(())
            }
            Step::ExpectStore(e) => self.expect_store(e),
            Step::ExpectInfo(e) => {
                let got = self.driver.info(&self.env);
                check("info.state", &e.state, &got.state)?;
                check("info.version", &e.version, &got.version)?;
                check("info.failure_count", &e.failure_count, &got.failure_count)?;
                check(
                    "info.slow_call_count",
                    &e.slow_call_count,
                    &got.slow_call_count,
                )?;
                check("info.local_only", &e.local_only, &got.local_only)?;
                check(
                    "info.retry_after_ms",
                    &e.retry_after_ms,
                    &got.retry_after_ms,
                )?;
                if e.override_reason.is_some() {
                    check(
                        "info.override_reason",
                        &e.override_reason.clone().map(Some),
                        &got.override_reason,
                    )?;
                }
                Ok(())
            }
            Step::ExpectEvents(expected) => {
                self.events.extend(self.driver.take_events());
                let got = std::mem::take(&mut self.events);
                if got.len() != expected.len() {
                    return Err(format!(
                        "expected {} events, got {}: {got:?}",
                        expected.len(),
                        got.len()
                    ));
                }
                for (i, (e, (env, seen))) in expected.iter().zip(&got).enumerate() {
                    expect_event(e, env, seen)
                        .map_err(|m| format!("event {}: {m}; all: {got:?}", i + 1))?;
                }
                Ok(())
            }
        }
    }

    fn expect_store(&mut self, e: &ExpectStore) -> Result<(), String> {
        let counts = self.driver.store_counts();
        check("reads", &e.reads, &counts.reads)?;
        check("writes", &e.writes, &counts.writes)?;
        check("failed_calls", &e.failed_calls, &counts.failed_calls)?;
        let stored = self.driver.stored();
        check("absent", &e.absent, &stored.is_none())?;
        let Some(s) = stored else {
            let wants_fields = e.state.is_some() || e.version.is_some() || e.trips.is_some();
            return if wants_fields {
                Err("expected a stored record, found none".into())
            } else {
                Ok(())
            };
        };
        check("state", &e.state, &s.state)?;
        check("version", &e.version, &s.version)?;
        check("trips", &e.trips, &s.trips)?;
        check("probe_successes", &e.probe_successes, &s.probe_successes)?;
        check("failure_count", &e.failure_count, &s.failure_count)?;
        check("slow_call_count", &e.slow_call_count, &s.slow_call_count)?;
        if let Some(owner) = &e.probe_owner {
            let ok = match (owner.as_str(), &s.probe_owner) {
                ("", None) => true,
                ("", Some(_)) | (_, None) => false,
                (env, Some(token)) => {
                    token.starts_with(&format!("{}#", self.driver.environment_id(env)))
                }
            };
            if !ok {
                return Err(format!(
                    "probe_owner: expected {owner:?}, got {:?}",
                    s.probe_owner
                ));
            }
        }
        check(
            "opened_at_ms",
            &e.opened_at_ms.map(Some),
            &self.rel(s.opened_at_ms),
        )?;
        check(
            "open_until_ms",
            &e.open_until_ms.map(Some),
            &self.rel(s.open_until_ms),
        )?;
        check(
            "closed_at_ms",
            &e.closed_at_ms.map(Some),
            &self.rel(s.closed_at_ms),
        )?;
        check(
            "override_until_ms",
            &e.override_until_ms.map(Some),
            &self.rel(s.override_until_ms),
        )?;
        check(
            "override_reason",
            &e.override_reason.clone().map(Some),
            &s.override_reason,
        )?;
        if let Some(env) = &e.updated_by {
            check(
                "updated_by",
                &Some(self.driver.environment_id(env)),
                &s.updated_by,
            )?;
        }
        Ok(())
    }
}

fn expect_event(e: &ExpectEvent, env: &str, seen: &SeenEvent) -> Result<(), String> {
    if e.env != env {
        return Err(format!(
            "expected from environment {:?}, got {env:?}",
            e.env
        ));
    }
    match (e.kind, seen) {
        (
            EventKind::Transition,
            SeenEvent::Transition {
                from,
                to,
                reason,
                version,
                local_only,
            },
        ) => {
            check("from", &e.from, from)?;
            check("to", &e.to, to)?;
            check("reason", &e.reason, reason)?;
            check("version", &e.version, version)?;
            check("local_only", &Some(e.local_only), local_only)
        }
        (EventKind::CorruptRecord, SeenEvent::CorruptRecord) => Ok(()),
        (EventKind::StoreDegraded, SeenEvent::StoreDegraded { error }) => {
            check("error", &e.error.map(|f| f.as_str().to_string()), error)
        }
        (EventKind::StoreRecovered, SeenEvent::StoreRecovered) => Ok(()),
        (kind, seen) => Err(format!("expected {kind:?}, got {seen:?}")),
    }
}
