'use strict';
// fleetbreaker against opossum and the AWS SDK, side by side in one run.
//
//   node bench/bench.js        (scripts/bench-node installs what it needs and runs it)
//
// 1. Healthy-path overhead of a wrapped async call against the bare call, µs per call, with
//    opossum 10 (in-process only, `fire`) on the same function.
// 2. Cold start: a whole `node` process to the first guarded call returning, with
//    DynamoDBPersistence on moto, and its peak RSS; against `node` alone and against
//    `require('@aws-sdk/client-dynamodb')` plus one GetItem; then where fleetbreaker's time goes,
//    step by step, timed inside the process.
// Figures only: nothing here passes or fails.

const { execFileSync } = require('node:child_process');
const path = require('node:path');
const { startMoto } = require('../test/helpers.js');

const ROUNDS = 7;

async function perCallUs(fn, n) {
  for (let i = 0; i < n / 10; i++) await fn();
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await fn();
    rounds.push(Number(process.hrtime.bigint() - start) / 1e3 / n);
  }
  rounds.sort((a, b) => a - b);
  return rounds[ROUNDS >> 1];
}

async function healthy(endpoint) {
  const { circuitBreaker, DynamoDBPersistence } = require('..');
  const CircuitBreaker = require('opossum');
  const work = async (x) => x;
  const ours = circuitBreaker(work, {
    name: 'bench',
    persistence: new DynamoDBPersistence({ tableName: 'fleetbreaker-bench', region: 'us-east-1', endpointUrl: endpoint }),
    config: { localCacheMaxAge: 3600 },
  });
  const opossum = new CircuitBreaker(work, { timeout: false });
  await ours(1);
  await opossum.fire(1);
  const n = 200_000;
  const bare = await perCallUs(() => work(1), n);
  return {
    bare,
    fleetbreaker: (await perCallUs(() => ours(1), n)) - bare,
    opossum: (await perCallUs(() => opossum.fire(1), n)) - bare,
  };
}

const COLD = {
  'node alone': '',
  fleetbreaker: `
    const { circuitBreaker, DynamoDBPersistence } = require(${JSON.stringify(path.join(__dirname, '..'))});
    const work = circuitBreaker(async () => 1, { name: 'cold', persistence: new DynamoDBPersistence({ tableName: 'fleetbreaker-bench' }) });
    work().then(report);
  `,
  '@aws-sdk/client-dynamodb + one GetItem': `
    const { DynamoDBClient, GetItemCommand } = require('@aws-sdk/client-dynamodb');
    const client = new DynamoDBClient({});
    client.send(new GetItemCommand({ TableName: 'fleetbreaker-bench', Key: { id: { S: 'cold' } } })).then(report);
  `,
};

// The child says when its code ended (epoch ms, the parent's clock too) and its own peak RSS.
const REPORT = `
  function report() {
    const end = performance.timeOrigin + performance.now();
    const hwm = require('fs').readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\\s+(\\d+)/)[1];
    process.stdout.write(end + ' ' + hwm);
  }
`;

// Where fleetbreaker's cold start goes, step by step, timed inside the child.
const BREAKDOWN = `
  const t = [process.hrtime.bigint()];
  const { circuitBreaker, DynamoDBPersistence } = require(${JSON.stringify(path.join(__dirname, '..'))});
  t.push(process.hrtime.bigint());
  const persistence = new DynamoDBPersistence({ tableName: 'fleetbreaker-bench' });
  t.push(process.hrtime.bigint());
  const work = circuitBreaker(async () => 1, { name: 'cold', persistence });
  t.push(process.hrtime.bigint());
  work().then(() => {
    t.push(process.hrtime.bigint());
    return work();
  }).then(() => {
    t.push(process.hrtime.bigint());
    process.stdout.write(t.slice(1).map((x, i) => String(Number(x - t[i]) / 1e6)).join(' '));
  });
`;
const BREAKDOWN_STEPS = [
  'require (loads the native addon)',
  'persistence object (validates; the SDK configuration starts loading in the background)',
  'wrapping (the component instance)',
  "first call (what is left of the SDK configuration's load, one GetItem on moto)",
  'second call (under the lease)',
];

function breakdown(endpoint) {
  const runs = [];
  for (let i = 0; i < 9; i++) {
    const out = execFileSync(process.execPath, ['-e', BREAKDOWN], { env: lambdaEnv(endpoint), cwd: __dirname });
    runs.push(out.toString().trim().split(' ').map(Number));
  }
  return BREAKDOWN_STEPS.map((_, i) => {
    const column = runs.map((r) => r[i]).sort((a, b) => a - b);
    return column[column.length >> 1];
  });
}

// Lambda's environment as far as certificates go: neither SSL_CERT_FILE nor SSL_CERT_DIR is set
// there, so the system bundle file is read.
function lambdaEnv(endpoint) {
  const env = { ...process.env, AWS_ENDPOINT_URL_DYNAMODB: endpoint, AWS_REGION: 'us-east-1' };
  delete env.SSL_CERT_FILE;
  delete env.SSL_CERT_DIR;
  return env;
}

// The store server's share of a first call: one GetItem on a new connection, sent as raw HTTP
// (no SDK, no signing work), median of 9. Against DynamoDB itself this is a network round trip
// and a TLS handshake instead.
async function storeAnswerMs(endpoint) {
  const http = require('node:http');
  const body = JSON.stringify({ TableName: 'fleetbreaker-bench', Key: { id: { S: 'cold' } } });
  const headers = {
    'X-Amz-Target': 'DynamoDB_20120810.GetItem',
    'Content-Type': 'application/x-amz-json-1.0',
    Authorization: 'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
  };
  const times = [];
  for (let i = 0; i < 9; i++) {
    const start = process.hrtime.bigint();
    await new Promise((resolve, reject) => {
      const request = http.request(endpoint, { method: 'POST', headers, agent: false }, (response) => {
        response.resume();
        response.on('end', resolve);
      });
      request.on('error', reject);
      request.end(body);
    });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[4];
}

/** How many processes of each kind the cold start runs, round by round. */
const COLD_RUNS = 15;

/** Per process: ms from its start to its first guarded call returning, ms its exit takes after
 * that (a Lambda never pays it: the runtime keeps the process), and its peak RSS in MiB;
 * medians. Each round starts one process of each kind, so that a slow spell of the machine
 * falls on all of them alike rather than on one kind's runs. */
function cold(endpoint) {
  const env = lambdaEnv(endpoint);
  const now = () => performance.timeOrigin + performance.now();
  const median = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1];
  const runs = Object.fromEntries(Object.keys(COLD).map((name) => [name, { toEnd: [], exits: [], rss: [] }]));
  for (let i = 0; i < COLD_RUNS; i++) {
    for (const [name, body] of Object.entries(COLD)) {
      const start = now();
      const out = execFileSync(process.execPath, ['-e', REPORT + (body || 'report();')], { env, cwd: __dirname });
      const done = now();
      const [end, hwm] = out.toString().split(' ').map(Number);
      runs[name].toEnd.push(end - start);
      runs[name].exits.push(done - end);
      runs[name].rss.push(hwm / 1024);
    }
  }
  return Object.fromEntries(
    Object.entries(runs).map(([name, r]) => [name, [median(r.toEnd), median(r.exits), median(r.rss)]]),
  );
}

(async () => {
  process.env.AWS_ACCESS_KEY_ID ??= 'testing';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
  const moto = await startMoto();
  try {
    const { DynamoDBPersistence } = require('..');
    await new DynamoDBPersistence({ tableName: 'fleetbreaker-bench', region: 'us-east-1', endpointUrl: moto.endpoint }).createTable();
    const h = await healthy(moto.endpoint);
    console.log(`Node ${process.version}; healthy-path overhead over the bare async call, µs per call (median of ${ROUNDS} rounds):\n`);
    console.log('| breaker | µs per call |\n| --- | --- |');
    console.log(`| bare async call (time itself) | ${h.bare.toFixed(3)} |`);
    console.log(`| fleetbreaker (shared, DynamoDB): overhead | ${h.fleetbreaker.toFixed(3)} |`);
    console.log(`| opossum 10 (one process only, fire): overhead | ${h.opossum.toFixed(3)} |`);
    console.log(`\nfleetbreaker's overhead is ${(h.fleetbreaker / h.opossum).toFixed(2)}x opossum's (target: at most 1).`);

    const c = cold(moto.endpoint);
    console.log(`\ncold start: a new node process, to the first guarded call returning (median of ${COLD_RUNS}, the kinds in turn):\n`);
    console.log('| process | ms to the call | then exit ms | peak RSS MiB |\n| --- | --- | --- | --- |');
    for (const [name, [wall, exit, rss]] of Object.entries(c)) {
      console.log(`| ${name} | ${wall.toFixed(1)} | ${exit.toFixed(1)} | ${rss.toFixed(1)} |`);
    }
    const ours = c.fleetbreaker[0];
    const sdk = c['@aws-sdk/client-dynamodb + one GetItem'][0];
    const alone = c['node alone'][0];
    const server = await storeAnswerMs(moto.endpoint);
    console.log(`\nfleetbreaker: ${ours.toFixed(0)} ms against ${sdk.toFixed(0)} ms for the AWS SDK alone (target: at most that).`);
    console.log(`fleetbreaker adds ${(ours - alone).toFixed(1)} ms to node alone; of those, moto's own answer to the first GetItem ` +
      `(raw HTTP, new connection, median of 9) takes ${server.toFixed(1)} ms: ${(ours - alone - server).toFixed(1)} ms are ` +
      "fleetbreaker's (target: the whole at most 10 ms).");
    console.log(`the process's exit after the call takes ${(c.fleetbreaker[1] - c['node alone'][1]).toFixed(1)} ms more than ` +
      "node alone's (not part of a Lambda cold start: the runtime keeps the process).");
    console.log("\nwhere fleetbreaker's cold start goes (ms, median of 9, timed in the process):\n");
    const steps = breakdown(moto.endpoint);
    BREAKDOWN_STEPS.forEach((step, i) => console.log(`  ${steps[i].toFixed(2).padStart(7)}  ${step}`));
  } finally {
    moto.stop();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
