'use strict';
// The JavaScript API: results and errors unchanged, rejections with their code and circuit,
// callbacks, classification, configuration errors naming the field, overrides, sharing.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  circuitBreaker,
  CircuitBreaker,
  CircuitBreakerError,
  CircuitBreakerOpenError,
  CircuitBreakerPersistenceError,
  CircuitBreakerConfigError,
  CircuitState,
  DynamoDBPersistence,
  InMemoryPersistence,
  SQLitePersistence,
  ManualClock,
  testing,
} = require('../lib/index.js');
const { flushEvents } = require('./helpers.js');

class Downstream extends Error {}

function breaker(config = {}, extra = {}) {
  return new CircuitBreaker({ name: 'payments', persistence: new InMemoryPersistence(), config, clock: new ManualClock(), ...extra });
}

test('results and errors reach the caller unchanged, sync functions included', async () => {
  const clock = new ManualClock();
  const charge = circuitBreaker(async (amount, { currency }) => ({ amount, currency }), {
    name: 'payments',
    persistence: new InMemoryPersistence(),
    clock,
  });
  assert.deepEqual(await charge(5, { currency: 'USD' }), { amount: 5, currency: 'USD' });
  const double = circuitBreaker(function double(x) { return x * 2; }, { name: 'sync', persistence: new InMemoryPersistence(), clock });
  const result = double(21);
  assert.ok(result instanceof Promise, 'a sync function still returns a Promise');
  assert.equal(await result, 42);
  const error = new Downstream('original');
  const failing = circuitBreaker(() => { throw error; }, { name: 'throws', persistence: new InMemoryPersistence(), clock });
  await assert.rejects(failing(), (e) => e === error, 'the very same error object');
  assert.equal(double.name, 'double', 'the wrapper keeps the function name');
  assert.ok(double.circuitBreaker instanceof CircuitBreaker);
});

test('consecutive failures open the circuit; a rejection carries its code and the circuit', async () => {
  const clock = new ManualClock(1_000_000);
  const b = breaker({ failureThreshold: 3, recoveryTimeout: 30 }, { clock });
  for (let i = 0; i < 3; i++) await assert.rejects(b.call(() => { throw new Downstream(); }), Downstream);
  clock.advance(10);
  let ran = false;
  const err = await b.call(() => { ran = true; }).catch((e) => e);
  assert.equal(ran, false, 'a rejected call is not run');
  assert.ok(err instanceof CircuitBreakerOpenError && err instanceof CircuitBreakerError);
  assert.equal(err.code, 'ERR_CIRCUIT_OPEN');
  assert.equal(err.message, "Circuit 'payments' is open.");
  assert.equal(err.retryAfterMs, 20_000);
  assert.equal(err.circuit.state, CircuitState.OPEN);
  assert.equal(err.circuit.failureCount, 3);
  assert.equal(err.circuit.openedAtMs, 1_000_000);
});

test('the failure-rate policy trips on the share of failed calls; healthy calls write nothing', async () => {
  const clock = new ManualClock(1_000_000);
  const persistence = new InMemoryPersistence();
  const b = breaker({ failureRateThreshold: 0.5, minimumCalls: 10, window: 10 }, { clock, persistence });
  assert.equal(b.config.failureThreshold, null, 'no consecutive threshold under the rate policy');
  assert.equal(b.config.failureRateThreshold, 0.5);
  assert.equal(b.config.minimumCalls, 10);
  for (let i = 0; i < 30; i++) {
    assert.equal(await b.call(() => 'ok'), 'ok');
    clock.advance(0.1);
  }
  assert.equal(testing.storeCounts(persistence).writes, 0);
  let failed = 0;
  for (;;) {
    const err = await b.call(() => { throw new Downstream(); }).catch((e) => e);
    if (err instanceof CircuitBreakerOpenError) break;
    assert.ok(err instanceof Downstream);
    failed += 1;
    assert.ok(failed < 100, 'the failure rate never tripped the circuit');
    clock.advance(0.3);
  }
  // A first report counts at least 3 / 0.5 = 6 calls: one failure alone never trips it.
  assert.ok(failed > 1, `${failed} failures`);
  assert.equal(testing.storeCounts(persistence).writes, 1);
  assert.throws(
    () => breaker({ failureThreshold: 5, failureRateThreshold: 0.2 }),
    (e) => e instanceof CircuitBreakerConfigError && e.field === 'failureRateThreshold'
      && e.message === 'invalid failureRateThreshold: cannot be set together with failureThreshold: each selects a failure policy (the fleet\'s failure rate, or consecutive failures in one environment); set one',
  );
});

test('slow calls count as failures, keep their result and are reported apart', async () => {
  const clock = new ManualClock(1_000_000);
  const seen = [];
  const b = breaker({ failureThreshold: 3, slowCall: 0.5 }, { clock, onTransition: (t) => seen.push(t) });
  assert.equal(b.config.slowCall, 0.5);
  const answersIn = (seconds) => () => { clock.advance(seconds); return 'late'; };
  assert.equal(await b.call(answersIn(0.8)), 'late', 'a slow success still returns its result');
  let info = await b.info();
  assert.deepEqual([info.failureCount, info.slowCallCount], [1, 1]);
  assert.equal(await b.call(answersIn(0.1)), 'late');
  assert.equal((await b.info()).failureCount, 0, 'a fast success ends the streak');
  await b.call(answersIn(0.8));
  await b.call(answersIn(0.8));
  await assert.rejects(b.call(() => { throw new Downstream(); }), Downstream);
  const err = await b.call(() => 'never').catch((e) => e);
  assert.ok(err instanceof CircuitBreakerOpenError);
  assert.deepEqual([err.circuit.failureCount, err.circuit.slowCallCount], [3, 2]);
  await flushEvents();
  assert.deepEqual(seen.map((t) => [t.reason, t.failureCount, t.slowCallCount]), [['tripped', 3, 2]]);
});

test('the stored record shows every field of the record, camelCase', async () => {
  const clock = new ManualClock(1_000_000);
  const persistence = new InMemoryPersistence();
  const b = breaker({ failureThreshold: 1, recoveryTimeout: 30 }, { clock, persistence });
  await assert.rejects(b.call(() => { throw new Downstream(); }), Downstream);
  const record = testing.storedRecord(persistence, 'payments');
  // The one field list of the record, in its order: a field added there shows up here.
  assert.deepEqual(Object.keys(record), [
    'state', 'version', 'openedAtMs', 'openUntilMs', 'trips', 'probeOwner',
    'probeLeaseUntilMs', 'probeSuccesses', 'closedAtMs', 'failureCount', 'slowCallCount',
    'updatedAtMs', 'updatedBy', 'overrideReason', 'overrideUntilMs', 'expiresAtMs',
  ]);
  assert.deepEqual([record.state, record.version, record.trips], ['OPEN', 1, 1]);
  assert.deepEqual([record.openedAtMs, record.openUntilMs], [1_000_000, 1_030_000]);
  assert.equal(record.probeOwner, null);
  assert.ok(record.expiresAtMs > 1_030_000);
});

test('onCircuitOpen gets the arguments then the circuit, and its value is the result', async () => {
  const seen = [];
  const pay = circuitBreaker(async (order) => { throw new Downstream(order.id); }, {
    name: 'payments',
    persistence: new InMemoryPersistence(),
    config: { failureThreshold: 1 },
    clock: new ManualClock(),
    onCircuitOpen: (order, circuit) => {
      seen.push([order.id, circuit.state]);
      if (order.id === 'boom') throw new Error('fallback failed');
      return { queued: true };
    },
  });
  await assert.rejects(pay({ id: 'a' }), Downstream);
  assert.deepEqual(await pay({ id: 'b' }), { queued: true });
  assert.deepEqual(seen, [['b', 'OPEN']]);
  await assert.rejects(pay({ id: 'boom' }), /fallback failed/);
});

test('isFailure decides what counts', async () => {
  class NotFound extends Error {}
  const b = breaker({ failureThreshold: 1 }, { isFailure: (e) => !(e instanceof NotFound) });
  for (let i = 0; i < 5; i++) await assert.rejects(b.call(() => { throw new NotFound(); }), NotFound);
  assert.equal((await b.info()).state, 'CLOSED');
  await assert.rejects(b.call(() => { throw new Downstream(); }), Downstream);
  assert.equal((await b.info()).state, 'OPEN');
});

test('events are logged through the logger with the one text of every language', async () => {
  // The texts come from the host (fleetbreaker::events::log_line); Python logs the same ones.
  const lines = [];
  const logger = Object.fromEntries(['info', 'warn', 'error'].map((level) => [level, (text) => lines.push([level, text])]));
  const persistence = new InMemoryPersistence({ logger });
  const b = breaker({ failureThreshold: 1 }, { persistence });
  await assert.rejects(b.call(() => { throw new Downstream(); }), Downstream);
  testing.setStoreFault(persistence, 'misconfigured');
  const orders = new CircuitBreaker({ name: 'orders', persistence, clock: new ManualClock() });
  assert.equal(await orders.call(() => 'ok'), 'ok');
  await flushEvents();
  assert.deepEqual(lines, [
    ['info', "fleetbreaker: circuit 'payments': CLOSED -> OPEN (tripped), version 1"],
    ['error', "fleetbreaker: circuit 'orders': store misconfigured: injected; protecting locally until the store answers again"],
  ]);
});

test('onTransition receives each write; a throwing hook is logged and ignored', async () => {
  const clock = new ManualClock(2_000_000);
  const seen = [];
  const warnings = [];
  const persistence = new InMemoryPersistence({ logger: { info() {}, warn: (...a) => warnings.push(a.join(' ')), error() {} } });
  const b = new CircuitBreaker({
    name: 'payments', persistence, clock,
    config: { failureThreshold: 1, recoveryTimeout: 5, successThreshold: 1 },
    onTransition: (t) => seen.push(t),
  });
  new CircuitBreaker({ name: 'payments', persistence, clock, config: b.config, onTransition: () => { throw new Error('metrics down'); } });
  await assert.rejects(b.call(() => { throw new Downstream(); }));
  clock.advance(5);
  assert.equal(await b.call(() => 'ok'), 'ok');
  await flushEvents();
  assert.deepEqual(seen.map((t) => [t.fromState, t.toState, t.reason, t.version]), [
    ['CLOSED', 'OPEN', 'tripped', 1],
    ['OPEN', 'HALF_OPEN', 'probe_started', 2],
    ['HALF_OPEN', 'CLOSED', 'recovered', 3],
  ]);
  assert.equal(seen[0].circuitName, 'payments');
  assert.equal(seen[0].openedAtMs, 2_000_000);
  assert.equal(seen[0].atMs, 2_000_000);
  assert.equal(warnings.length, 3);
  assert.match(warnings[0], /onTransition hook for circuit 'payments' threw; ignoring/);
});

test('an invalid configuration throws CircuitBreakerConfigError with its code and field set natively', () => {
  const cases = [
    [{ failureThreshold: 0 }, 'failureThreshold'],
    [{ failureThreshold: '5' }, 'failureThreshold'],
    [{ successThreshold: 1.5 }, 'successThreshold'],
    [{ recoveryTimeout: 0 }, 'recoveryTimeout'],
    [{ recoveryTimeout: Infinity }, 'recoveryTimeout'],
    [{ localCacheMaxAge: -1 }, 'localCacheMaxAge'],
    [{ backoffMultiplier: 0.5 }, 'backoffMultiplier'],
    [{ maxRecoveryTimeout: 1 }, 'maxRecoveryTimeout'],
    [{ recoveryJitter: 2 }, 'recoveryJitter'],
    [{ probeLease: 0 }, 'probeLease'],
    [{ storeTimeout: 120 }, 'storeTimeout'],
    [{ storeRetryAfter: NaN }, 'storeRetryAfter'],
    [{ storeFailureMode: 'maybe' }, 'storeFailureMode'],
    [{ recoveryTimout: 30 }, 'config'],
    ['fast', 'config'],
  ];
  for (const [config, field] of cases) {
    assert.throws(
      () => breaker(config),
      (e) => e instanceof CircuitBreakerConfigError && e instanceof CircuitBreakerError
        && e.code === 'ERR_CIRCUIT_CONFIG' && e.field === field && e.message.startsWith(`invalid ${field}: `),
      `${JSON.stringify(config)}`,
    );
  }
  // The code travels as a property: a message that looks like another code changes nothing.
  assert.throws(() => breaker({ storeFailureMode: '[ERR_CIRCUIT_STORE:timeout] x' }), (e) => e.code === 'ERR_CIRCUIT_CONFIG' && e.field === 'storeFailureMode');
  // Explicit undefined is an absent field (its default).
  assert.equal(breaker({ failureThreshold: undefined }).config.failureThreshold, 5);
});

test('names, options and persistence arguments are checked', () => {
  const persistence = new InMemoryPersistence();
  const named = (e) => e instanceof CircuitBreakerConfigError && e.field === 'name';
  assert.throws(() => new CircuitBreaker({ name: '', persistence }), named);
  assert.throws(() => new CircuitBreaker({ name: 'x'.repeat(1025), persistence }), /name: must be at most 1024 bytes/);
  assert.throws(() => new CircuitBreaker({ name: '\ud800', persistence }), /lone surrogate/);
  assert.throws(() => new CircuitBreaker({ name: 42, persistence }), named);
  assert.throws(() => new CircuitBreaker({ name: 'x', persistence: {} }), /persistence must be a fleetbreaker persistence store/);
  assert.throws(() => circuitBreaker('not a function', { name: 'x', persistence }), TypeError);
  assert.throws(() => new DynamoDBPersistence({ tableName: '' }), { name: 'CircuitBreakerConfigError', field: 'tableName' });
  assert.throws(
    () => new DynamoDBPersistence({ tableName: 'circuits', sortKeyAttr: 'id' }),
    { field: 'sortKeyAttr', message: /keyAttr \[id\] and sortKeyAttr \[id\] cannot be the same!/ },
  );
  assert.throws(() => new DynamoDBPersistence({ tableName: 'circuits', consistentRead: 'yes' }), { field: 'consistentRead' });
  // Table names by DynamoDB's rules, when the persistence object is made.
  for (const bad of ['t', 'ab', 'x'.repeat(256), 'circuit breakers', 'circuits/eu']) {
    assert.throws(() => new DynamoDBPersistence({ tableName: bad }), (e) => e.field === 'tableName', bad);
  }
  // As in the Powertools breaker: a partition value without a sort key is ignored, with a warning.
  const warnings = [];
  const logger = { info() {}, warn: (m) => warnings.push(m), error() {} };
  const ignored = new DynamoDBPersistence({ tableName: 'circuits', staticPkValue: 'x', logger });
  assert.equal(ignored.staticPkValue, null);
  assert.match(warnings.join('\n'), /staticPkValue is ignored unless sortKeyAttr is also set/);
  const composite = new DynamoDBPersistence({ tableName: 'circuits', keyAttr: 'pk', sortKeyAttr: 'sk' });
  assert.equal(composite.staticPkValue, `circuit_breaker#${process.env.AWS_LAMBDA_FUNCTION_NAME ?? ''}`, 'the value in effect');
  assert.throws(
    () => new CircuitBreaker({ name: 'c', persistence: new SQLitePersistence('/nonexistent-dir/x/circuits.db') }),
    (e) => e instanceof CircuitBreakerPersistenceError && e.kind === 'misconfigured' && /circuits.db/.test(e.message),
  );
  new CircuitBreaker({ name: 'é'.repeat(512), persistence });
});

test('a SQLite path that is not a non-empty string is refused by name', () => {
  for (const bad of ['', 42, null]) {
    assert.throws(
      () => new SQLitePersistence({ path: bad }),
      (e) => e instanceof CircuitBreakerConfigError && e.field === 'path' && /must be a non-empty string/.test(e.message),
    );
  }
});

test('one persistence store keeps one storeTimeout', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetbreaker-timeout-'));
  const persistence = new SQLitePersistence({ path: path.join(dir, 'circuits.db') });
  const first = new CircuitBreaker({ name: 'a', persistence, config: { storeTimeout: 2 } });
  // Without a config, a breaker takes the deadline in use.
  new CircuitBreaker({ name: 'b', persistence });
  assert.throws(
    () => new CircuitBreaker({ name: 'c', persistence, config: { storeTimeout: 0.5 } }),
    (e) => e instanceof CircuitBreakerConfigError && e.field === 'storeTimeout'
      && e.message === 'invalid storeTimeout: must be the 2 s this persistence store already uses, got 0.5; give breakers with another storeTimeout their own persistence store',
  );
  void first;
});

test('breakers that share a name and a persistence store share one circuit', async () => {
  const clock = new ManualClock();
  const persistence = new InMemoryPersistence();
  const one = new CircuitBreaker({ name: 'payments', persistence, clock, config: { failureThreshold: 2 } });
  const two = new CircuitBreaker({ name: 'payments', persistence, clock, config: { failureThreshold: 2 } });
  await assert.rejects(one.call(() => { throw new Downstream(); }));
  await assert.rejects(two.call(() => { throw new Downstream(); }));
  assert.equal((await one.info()).state, 'OPEN');
  assert.throws(() => new CircuitBreaker({ name: 'payments', persistence, clock, config: { failureThreshold: 9 } }), /already in use/);
  const other = new CircuitBreaker({ name: 'payments', persistence: new InMemoryPersistence(), clock });
  assert.equal((await other.info()).state, 'CLOSED');
});

test('overrides take seconds, expire, and operator errors say what the store said', async () => {
  const clock = new ManualClock(100_000);
  const persistence = new InMemoryPersistence();
  const b = new CircuitBreaker({ name: 'c', persistence, clock, config: { localCacheMaxAge: 0.25 } });
  const info = await b.forceOpen({ duration: 90, reason: 'deploy' });
  assert.equal(info.state, 'FORCED_OPEN');
  assert.equal(info.overrideUntilMs, 190_000);
  await assert.rejects(b.call(() => 1), (e) => e.circuit.state === 'FORCED_OPEN' && e.retryAfterMs === 90_000);
  clock.advance(90);
  assert.equal(await b.call(() => 7), 7);
  assert.equal((await b.forceClosed({ duration: 2.5 })).overrideUntilMs, 192_500);
  for (let i = 0; i < 10; i++) await assert.rejects(b.call(() => { throw new Downstream(); }));
  assert.equal((await b.info()).state, 'FORCED_CLOSED', 'forced closed counts nothing');
  assert.equal((await b.reset()).state, 'CLOSED');
  await assert.rejects(b.forceOpen({ duration: -1 }), (e) => e instanceof CircuitBreakerConfigError && e.field === 'duration');
  testing.setStoreFault(persistence, 'throttled');
  await assert.rejects(b.reset(), (e) => e instanceof CircuitBreakerPersistenceError && e.code === 'ERR_CIRCUIT_STORE' && e.kind === 'throttled');
  assert.equal(await b.call(() => 'still protected'), 'still protected', 'calls never see store errors');
});

test('store faults never reach a protected call; the environment protects locally', async () => {
  const persistence = new InMemoryPersistence({ logger: { info() {}, warn() {}, error() {} } });
  testing.setStoreFault(persistence, 'unavailable');
  const b = new CircuitBreaker({ name: 'c', persistence, clock: new ManualClock(), config: { failureThreshold: 2 } });
  assert.equal(await b.call(() => 'fine'), 'fine');
  for (let i = 0; i < 2; i++) await assert.rejects(b.call(() => { throw new Downstream('down'); }), Downstream);
  const err = await b.call(() => 1).catch((e) => e);
  assert.ok(err instanceof CircuitBreakerOpenError);
  assert.equal(err.circuit.localOnly, true);
});

test('a manual permit reports its outcome once', async () => {
  const b = breaker({ failureThreshold: 1 });
  const permit = await b.acquire();
  assert.equal(permit.probe, false);
  await permit.failure();
  await assert.rejects(permit.success(), /already completed/);
  await assert.rejects(b.acquire(), CircuitBreakerOpenError);
});

test('the package works through import as well as require', async () => {
  const esm = await import('../lib/index.mjs');
  const cjs = require('../lib/index.js');
  assert.equal(esm.circuitBreaker, cjs.circuitBreaker);
  assert.equal(esm.default.CircuitState, cjs.CircuitState);
});

test('healthy calls are admitted under the lease without crossing into the addon', async () => {
  const persistence = new InMemoryPersistence();
  const clock = new ManualClock();
  const ok = circuitBreaker(() => 1, { name: 'hot', persistence, clock, config: { localCacheMaxAge: 5 } });
  await ok();
  const before = testing.storeCounts(persistence);
  const native = ok.circuitBreaker._handle.native;
  let crossings = 0;
  for (const method of ['acquire', 'complete', 'completeLeased']) {
    const original = native[method].bind(native);
    native[method] = (...a) => { crossings++; return original(...a); };
  }
  for (let i = 0; i < 1000; i++) await ok();
  assert.equal(crossings, 0);
  assert.deepEqual(testing.storeCounts(persistence), before, 'no store I/O');
  clock.advance(5);
  await ok();
  assert.equal(crossings, 2, 'the lease ended with the cache: one acquire, one complete');
});
