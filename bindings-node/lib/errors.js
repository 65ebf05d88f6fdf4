'use strict';
// The errors of fleetbreaker, and the one place where the addon's errors become them. The
// addon sets each error's `code` (ERR_CIRCUIT_CONFIG with `field`, ERR_CIRCUIT_STORE with
// `kind`, ERR_CIRCUIT_INTERNAL) as a property; the class is picked by it.

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

/** A configuration, a circuit name or a store's settings were refused. `code` is
 * `ERR_CIRCUIT_CONFIG`; `field` names the field (camelCase, as passed); the message is the
 * host's, the same text as in every language. */
class CircuitBreakerConfigError extends CircuitBreakerError {
  constructor(message, field, options) {
    super(message, options);
    this.name = 'CircuitBreakerConfigError';
    this.code = 'ERR_CIRCUIT_CONFIG';
    this.field = field;
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

/** Turns an error thrown by the addon into fleetbreaker's own, by its `code`. */
function fromNative(err) {
  switch (err && err.code) {
    case 'ERR_CIRCUIT_CONFIG':
      return new CircuitBreakerConfigError(err.message, err.field, { cause: err });
    case 'ERR_CIRCUIT_STORE':
      return new CircuitBreakerPersistenceError(err.message, err.kind, { cause: err });
    case 'ERR_CIRCUIT_INTERNAL':
      return new CircuitBreakerError(err.message, { cause: err });
    default:
      return err;
  }
}

module.exports = {
  CircuitBreakerError,
  CircuitBreakerOpenError,
  CircuitBreakerPersistenceError,
  CircuitBreakerConfigError,
  invalidType,
  outOfRange,
  fromNative,
};
