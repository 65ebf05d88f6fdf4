'use strict';
// Loads the native addon built for this platform. A published install finds it in one of the
// platform packages (`@fleetbreaker/<platform>`, listed in `optionalDependencies`, so npm
// installs only the one that matches); a checkout finds the addon built beside the package.
// Any other platform gets an error that names it and the supported ones.

const { join } = require('node:path');
const { existsSync, readFileSync } = require('node:fs');

/** The platforms a platform package is published for, by the name of their package. */
const SUPPORTED = ['linux-x64-gnu', 'linux-arm64-gnu'];

/** The file name of musl's dynamic loader for this architecture. */
function muslLoader() {
  const arch = { x64: 'x86_64', arm64: 'aarch64' }[process.arch] || process.arch;
  return `/lib/ld-musl-${arch}.so.1`;
}

/** 'gnu' or 'musl': which C library this Node runs on (musl on Alpine). */
function libc() {
  if (process.platform !== 'linux') return '';
  // A musl process runs under musl's loader, so where that file is missing this process is
  // glibc's: one stat. Only a system that has it (Alpine, or glibc with musl installed too)
  // reads the map below, about 1 ms of a cold start with the first file read's warm-up.
  if (!existsSync(muslLoader())) return 'gnu';
  // The C library this process runs on is mapped into it. A diagnostic report (below) costs
  // about 7 ms, a fifth of a cold start.
  try {
    const maps = readFileSync('/proc/self/maps', 'latin1');
    if (maps.includes('/ld-musl-')) return 'musl';
    if (maps.includes('/libc.so.6') || maps.includes('/libc-2.')) return 'gnu';
  } catch (_) {
    // No /proc: ask the report.
  }
  try {
    const header = process.report && process.report.getReport().header;
    if (header && header.glibcVersionRuntime) return 'gnu';
  } catch (_) {
    // A report that cannot be made says nothing either way; the loader is there.
  }
  return 'musl';
}

/** This process's platform, as the platform packages name it. */
function platform() {
  const c = libc();
  return `${process.platform}-${process.arch}${c ? `-${c}` : ''}`;
}

function load() {
  const name = platform();
  const local = join(__dirname, '..', `fleetbreaker.${name}.node`);
  if (existsSync(local)) return require(local);
  if (!SUPPORTED.includes(name)) {
    const err = new Error(
      `fleetbreaker has no native addon for ${name} (Node ${process.version}); ` +
        `it is published for ${SUPPORTED.join(', ')}`,
    );
    err.code = 'ERR_FLEETBREAKER_UNSUPPORTED_PLATFORM';
    throw err;
  }
  try {
    return require(`@fleetbreaker/${name}`);
  } catch (cause) {
    if (cause && cause.code !== 'MODULE_NOT_FOUND') throw cause;
    const err = new Error(
      `fleetbreaker's addon for ${name} is not installed: the package @fleetbreaker/${name} ` +
        'is missing (was the install made with --no-optional, or on another platform? ' +
        'Install on the platform that runs the code, or add the package by hand)',
    );
    err.code = 'ERR_FLEETBREAKER_ADDON_MISSING';
    err.cause = cause;
    throw err;
  }
}

module.exports = load();
