'use strict';
// The package as it is used in the field: a slow store while a failure trips the circuit, an
// isFailure that throws, breakers made again and again, many circuit names, permits that are
// dropped, the kill switch, and a wall clock that steps.

const test = require('node:test');
const assert = require('node:assert/strict');
const v8 = require('node:v8');
const vm = require('node:vm');

const {
  CircuitBreaker,
  CircuitBreakerOpenError,
  InMemoryPersistence,
  ManualClock,
  circuitBreaker,
  testing,
} = require('../lib/index.js');

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

/** Collects garbage and lets finalizers run. */
async function collect() {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
}

class Downstream extends Error {}

test('a lease granted while a failure trips the circuit does not outlive the trip', async () => {
  const persistence = new InMemoryPersistence();
  const clock = new ManualClock();
  const b = new CircuitBreaker({ name: 'payments', persistence, clock, config: { failureThreshold: 1 } });
  const failing = await b.acquire();
  assert.ok(!failing.leased && !failing.probe);
  clock.advance(6); // past local_cache_max_age: the next acquire reads the store
  testing.holdCalls(persistence, { loads: true });
  const waiting = b.acquire(); // waits on the slow read, and will be granted a lease
  const failed = failing.failure(); // reported meanwhile: it waits for the component
  // The read answers and the acquire is decided (with a lease); the trip's write is slow, so
  // the acquire's answer arrives while the failure is still being written.
  testing.holdCalls(persistence, { writes: true });
  testing.releaseCalls(persistence, { loads: true });
  const granted = await waiting;
  testing.releaseCalls(persistence);
  await failed;
  assert.ok(!granted.leased, 'decided before the trip');
  await granted.success();
  for (let i = 0; i < 3; i++) {
    await assert.rejects(b.acquire(), CircuitBreakerOpenError, 'no call is admitted under a lease after the trip');
  }
});

test('an isFailure that throws never replaces the caller\'s error, and the error counts', async () => {
  const persistence = new InMemoryPersistence();
  const clock = new ManualClock();
  const warnings = [];
  persistence._logger = { info() {}, warn: (...a) => warnings.push(a.join(' ')), error() {} };
  const own = new Downstream('the downstream said no');
  const guarded = circuitBreaker(async () => { throw own; }, {
    name: 'payments', persistence, clock, config: { failureThreshold: 1, recoveryTimeout: 1 },
    isFailure() { throw new Error('the classifier broke'); },
  });
  await assert.rejects(guarded(), (e) => e === own);
  await assert.rejects(guarded(), CircuitBreakerOpenError, 'the error counted: the circuit opened');
  clock.advance(1);
  await assert.rejects(guarded(), (e) => e === own, 'the probe ends with the caller\'s own error');
  clock.advance(1);
  const info = await guarded.circuitBreaker.info();
  assert.equal(info.state, 'OPEN', 'the probe was not left holding the permit: it failed and reopened');
  assert.match(warnings.join('\n'), /isFailure for circuit 'payments' threw/);
});

test('listeners go away with their breaker', async () => {
  const persistence = new InMemoryPersistence();
  const clock = new ManualClock();
  const seen = [];
  const config = { failureThreshold: 1 };
  const kept = new CircuitBreaker({ name: 'payments', persistence, clock, config, onTransition: (t) => seen.push(t) });
  for (let i = 0; i < 1000; i++) {
    new CircuitBreaker({ name: 'payments', persistence, clock, config, onTransition: (t) => seen.push(t) });
  }
  await collect();
  await assert.rejects(kept.call(async () => { throw new Downstream(); }), Downstream);
  await new Promise((r) => setImmediate(r));
  assert.equal(seen.length, 1, `${seen.length} hook calls for one trip`);
});

test('circuit names are released with their last breaker', async () => {
  const persistence = new InMemoryPersistence();
  const clock = new ManualClock();
  const kept = new CircuitBreaker({ name: 'kept', persistence, clock });
  for (let i = 0; i < 5000; i++) {
    await new CircuitBreaker({ name: `tenant-${i}`, persistence, clock }).call(async () => 1);
  }
  await collect();
  const env = persistence._environment(null, clock);
  assert.ok(env.handles.size <= 1, `${env.handles.size} handles kept`);
  assert.ok(env.native.circuitsInUse() <= 1, `${env.native.circuitsInUse()} circuits in use`);
  assert.equal(await kept.call(async () => 7), 7);
});

test('a permit dropped without an outcome releases the probe', async () => {
  const persistence = new InMemoryPersistence();
  const clock = new ManualClock();
  const b = new CircuitBreaker({ name: 'payments', persistence, clock, config: { failureThreshold: 1, recoveryTimeout: 1, probeLease: 60 } });
  await assert.rejects(b.call(async () => { throw new Downstream(); }), Downstream);
  clock.advance(1);
  await (async () => {
    const dropped = await b.acquire();
    assert.ok(dropped.probe);
  })();
  await collect();
  for (let i = 0; i < 100 && testing.storedRecord(persistence, 'payments').probeOwner; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(testing.storedRecord(persistence, 'payments').probeOwner ?? null, null, 'released, not held for the lease');
  const next = await b.acquire();
  assert.ok(next.probe, 'another call may probe at once');
  await next.success();
});

test('the kill switch is read at call time, under either name', async () => {
  const warnings = [];
  for (const variable of ['FLEETBREAKER_DISABLED', 'POWERTOOLS_CIRCUIT_BREAKER_DISABLED']) {
    const persistence = new InMemoryPersistence({ logger: { info() {}, warn: (m) => warnings.push(m), error() {} } });
    const clock = new ManualClock();
    const calls = [];
    const work = circuitBreaker(async (n) => {
      calls.push(n);
      if (n < 0) throw new Downstream();
      return n;
    }, { name: 'x', persistence, clock, config: { failureThreshold: 1 } });
    await assert.rejects(work(-1), Downstream);
    await assert.rejects(work(1), CircuitBreakerOpenError);
    const before = testing.storeCounts(persistence);
    process.env[variable] = 'true';
    try {
      assert.equal(await work(2), 2, 'bypassed: the open circuit does not reject');
      await assert.rejects(work(-3), Downstream);
      assert.deepEqual(testing.storeCounts(persistence), before, 'the breaker did nothing at all');
      process.env[variable] = 'sometimes';
      await assert.rejects(work(5), (e) => e.field === variable && /truth value/.test(e.message));
    } finally {
      delete process.env[variable];
    }
    await assert.rejects(work(4), CircuitBreakerOpenError);
    assert.deepEqual(calls, [-1, 2, -3]);
  }
  assert.deepEqual(warnings, [
    'fleetbreaker: FLEETBREAKER_DISABLED (or POWERTOOLS_CIRCUIT_BREAKER_DISABLED) is set: circuit breakers are ' +
      'bypassed. This is for development only; nothing protects the downstream.',
  ], 'once per process, on the first bypassed call');
});

test('a breaker made without a config takes the circuit\'s', () => {
  const persistence = new InMemoryPersistence();
  const configured = new CircuitBreaker({ name: 'payments', persistence, config: { failureThreshold: 2, recoveryTimeout: 7 } });
  const reader = new CircuitBreaker({ name: 'payments', persistence });
  assert.deepEqual(reader.config, configured.config);
  assert.throws(() => new CircuitBreaker({ name: 'payments', persistence, config: { failureThreshold: 3 } }), /already in use/);
});

test('a wall clock stepped back does not stretch the copy of the record or the lease', async () => {
  const root = new InMemoryPersistence();
  const clock = new ManualClock();
  const worker = new CircuitBreaker({ name: 'payments', persistence: root.environment({ id: 'worker' }), clock });
  const operator = new CircuitBreaker({ name: 'payments', persistence: root.environment({ id: 'operator' }), clock });
  assert.equal(await worker.call(async () => 1), 1);
  clock.step(-3600);
  await operator.forceOpen({ reason: 'incident' });
  clock.advance(5);
  await assert.rejects(worker.call(async () => 1), (e) => e instanceof CircuitBreakerOpenError && e.circuit.state === 'FORCED_OPEN');
});
