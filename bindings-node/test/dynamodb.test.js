'use strict';
// DynamoDBPersistence against moto's server on loopback; the event loop keeps turning while
// the store is slow; several processes share one circuit with exactly one probe.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const path = require('node:path');
const os = require('node:os');
const fs = require('node:fs');
const { execFile } = require('node:child_process');
const { CircuitBreaker, CircuitBreakerOpenError, DynamoDBPersistence, ManualClock, SQLitePersistence } = require('../lib/index.js');
const { startMoto, tableName } = require('./helpers.js');

class Downstream extends Error {}
const quiet = { info() {}, warn() {}, error() {} };
let moto;

test.before(async () => {
  moto = await startMoto();
});
test.after(() => moto && moto.stop());

function persistence(table, extra = {}) {
  return new DynamoDBPersistence({ tableName: table, region: 'us-east-1', endpointUrl: moto.endpoint, ...extra });
}

test('environments share one circuit through the table', async () => {
  const table = tableName('shared');
  await persistence(table).createTable();
  const clock = new ManualClock();
  const config = { failureThreshold: 2, recoveryTimeout: 10 };
  const a = new CircuitBreaker({ name: 'payments', persistence: persistence(table), config, clock });
  const b = new CircuitBreaker({ name: 'payments', persistence: persistence(table), config, clock });
  for (let i = 0; i < 2; i++) await assert.rejects(a.call(() => { throw new Downstream(); }), Downstream);
  let ran = false;
  await assert.rejects(b.call(() => { ran = true; }), (e) => e instanceof CircuitBreakerOpenError && e.circuit.version === 1);
  assert.equal(ran, false);
});

test('composite keys put the circuit in the sort key', async () => {
  const table = tableName('composite');
  const composite = (pk) => persistence(table, { keyAttr: 'pk', sortKeyAttr: 'sk', staticPkValue: pk });
  await composite('svc#checkout').createTable();
  const clock = new ManualClock();
  const b = new CircuitBreaker({ name: 'payments', persistence: composite('svc#checkout'), config: { failureThreshold: 1 }, clock });
  await assert.rejects(b.call(() => { throw new Downstream(); }));
  assert.equal((await new CircuitBreaker({ name: 'payments', persistence: composite('svc#checkout'), clock }).info()).state, 'OPEN');
  assert.equal((await new CircuitBreaker({ name: 'payments', persistence: composite('svc#search'), clock }).info()).state, 'CLOSED');
});

test('a missing table is reported once and protection continues locally', async () => {
  const errors = [];
  const p = new DynamoDBPersistence({
    tableName: 'no-such-table', region: 'us-east-1', endpointUrl: moto.endpoint,
    logger: { info() {}, warn() {}, error: (m) => errors.push(m) },
  });
  const clock = new ManualClock();
  const b = new CircuitBreaker({ name: 'payments', persistence: p, config: { failureThreshold: 2, recoveryTimeout: 60 }, clock });
  for (let i = 0; i < 2; i++) await assert.rejects(b.call(() => { throw new Downstream(); }), Downstream);
  for (let i = 0; i < 20; i++) {
    await assert.rejects(b.call(() => 1), CircuitBreakerOpenError);
    clock.advance(1);
  }
  await new Promise((r) => setImmediate(r));
  assert.equal(errors.length, 1, errors.join('\n'));
  for (const part of ['no-such-table', 'us-east-1', 'ResourceNotFoundException']) assert.ok(errors[0].includes(part), errors[0]);
  assert.equal((await b.info()).localOnly, true);
});

/** Forwards TCP to moto, holding every chunk from the client for `delayMs`. */
function delayingProxy(upstreamPort, delayMs) {
  const server = net.createServer((client) => {
    const upstream = net.connect(upstreamPort, '127.0.0.1');
    client.on('data', (d) => setTimeout(() => upstream.write(d), delayMs));
    upstream.on('data', (d) => client.write(d));
    const close = () => { client.destroy(); upstream.destroy(); };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

test('the event loop keeps turning while the store is slow', async () => {
  const table = tableName('slow');
  await persistence(table).createTable();
  const proxy = await delayingProxy(moto.port, 500);
  try {
    const slow = new DynamoDBPersistence({ tableName: table, region: 'us-east-1', endpointUrl: `http://127.0.0.1:${proxy.address().port}` });
    const b = new CircuitBreaker({ name: 'payments', persistence: slow, config: { storeTimeout: 3 } });
    let ticks = 0;
    const timer = setInterval(() => { ticks++; }, 10);
    const started = Date.now();
    assert.equal(await b.call(async () => 'done'), 'done');
    const took = Date.now() - started;
    clearInterval(timer);
    assert.ok(took >= 500, `the call waited for the store (${took} ms)`);
    assert.ok(ticks >= 20, `a timer kept firing during the store call: ${ticks} ticks in ${took} ms`);
  } finally {
    proxy.close();
  }
});

const CHILD = path.join(__dirname, 'fixtures', 'fleet-member.js');

function runChild(args) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CHILD, ...args], { env: process.env }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

async function fleet(kind, where, trip) {
  await assert.rejects(trip.call(() => { throw new Downstream(); }));
  const start = Date.now() + 1000;
  const results = await Promise.all([0, 1, 2, 3].map(() => runChild([kind, where, String(start)])));
  assert.equal(results.reduce((n, r) => n + r.probes, 0), 1, `exactly one probe across the processes: ${JSON.stringify(results)}`);
  assert.ok(results.every((r) => r.rejected > 0), 'every process saw the circuit open');
  assert.ok(results.reduce((n, r) => n + r.admitted, 0) > 0, 'and closed again after the probe');
}

const memberConfig = { failureThreshold: 1, recoveryTimeout: 2, successThreshold: 1, probeLease: 30, localCacheMaxAge: 0.05 };

test('processes on one DynamoDB table: exactly one probe', async () => {
  const table = tableName('fleet');
  await persistence(table).createTable();
  const trip = new CircuitBreaker({ name: 'shared', persistence: persistence(table), config: memberConfig });
  await fleet('dynamodb', `${moto.endpoint}|${table}`, trip);
});

test('processes on one SQLite file: exactly one probe', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetbreaker-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const db = path.join(dir, 'circuits.db');
  const trip = new CircuitBreaker({ name: 'shared', persistence: new SQLitePersistence({ path: db, logger: quiet }), config: memberConfig });
  await fleet('sqlite', db, trip);
});
