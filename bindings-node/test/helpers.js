'use strict';
// Test helpers: moto's server (a DynamoDB-compatible server on loopback), started and stopped
// by the tests; a way to let queued events arrive.

const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');

function python() {
  if (process.env.FLEETBREAKER_PYTHON) return process.env.FLEETBREAKER_PYTHON;
  const venv = path.join(process.env.FLEETBREAKER_VENV || path.join(os.homedir(), '.cache/fleetbreaker/venv'), 'bin/python');
  return fs.existsSync(venv) ? venv : 'python3';
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

function connects(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('connect', () => { socket.destroy(); resolve(true); });
    socket.on('error', () => resolve(false));
  });
}

/** Starts moto's server; fails clearly if it is not installed. */
async function startMoto() {
  process.env.AWS_ACCESS_KEY_ID ??= 'testing';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
  const port = await freePort();
  // moto's app with one request at a time: its conditional writes are then atomic, as
  // DynamoDB's are (moto's own threaded server lets two of them win on a loaded machine).
  const server = path.join(__dirname, '..', '..', 'scripts', 'moto-server');
  const child = spawn(python(), [server, '127.0.0.1', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  let exited = null;
  child.on('exit', (code) => { exited = code; });
  const deadline = Date.now() + 30_000;
  while (!(await connects(port))) {
    if (exited !== null) {
      throw new Error(`these tests need moto's server, a DynamoDB-compatible server on loopback: pip install 'moto[server]' (scripts/test installs it). ${python()} exited: ${stderr}`);
    }
    if (Date.now() > deadline) throw new Error("moto's server did not start within 30 s");
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    stop() { child.kill('SIGKILL'); },
  };
}

/** Events cross from the addon through a queue; this lets the queued ones arrive. */
function flushEvents() {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

let tables = 0;
function tableName(prefix) {
  tables += 1;
  return `${prefix}-${process.pid}-${tables}`;
}

module.exports = { startMoto, flushEvents, tableName, python };
