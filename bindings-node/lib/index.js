'use strict';
// fleetbreaker for Node: a circuit breaker shared by a whole serverless fleet.
//
// The healthy path stays in JavaScript: while the admission lease holds, a call is admitted by
// a clock read and a compare, and its success counted in a number; it makes no native call.
// Everything else goes to the addon, which answers at once when no store I/O is needed and
// with a Promise otherwise (the event loop never waits on the store).
//
// The lease here is a mirror of the addon's (the only policy kept in JavaScript): it runs on a
// monotonic clock, starts from what the addon says is left of the lease, and an epoch makes
// sure an answer that arrives after a failure ended the lease cannot start it again.

const native = require('./native.js');
const {
  CircuitBreakerError,
  CircuitBreakerOpenError,
  CircuitBreakerPersistenceError,
  CircuitBreakerConfigError,
  invalidType,
  outOfRange,
  fromNative,
} = require('./errors.js');

/** Monotonic milliseconds. (`process.hrtime` needs no module: `perf_hooks`, or the global
 * `performance`, costs 0.8 ms of a cold start, and reads no faster.) */
function monotonicMs() {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}

// The addon's string enums: how a call ended, and what acquire decided.
const SUCCESS = 'success';
const FAILURE = 'failure';
const IGNORED = 'ignored';
const PROBE = 'probe';
const REJECTED = 'rejected';
const DISABLED = 'disabled';

/** Where a circuit stands. */
const CircuitState = Object.freeze({
  CLOSED: 'CLOSED',
  OPEN: 'OPEN',
  HALF_OPEN: 'HALF_OPEN',
  FORCED_OPEN: 'FORCED_OPEN',
  FORCED_CLOSED: 'FORCED_CLOSED',
});

/**
 * A config checked by the addon (the checks, limits and defaults are the host's, the same as
 * Python's): `values` is what a breaker shows as its `config` (seconds, camelCase), `native`
 * what the addon runs on. `undefined` takes the defaults.
 */
function parseConfig(config) {
  const settings = invoke(() => native.NativeSettings.parse(config));
  return { native: settings, values: Object.freeze(settings.values()) };
}

/** What a caller sees of a circuit: the addon's fields, as they are (times in epoch ms). */
const circuitInfo = Object.freeze;

/** A transition event as an `onTransition` hook sees it: its details, with `circuitName`. */
function transition({ kind, circuit, logLevel, logText, ...details }) {
  return Object.freeze({ circuitName: circuit, ...details });
}

/** Calls the addon: its value at once, or a Promise when it had to ask the store; its errors,
 * thrown or rejected, become fleetbreaker's own. */
function invoke(call) {
  let value;
  try {
    value = call();
  } catch (e) {
    throw fromNative(e);
  }
  return value instanceof Promise ? value.catch((e) => { throw fromNative(e); }) : value;
}

const consoleLogger = Object.freeze({
  info() {},
  warn: (...a) => console.warn(...a),
  error: (...a) => console.error(...a),
});

/**
 * A clock that moves only when told; pass it as `clock` to breakers in tests. It has a wall
 * clock (the times in the shared record) and a monotonic one (the breaker's own deadlines):
 * `advance` moves both, `step` only the wall clock, as an NTP step does.
 */
class ManualClock {
  /** @param {number} startMs epoch milliseconds */
  constructor(startMs = 1_700_000_000_000) {
    if (typeof startMs !== 'number' || !Number.isFinite(startMs) || startMs < 0) throw outOfRange('startMs', 'epoch milliseconds', startMs);
    this._native = new native.NativeClock(Math.round(startMs));
    /** Epoch milliseconds. */
    this.nowMs = () => this._native.nowMs();
    /** The monotonic clock, in milliseconds. */
    this.monotonicMs = () => this._native.monotonicMs();
  }

  /** Moves the clock forward by `seconds`. */
  advance(seconds) {
    if (typeof seconds !== 'number' || !(seconds >= 0)) throw outOfRange('seconds', 'a non-negative number', seconds);
    this._native.advanceMs(Math.round(seconds * 1000));
  }

  /** Sets the wall clock to `ms` epoch milliseconds; the monotonic clock moves forward by as much. */
  setMs(ms) {
    this._native.setMs(Math.round(ms));
  }

  /** Steps the wall clock by `seconds` (back when negative); the monotonic clock stays. */
  step(seconds) {
    if (typeof seconds !== 'number' || !Number.isFinite(seconds)) throw outOfRange('seconds', 'a finite number', seconds);
    this._native.stepWallMs(Math.round(seconds * 1000));
  }
}

/** One environment of a persistence store (its identity, its clock), and its circuits. */
class Environment {
  constructor(store, clock, id, logger) {
    // Held weakly: a circuit no breaker uses is released, so a long-lived service that sees
    // many circuit names keeps bounded memory.
    this.handles = new Map();
    this.dropped = new FinalizationRegistry((name) => {
      const ref = this.handles.get(name);
      if (ref && ref.deref() === undefined) this.handles.delete(name);
    });
    this.sinks = [];
    this.clock = clock;
    this.logger = logger;
    this.native = new native.NativeEnvironment(store, clock ? clock._native : null, (e) => this._dispatch(e), id);
  }

  _dispatch(e) {
    for (const sink of this.sinks) sink(e);
    this.logger[e.logLevel](`fleetbreaker: ${e.logText}`);
    if (e.kind === 'transition') {
      const handle = this.handles.get(e.circuit)?.deref();
      if (!handle) return;
      const t = transition(e);
      for (const ref of handle.listening) {
        const breaker = ref.deref();
        if (breaker === undefined) {
          handle.listening.delete(ref);
          continue;
        }
        try {
          breaker._onTransition(t);
        } catch (err) {
          this.logger.warn(`fleetbreaker: onTransition hook for circuit '${e.circuit}' threw; ignoring.`, err);
        }
      }
    }
  }
}

/** The base of the persistence stores. */
class Persistence {
  constructor(options = {}) {
    if (options === null || typeof options !== 'object') throw invalidType('options', 'an object', options);
    this._logger = options.logger || consoleLogger;
    this._environments = new Map();
    this._environmentId = undefined;
    this._root = this;
  }

  /** The one store of this persistence object (and of its other environments), for a breaker
   * with `storeTimeout` seconds (null: the one in use). */
  _store(storeTimeout) {
    return invoke(() => this._root._native.store(storeTimeout ?? null));
  }

  _environment(storeTimeout, clock) {
    const store = this._store(storeTimeout);
    const key = clock || null;
    let env = this._environments.get(key);
    if (!env) {
      env = invoke(() => new Environment(store, clock, this._environmentId, this._logger));
      this._environments.set(key, env);
    }
    return env;
  }

  /**
   * Another environment on the same store, as if in another process: for simulating a fleet in
   * one process (tests, demos).
   */
  environment({ id } = {}) {
    const other = Object.create(Object.getPrototypeOf(this));
    Object.assign(other, this, { _environments: new Map(), _environmentId: id, _root: this._root });
    return other;
  }
}

/** Circuits in this process's memory: for tests and single-process programs. */
class InMemoryPersistence extends Persistence {
  constructor(options) {
    super(options);
    this._native = native.NativePersistence.memory();
  }
}

/** Circuits in a SQLite file, shared by the processes of one machine. */
class SQLitePersistence extends Persistence {
  constructor(options) {
    if (typeof options === 'string') options = { path: options };
    super(options);
    this._native = invoke(() => native.NativePersistence.sqlite(options.path));
    this.path = options.path;
  }
}

/**
 * Circuits in a DynamoDB table: one item per circuit, read with GetItem and written with a
 * conditional PutItem (IAM: dynamodb:GetItem and dynamodb:PutItem). Unset options come from the
 * standard AWS environment (AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB, the credentials chain).
 */
class DynamoDBPersistence extends Persistence {
  constructor(options) {
    super(options);
    // Checked as the store will (the table name by DynamoDB's rules, the keys), now rather
    // than at the first call; the store opens now, so the first call after a cold start finds
    // its SDK configuration loaded.
    this._native = invoke(() => native.NativePersistence.dynamodb(options));
    if (this._native.warning) this._logger.warn(`fleetbreaker: ${this._native.warning}`);
    const { tableName, keyAttr = 'id', sortKeyAttr, region, endpointUrl, consistentRead = false } = options;
    Object.assign(this, { tableName, keyAttr, sortKeyAttr, region, endpointUrl, consistentRead });
    /** The partition key value in effect with composite keys; null without them. */
    this.staticPkValue = this._native.partitionValue ?? null;
  }

  /** Creates the table (on-demand, TTL on `expiration`): for development and tests. */
  async createTable() {
    await invoke(() => this._native.createTable());
  }
}

/** One circuit in one environment, shared by every breaker of that name there. */
class Handle {
  constructor(env, name, config) {
    this.name = name;
    this.config = config.values;
    this.settings = config.native;
    this.native = invoke(() => new native.NativeCircuit(env.native, name, config.native));
    // The admission lease (a mirror of the addon's), on a monotonic clock, so the healthy
    // path makes no native call.
    this.leaseUntil = 0;
    this.leaseEpoch = 0;
    this.leasedOk = 0;
    // WeakRefs to the breakers with a transition hook: a hook goes away with its breaker.
    this.listening = new Set();
    this.now = env.clock ? env.clock.monotonicMs : monotonicMs;
  }

  takeLeased() {
    const n = this.leasedOk;
    this.leasedOk = 0;
    return n;
  }

  /** No call goes by without asking until the addon grants a new lease. */
  endLease() {
    this.leaseUntil = 0;
    this.leaseEpoch += 1;
  }

  async leasedFailure() {
    this.endLease();
    await invoke(() => this.native.completeLeased(this.takeLeased(), FAILURE));
  }

  async acquire() {
    const epoch = this.leaseEpoch;
    const acquired = await invoke(() => this.native.acquire(this.takeLeased()));
    // A failure (or any end of the lease) while the addon was asked wins over this answer.
    if (acquired.leaseMs > 0 && epoch === this.leaseEpoch) this.leaseUntil = this.now() + acquired.leaseMs;
    return acquired;
  }

  async complete(permit, outcome, probe) {
    if (outcome === FAILURE || probe) this.endLease();
    await invoke(() => this.native.complete(permit, outcome));
  }
}

function circuitHandle(persistence, name, config, clock) {
  if (!(persistence instanceof Persistence)) throw invalidType('persistence', 'a fleetbreaker persistence store', persistence);
  const env = persistence._environment(config ? config.values.storeTimeout : null, clock);
  let handle = env.handles.get(name)?.deref();
  if (handle) {
    if (config && !handle.settings.equals(config.native)) invoke(() => native.configConflict(name));
    return handle;
  }
  handle = new Handle(env, name, config || parseConfig(undefined));
  env.handles.set(name, new WeakRef(handle));
  env.dropped.register(handle, name);
  return handle;
}

/** The kill switch's warning, the first time it lets a call through in this process. */
function warnDisabled(logger) {
  const warning = native.disabledWarning();
  if (warning) logger.warn(`fleetbreaker: ${warning}`);
}

/** Leave to make one call, from `CircuitBreaker.acquire()`; report exactly one outcome. */
class Permit {
  constructor(handle, permit, probe) {
    this._handle = handle;
    this._permit = permit;
    this._done = false;
    /** Admitted under the admission lease, without asking the breaker. */
    this.leased = permit === null;
    /** This call is the fleet's single probe of a half-open circuit. */
    this.probe = probe;
  }

  async _finish(outcome) {
    if (this._done) throw new CircuitBreakerError('this permit was already completed');
    this._done = true;
    const h = this._handle;
    if (this._permit === null) {
      if (outcome === SUCCESS) h.leasedOk++;
      else if (outcome === FAILURE) await h.leasedFailure();
      return;
    }
    await h.complete(this._permit, outcome, this.probe);
  }

  success() {
    return this._finish(SUCCESS);
  }

  failure() {
    return this._finish(FAILURE);
  }

  ignore() {
    return this._finish(IGNORED);
  }
}

/**
 * A circuit shared, through its persistence store, by every environment of a fleet.
 */
class CircuitBreaker {
  constructor(options) {
    if (options === null || typeof options !== 'object') throw invalidType('options', 'an object', options);
    const { name, persistence, config, onTransition, isFailure, clock } = options;
    this.name = invoke(() => native.checkName(name));
    if (onTransition !== undefined && typeof onTransition !== 'function') throw invalidType('onTransition', 'a function', onTransition);
    if (isFailure !== undefined && typeof isFailure !== 'function') throw invalidType('isFailure', 'a function', isFailure);
    if (clock !== undefined && !(clock instanceof ManualClock)) throw invalidType('clock', 'a ManualClock', clock);
    this._classify = isFailure || null;
    // Without a config, the breaker takes the circuit's (if it is in use here) or the default.
    this._handle = circuitHandle(persistence, this.name, config === undefined || config === null ? null : parseConfig(config), clock);
    this.config = this._handle.config;
    this._logger = persistence._logger;
    this._onTransition = onTransition || null;
    if (onTransition) this._handle.listening.add(new WeakRef(this));
  }

  /** Whether `err` counts. An `isFailure` that throws is logged and the error counts: the
   * caller still gets its own error, never the classifier's. */
  _isFailure(err) {
    if (this._classify === null) return true;
    try {
      return Boolean(this._classify(err));
    } catch (thrown) {
      this._logger.warn(`fleetbreaker: isFailure for circuit '${this.name}' threw; counting the error as a failure.`, thrown);
      return true;
    }
  }

  _outcome(err) {
    return this._isFailure(err) ? FAILURE : IGNORED;
  }

  /** Runs `fn(...args)` under the breaker; its result or error comes back unchanged. */
  call(fn, ...args) {
    if (typeof fn !== 'function') return Promise.reject(invalidType('fn', 'a function', fn));
    return this._call(fn, args, undefined);
  }

  async _call(fn, args, onCircuitOpen) {
    const h = this._handle;
    if (h.now() < h.leaseUntil) {
      let result;
      try {
        result = await fn(...args);
      } catch (err) {
        if (this._isFailure(err)) await h.leasedFailure();
        throw err;
      }
      h.leasedOk++;
      return result;
    }
    const acquired = await h.acquire();
    if (acquired.kind === REJECTED) {
      const circuit = circuitInfo(acquired.info);
      if (onCircuitOpen) return onCircuitOpen(...args, circuit);
      throw new CircuitBreakerOpenError(circuit);
    }
    if (acquired.kind === DISABLED) warnDisabled(this._logger);
    const probe = acquired.kind === PROBE;
    let result;
    try {
      result = await fn(...args);
    } catch (err) {
      await h.complete(acquired.permit, this._outcome(err), probe);
      throw err;
    }
    await h.complete(acquired.permit, SUCCESS, probe);
    return result;
  }

  /** Asks to make one call, for code that cannot hand the breaker a function; rejects with
   * CircuitBreakerOpenError when the circuit says no. */
  async acquire() {
    const h = this._handle;
    if (h.now() < h.leaseUntil) return new Permit(h, null, false);
    const acquired = await h.acquire();
    if (acquired.kind === REJECTED) throw new CircuitBreakerOpenError(circuitInfo(acquired.info));
    if (acquired.kind === DISABLED) warnDisabled(this._logger);
    return new Permit(h, acquired.permit, acquired.kind === PROBE);
  }

  /** The circuit as this environment sees it (reading the store if its copy is stale). */
  async info() {
    const h = this._handle;
    const epoch = h.leaseEpoch;
    const info = circuitInfo(await invoke(() => h.native.info()));
    // A look that finds the circuit no longer healthy ends the lease, as in the addon.
    const healthy = (info.state === 'CLOSED' || info.state === 'FORCED_CLOSED') && info.failureCount === 0;
    if (!healthy && epoch === h.leaseEpoch) h.endLease();
    return info;
  }

  /** Rejects every call, fleet-wide, for `duration` seconds or until changed. */
  forceOpen({ duration, reason } = {}) {
    return this._override('forceOpen', duration, reason);
  }

  /** Admits every call and counts nothing, fleet-wide, for `duration` seconds or until changed. */
  forceClosed({ duration, reason } = {}) {
    return this._override('forceClosed', duration, reason);
  }

  /** Writes a fresh closed record, whatever the state. */
  reset() {
    return this._override('reset');
  }

  async _override(action, duration, reason) {
    this._handle.endLease();
    return circuitInfo(await invoke(() => this._handle.native.act(action, duration, reason)));
  }
}

/**
 * Wraps `fn` (sync or async) with the circuit `options.name`: the result is an async function
 * with `fn`'s parameters. A rejected call returns `onCircuitOpen(...args, circuit)` or rejects
 * with CircuitBreakerOpenError.
 */
function circuitBreaker(fn, options) {
  if (typeof fn !== 'function') throw invalidType('fn', 'a function', fn);
  if (options === null || typeof options !== 'object') throw invalidType('options', 'an object', options);
  const { onCircuitOpen } = options;
  if (onCircuitOpen !== undefined && typeof onCircuitOpen !== 'function') throw invalidType('onCircuitOpen', 'a function', onCircuitOpen);
  const breaker = new CircuitBreaker(options);
  const h = breaker._handle;
  const isFailure = (err) => breaker._isFailure(err);
  // The healthy path, inlined: a clock read, a compare, the call, an increment.
  const protectedCall = async function (...args) {
    if (h.now() < h.leaseUntil) {
      let result;
      try {
        result = await fn(...args);
      } catch (err) {
        if (isFailure(err)) await h.leasedFailure();
        throw err;
      }
      h.leasedOk++;
      return result;
    }
    return breaker._call(fn, args, onCircuitOpen);
  };
  Object.defineProperty(protectedCall, 'name', { value: fn.name });
  protectedCall.circuitBreaker = breaker;
  return protectedCall;
}

/** Testing helpers: inspect and break an in-memory store, record every event. */
const testing = Object.freeze({
  storedRecord(persistence, name) {
    return memoryOf(persistence).record(name) ?? null;
  },
  storeCounts(persistence) {
    return memoryOf(persistence).stats();
  },
  setStoreFault(persistence, kind) {
    memoryOf(persistence).setFault(kind ?? null);
  },
  putCorruptItem(persistence, name, version, problem) {
    memoryOf(persistence).putCorrupt(name, version ?? undefined, problem);
  },
  /** Deletes the circuit's item, as DynamoDB's TTL or an operator does. */
  async deleteItem(persistence, name) {
    await invoke(() => persistence._store(null).remove(name));
  },
  /** Memory stores: loads and writes wait until `releaseCalls` (tests of races with a slow
   * store); with `{ loads, writes }`, only those. */
  holdCalls(persistence, which) {
    memoryOf(persistence).hold(...loadsAndWrites(which));
  },
  releaseCalls(persistence, which) {
    memoryOf(persistence).release(...loadsAndWrites(which));
  },
  /** Calls `sink(event)` with every event of the persistence store's environment. */
  recordEvents(persistence, sink, clock) {
    persistence._environment(null, clock).sinks.push(sink);
  },
});

/** Which store calls `which` names: both when it is absent. */
function loadsAndWrites(which) {
  return which ? [Boolean(which.loads), Boolean(which.writes)] : [true, true];
}

function memoryOf(persistence) {
  if (!(persistence._root instanceof InMemoryPersistence)) throw invalidType('persistence', 'an InMemoryPersistence', persistence);
  return persistence._store(null);
}

module.exports = {
  circuitBreaker,
  CircuitBreaker,
  CircuitState,
  CircuitBreakerError,
  CircuitBreakerOpenError,
  CircuitBreakerPersistenceError,
  CircuitBreakerConfigError,
  DynamoDBPersistence,
  SQLitePersistence,
  InMemoryPersistence,
  ManualClock,
  Permit,
  testing,
};
