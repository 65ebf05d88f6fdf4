'use strict';
// The errors of fleetbreaker, and the one place where the addon's errors become them. The
// addon prefixes its messages with a code: [ERR_CIRCUIT_CONFIG:field], [ERR_CIRCUIT_STORE:kind]
// or [ERR_CIRCUIT_INTERNAL].

/** The base of fleetbreaker's own errors. */
class CircuitBreakerError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'CircuitBreakerError';
  }
}

/** A call was rejected: the circuit is open (or its probe is taken, or it is forced open). */
class CircuitBreakerOpenError extends CircuitBreakerError {
  constructor(circuit) {
    super(`Circuit '${circuit.name}' is open.`);
    this.name = 'CircuitBreakerOpenError';
    this.code = 'ERR_CIRCUIT_OPEN';
    this.circuit = circuit;
    this.retryAfterMs = circuit.retryAfterMs;
  }
}

/** An operator action (forceOpen, forceClosed, reset) could not reach the store. Protected
 * calls never see store errors. `kind`: unavailable, timeout, throttled, misconfigured or
 * corrupt. */
class CircuitBreakerPersistenceError extends CircuitBreakerError {
  constructor(message, kind, options) {
    super(message, options);
    this.name = 'CircuitBreakerPersistenceError';
    this.code = 'ERR_CIRCUIT_STORE';
    this.kind = kind;
  }
}

function invalidType(field, expected, value) {
  const err = new TypeError(`${field} must be ${expected}, got ${describe(value)}`);
  err.code = 'ERR_INVALID_ARG_TYPE';
  err.field = field;
  return err;
}

function outOfRange(field, expected, value) {
  const err = new RangeError(`${field} must be ${expected}, got ${describe(value)}`);
  err.code = 'ERR_OUT_OF_RANGE';
  err.field = field;
  return err;
}

function describe(value) {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  if (value === null || typeof value !== 'object') return String(value);
  try {
    return JSON.stringify(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

const CODED = /^\[(ERR_CIRCUIT_[A-Z]+)(?::([^\]]*))?\] ([\s\S]*)$/;

/** Turns an error thrown by the addon into fleetbreaker's own. */
function fromNative(err) {
  const match = err && typeof err.message === 'string' ? CODED.exec(err.message) : null;
  if (!match) return err;
  const [, code, detail, message] = match;
  if (code === 'ERR_CIRCUIT_STORE') return new CircuitBreakerPersistenceError(message, detail, { cause: err });
  if (code === 'ERR_CIRCUIT_CONFIG') {
    const e = new RangeError(`${detail}: ${message}`, { cause: err });
    e.code = 'ERR_OUT_OF_RANGE';
    e.field = detail;
    return e;
  }
  return new CircuitBreakerError(message, { cause: err });
}

module.exports = {
  CircuitBreakerError,
  CircuitBreakerOpenError,
  CircuitBreakerPersistenceError,
  invalidType,
  outOfRange,
  fromNative,
};
