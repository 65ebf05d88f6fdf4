'use strict';
// Loading the addon: this platform's loads; another platform gets an error naming it and the
// supported ones, and a missing platform package says which package is missing. Each case runs
// in a child Node whose process.arch is made to lie before the package loads.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');

const pkg = join(__dirname, '..');

/** Loads the package in a child Node that reports `arch`; returns what it printed. The child
 * also says how often loading made a diagnostic report (slow: it is not needed on Linux) and
 * read its memory map (not needed where musl's loader is not installed). */
function loadAs(arch) {
  const script = `
    Object.defineProperty(process, 'arch', { value: ${JSON.stringify(arch)} });
    let reports = 0;
    const getReport = process.report.getReport.bind(process.report);
    process.report.getReport = (...args) => { reports += 1; return getReport(...args); };
    const fs = require('node:fs');
    const readFileSync = fs.readFileSync;
    let maps = 0;
    fs.readFileSync = (file, ...rest) => { if (file === '/proc/self/maps') maps += 1; return readFileSync(file, ...rest); };
    try {
      const fb = require(${JSON.stringify(pkg)});
      console.log(JSON.stringify({ ok: typeof fb.CircuitBreaker, reports, maps }));
    } catch (e) {
      console.log(JSON.stringify({ code: e.code, message: e.message }));
    }`;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout.trim());
}

test('the addon for this platform loads, without making a diagnostic report', () => {
  const musl = require('node:fs').existsSync(`/lib/ld-musl-${process.arch === 'x64' ? 'x86_64' : 'aarch64'}.so.1`);
  assert.deepEqual(loadAs(process.arch), { ok: 'function', reports: 0, maps: musl ? 1 : 0 });
});

test('an unsupported platform gets an error naming it and the supported ones', () => {
  const got = loadAs('ppc64');
  assert.equal(got.code, 'ERR_FLEETBREAKER_UNSUPPORTED_PLATFORM');
  assert.match(got.message, /no native addon for linux-ppc64-gnu/);
  assert.match(got.message, /linux-x64-gnu, linux-arm64-gnu/);
});

test('a supported platform whose package is missing names the package', () => {
  // The checkout holds this machine's addon only, and no platform package is installed.
  const other = process.arch === 'x64' ? 'arm64' : 'x64';
  const got = loadAs(other);
  assert.equal(got.code, 'ERR_FLEETBREAKER_ADDON_MISSING');
  assert.match(got.message, new RegExp(`@fleetbreaker/linux-${other}-gnu is missing`));
});

test('package.json carries the version of the Cargo workspace the addon was built from', () => {
  const native = require('../lib/native.js');
  assert.equal(require('../package.json').version, native.version());
});
