'use strict';
// The conformance scenarios (conformance/scenarios/*.json) through the JavaScript API, with a
// ManualClock: each scenario environment is its own environment on one in-memory store.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const {
  CircuitBreaker,
  CircuitBreakerOpenError,
  CircuitBreakerPersistenceError,
  InMemoryPersistence,
  ManualClock,
  testing,
} = require('../lib/index.js');
const { flushEvents } = require('./helpers.js');

const dir = path.join(__dirname, '..', '..', 'conformance', 'scenarios');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

test('the scenarios are found', () => {
  assert.ok(files.length >= 20, `expected the scenarios in ${dir}`);
});

function configOf(c = {}) {
  const s = (ms) => ms / 1000;
  return {
    failureThreshold: c.failure_threshold,
    failureRateThreshold: c.failure_rate_threshold,
    minimumCalls: c.minimum_calls ?? 100,
    recoveryTimeout: s(c.recovery_timeout_ms ?? 30000),
    successThreshold: c.success_threshold ?? 3,
    localCacheMaxAge: s(c.local_cache_max_age_ms ?? 5000),
    backoffMultiplier: c.backoff_multiplier ?? 1,
    maxRecoveryTimeout: c.max_recovery_timeout_ms === undefined ? null : s(c.max_recovery_timeout_ms),
    probeLease: c.probe_lease_ms === undefined ? null : s(c.probe_lease_ms),
    storeRetryAfter: s(c.store_retry_after_ms ?? 5000),
    storeFailureMode: c.store_failure_mode ?? 'open',
    minimumEnvironments: c.minimum_environments ?? 1,
    window: s(c.window_ms ?? 60000),
    slowCall: c.slow_call_ms === undefined ? null : s(c.slow_call_ms),
  };
}

const quiet = { info() {}, warn() {}, error() {} };

class Runner {
  constructor(scenario) {
    this.s = scenario;
    this.startMs = scenario.start_ms ?? 1_700_000_000_000;
    this.circuit = scenario.circuit ?? 'payments';
    this.clock = new ManualClock(this.startMs);
    this.root = new InMemoryPersistence({ logger: quiet });
    this.envs = scenario.environments ?? ['a'];
    this.breakers = {};
    this.events = [];
    const config = configOf(scenario.config);
    for (const name of this.envs) {
      const persistence = this.root.environment({ id: `env-${name}` });
      this.breakers[name] = new CircuitBreaker({ name: this.circuit, persistence, config, clock: this.clock });
      testing.recordEvents(persistence, (e) => this.events.push([name, e]), this.clock);
    }
    this.env = this.envs[0];
    this.permits = {};
    this.last = {};
  }

  rel(t) {
    return t === null || t === undefined ? null : t - this.startMs;
  }

  async acquire({ expect, as, leased, state, retry_after_ms: retry }) {
    let permit;
    try {
      permit = await this.breakers[this.env].acquire();
    } catch (e) {
      if (!(e instanceof CircuitBreakerOpenError)) throw e;
      assert.equal(expect, 'rejected', `expected ${expect}, got a rejection`);
      if (state !== undefined) assert.equal(e.circuit.state, state);
      if (retry !== undefined) assert.equal(e.circuit.retryAfterMs, retry);
      return;
    }
    assert.notEqual(expect, 'rejected', 'expected a rejection');
    assert.equal(permit.probe, expect === 'probe', `expected ${expect}`);
    if (leased !== undefined) assert.equal(permit.leased, leased, 'leased');
    this.last[this.env] = permit;
    if (as) this.permits[as] = permit;
  }

  complete(permit, outcome) {
    return { success: () => permit.success(), failure: () => permit.failure(), ignored: () => permit.ignore() }[outcome]();
  }

  async operator(call, expectError) {
    try {
      await call();
    } catch (e) {
      if (!(e instanceof CircuitBreakerPersistenceError)) throw e;
      assert.equal(e.kind, expectError, 'store error kind');
      return;
    }
    assert.equal(expectError, undefined, `expected the store error ${expectError}`);
  }

  async step(step) {
    const [[kind, arg]] = Object.entries(step);
    const b = this.breakers[this.env];
    switch (kind) {
      case 'note':
        return;
      case 'advance_ms':
        return this.clock.advance(arg / 1000);
      case 'env':
        this.env = arg;
        return;
      case 'acquire':
        return this.acquire(arg);
      case 'complete':
        return this.complete(arg.permit ? this.permits[arg.permit] : this.last[this.env], arg.outcome);
      case 'call': {
        const expect = arg.expect ?? 'admitted';
        for (let i = 0; i < (arg.times ?? 1); i++) {
          await this.acquire({ expect });
          if (expect !== 'rejected') {
            if (arg.takes_ms) this.clock.advance(arg.takes_ms / 1000);
            await this.complete(this.last[this.env], arg.outcome);
          }
          if (arg.every_ms) this.clock.advance(arg.every_ms / 1000);
        }
        return;
      }
      case 'force_open':
      case 'force_closed': {
        const d = arg.duration_ms;
        const method = kind === 'force_open' ? 'forceOpen' : 'forceClosed';
        return this.operator(() => b[method]({ duration: d === undefined || d === null ? undefined : d / 1000, reason: arg.reason ?? '' }), arg.expect_error);
      }
      case 'reset':
        return this.operator(() => b.reset(), arg.expect_error);
      case 'store_fault':
        return testing.setStoreFault(this.root, arg);
      case 'corrupt_item':
        return testing.putCorruptItem(this.root, this.circuit, arg.version, arg.problem);
      case 'delete_item':
        return testing.deleteItem(this.root, this.circuit);
      case 'expect_store':
        return this.expectStore(arg);
      case 'expect_info': {
        const i = await b.info();
        const got = {
          state: i.state, version: i.version, failure_count: i.failureCount, slow_call_count: i.slowCallCount, local_only: i.localOnly,
          override_reason: i.overrideReason, retry_after_ms: i.retryAfterMs,
        };
        for (const [key, want] of Object.entries(arg)) assert.equal(got[key], want, `info.${key}`);
        return;
      }
      case 'expect_events':
        return this.expectEvents(arg);
      default:
        throw new Error(`unknown step ${kind}`);
    }
  }

  expectStore(e) {
    const counts = testing.storeCounts(this.root);
    for (const [key, got] of [['reads', counts.reads], ['writes', counts.writes], ['failed_calls', counts.failedCalls]]) {
      if (e[key] !== undefined) assert.equal(got, e[key], key);
    }
    const r = testing.storedRecord(this.root, this.circuit);
    if (e.absent !== undefined) assert.equal(r === null, e.absent, 'absent');
    if (r === null) {
      assert.ok(!['state', 'version', 'trips'].some((k) => k in e), 'expected a stored record');
      return;
    }
    const plain = {
      state: r.state, version: r.version, trips: r.trips, probe_successes: r.probeSuccesses,
      failure_count: r.failureCount, slow_call_count: r.slowCallCount, override_reason: r.overrideReason ?? null,
    };
    for (const key of Object.keys(plain)) if (e[key] !== undefined) assert.equal(plain[key], e[key], key);
    const times = { opened_at_ms: r.openedAtMs, open_until_ms: r.openUntilMs, closed_at_ms: r.closedAtMs, override_until_ms: r.overrideUntilMs };
    for (const [key, value] of Object.entries(times)) if (e[key] !== undefined) assert.equal(this.rel(value), e[key], key);
    if (e.probe_owner !== undefined) {
      if (e.probe_owner === '') assert.equal(r.probeOwner ?? null, null, 'probe_owner');
      else assert.ok(String(r.probeOwner).startsWith(`env-${e.probe_owner}#`), `probe_owner ${r.probeOwner}`);
    }
    if (e.updated_by !== undefined) assert.equal(r.updatedBy, `env-${e.updated_by}`);
  }

  async expectEvents(expected) {
    await flushEvents();
    const got = this.events.splice(0);
    assert.equal(got.length, expected.length, `expected ${expected.length} events, got ${JSON.stringify(got)}`);
    expected.forEach((want, i) => {
      const [env, e] = got[i];
      assert.equal(env, want.env, `event ${i + 1} environment`);
      assert.equal(e.kind, want.kind, `event ${i + 1} kind`);
      if (e.kind === 'transition') {
        for (const [key, value] of [['from', e.fromState], ['to', e.toState], ['reason', e.reason], ['version', e.version]]) {
          if (want[key] !== undefined) assert.equal(value, want[key], `event ${i + 1} ${key}`);
        }
        assert.equal(e.localOnly, want.local_only ?? false, `event ${i + 1} local_only`);
      } else if (e.kind === 'store_degraded' && want.error !== undefined) {
        assert.equal(e.error, want.error);
      }
    });
  }
}

for (const file of files) {
  const scenario = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
  test(scenario.name, async () => {
    assert.equal(`${scenario.name}.json`, file);
    const runner = new Runner(scenario);
    for (const [i, step] of scenario.steps.entries()) {
      try {
        await runner.step(step);
        // Events arrive through a queue per environment: let each step's arrive before the
        // next step, so their order across environments is the order they happened in.
        await flushEvents();
      } catch (e) {
        e.message = `${scenario.name} step ${i + 1} ${JSON.stringify(step)}: ${e.message}`;
        throw e;
      }
    }
  });
}
