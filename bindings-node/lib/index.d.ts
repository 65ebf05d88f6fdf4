// Types of the fleetbreaker JavaScript API. (The addon's own types are in ../native.d.ts.)

/** Where a circuit stands. */
export declare const CircuitState: {
  readonly CLOSED: 'CLOSED';
  readonly OPEN: 'OPEN';
  readonly HALF_OPEN: 'HALF_OPEN';
  readonly FORCED_OPEN: 'FORCED_OPEN';
  readonly FORCED_CLOSED: 'FORCED_CLOSED';
};
export type CircuitState = (typeof CircuitState)[keyof typeof CircuitState];

/** How a circuit behaves. Durations are seconds; absent fields take the defaults. */
export interface CircuitBreakerConfig {
  /** Consecutive counted failures in one environment that open the circuit. Default 5 (none when failureRateThreshold is set). */
  failureThreshold?: number | null;
  /**
   * Selects the failure-rate policy: the circuit opens when this share of the whole fleet's
   * calls in the window failed (0.2: a fifth). A healthy fleet still writes nothing. Setting it
   * together with failureThreshold is an error. Default none.
   */
  failureRateThreshold?: number | null;
  /** Under the failure-rate policy, the fleet's calls the window must hold before its rate counts. Default 100. */
  minimumCalls?: number;
  /** How long the circuit stays open before one call may probe. Default 30. */
  recoveryTimeout?: number;
  /** Probe successes that close it again. Default 3. */
  successThreshold?: number;
  /** How long this environment trusts its read of the shared record. Default 5. */
  localCacheMaxAge?: number;
  /** Each reopening multiplies the break by this. Default 1. */
  backoffMultiplier?: number;
  /** The longest break. Default none. */
  maxRecoveryTimeout?: number | null;
  /** Up to this fraction of the break is added at random. Default 0. */
  recoveryJitter?: number;
  /** How long one call holds the probe permit before another may take it over. Default recoveryTimeout. */
  probeLease?: number | null;
  /** The deadline of every store call. Default 1. */
  storeTimeout?: number;
  /** After a store error, how long to protect locally before asking the store again. Default 5. */
  storeRetryAfter?: number;
  /** While the store cannot be reached: admit and protect locally ('open', the default) or reject ('closed'). */
  storeFailureMode?: 'open' | 'closed';
  /** Distinct environments that must have seen the failures before the circuit trips for the fleet (1: any one). Default 1. */
  minimumEnvironments?: number;
  /** The fleet's sliding window: the failure rate is taken over it, and another environment's failures count toward minimumEnvironments within it. Default 60. */
  window?: number;
  /** A success slower than this many seconds counts as a failure, reported as a slow call. Every call then takes a permit (no admission lease). Default none. */
  slowCall?: number | null;
}

/** What a call or an operator sees of a circuit. Times are epoch milliseconds. */
export interface CircuitInfo {
  readonly name: string;
  readonly state: CircuitState;
  /** Closed: this environment's current run of failures; otherwise the failures seen by the environment that tripped it. */
  readonly failureCount: number;
  readonly version: number;
  readonly openedAtMs: number | null;
  readonly openUntilMs: number | null;
  /** How long a rejected caller may wait before calls go through again, when known. */
  readonly retryAfterMs: number | null;
  readonly overrideReason: string | null;
  readonly overrideUntilMs: number | null;
  /** The store cannot be reached; this environment decides alone. */
  readonly localOnly: boolean;
  /** Of failureCount, the slow calls (successes slower than slowCall). */
  readonly slowCallCount: number;
}

/** One change of a circuit, reported by the environment whose write made it. */
export interface CircuitTransition {
  readonly circuitName: string;
  readonly fromState: CircuitState;
  readonly toState: CircuitState;
  readonly openedAtMs: number | null;
  readonly version: number;
  readonly atMs: number;
  /** tripped, probe_started, probe_taken_over, probe_succeeded, probe_released, probe_failed, recovered, forced_open, forced_closed, override_expired, reset or reconciled. */
  readonly reason: string;
  readonly overrideReason: string | null;
  readonly localOnly: boolean;
  /** The failures that tripped the circuit into this episode (0 once it closed). */
  readonly failureCount: number;
  /** Of those, the slow calls. */
  readonly slowCallCount: number;
}

export interface Logger {
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

export interface PersistenceOptions {
  /** Where store trouble is reported. Default: console.warn / console.error. */
  logger?: Logger;
}

declare abstract class Persistence {
  /** Another environment on the same store, as if in another process (tests, simulations). */
  environment(options?: { id?: string }): this;
}

/** Circuits in this process's memory. */
export declare class InMemoryPersistence extends Persistence {
  constructor(options?: PersistenceOptions);
}

/** Circuits in a SQLite file, shared by the processes of one machine. */
export declare class SQLitePersistence extends Persistence {
  constructor(options: string | (PersistenceOptions & { path: string }));
  readonly path: string;
}

export interface DynamoDBPersistenceOptions extends PersistenceOptions {
  tableName: string;
  /** The partition key attribute. Default 'id'. */
  keyAttr?: string;
  /** Composite keys: the sort key attribute that holds the circuit name. */
  sortKeyAttr?: string;
  /** Composite keys: the partition key value. Default 'fleetbreaker#' + AWS_LAMBDA_FUNCTION_NAME. */
  staticPkValue?: string;
  /** Default: the standard AWS environment. */
  region?: string;
  /** Default: the standard AWS environment (AWS_ENDPOINT_URL_DYNAMODB). */
  endpointUrl?: string;
  /** Strongly consistent reads. Default false. */
  consistentRead?: boolean;
}

/** Circuits in a DynamoDB table (IAM: dynamodb:GetItem and dynamodb:PutItem). */
export declare class DynamoDBPersistence extends Persistence {
  constructor(options: DynamoDBPersistenceOptions);
  readonly tableName: string;
  /** The partition key value in effect with composite keys (`circuit_breaker#<function>` by default); null without them. */
  readonly staticPkValue: string | null;
  /** Creates the table (on-demand, TTL on `expiration`): for development and tests. */
  createTable(): Promise<void>;
}

/**
 * A clock that moves only when told: a wall clock (the times in the shared record) and a
 * monotonic one (the breaker's own deadlines). `advance` moves both; `step` only the wall clock.
 */
export declare class ManualClock {
  constructor(startMs?: number);
  nowMs(): number;
  monotonicMs(): number;
  advance(seconds: number): void;
  setMs(ms: number): void;
  /** Steps the wall clock by `seconds` (back when negative), as an NTP step does. */
  step(seconds: number): void;
}

export interface CircuitBreakerOptions {
  name: string;
  persistence: Persistence;
  /** Without one, the breaker takes the configuration of the circuit if it is in use here, else the defaults. */
  config?: CircuitBreakerConfig;
  /** Held as long as the breaker is: a hook goes away with its breaker. */
  onTransition?: (transition: CircuitTransition) => void;
  /** Whether an error counts against the circuit. Default: every error. */
  isFailure?: (error: unknown) => boolean;
  clock?: ManualClock;
}

export interface CircuitBreakerFnOptions<A extends unknown[], R> extends CircuitBreakerOptions {
  /** Called instead of the function when the circuit rejects a call; its value becomes the result. */
  onCircuitOpen?: (...args: [...A, CircuitInfo]) => R | Promise<R>;
}

/** Leave to make one call; report exactly one outcome. */
export declare class Permit {
  readonly leased: boolean;
  readonly probe: boolean;
  success(): Promise<void>;
  failure(): Promise<void>;
  ignore(): Promise<void>;
}

export declare class CircuitBreaker {
  constructor(options: CircuitBreakerOptions);
  readonly name: string;
  readonly config: Readonly<Required<CircuitBreakerConfig>>;
  call<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, ...args: A): Promise<R>;
  acquire(): Promise<Permit>;
  info(): Promise<CircuitInfo>;
  forceOpen(options?: { duration?: number; reason?: string }): Promise<CircuitInfo>;
  forceClosed(options?: { duration?: number; reason?: string }): Promise<CircuitInfo>;
  reset(): Promise<CircuitInfo>;
}

/** Wraps `fn` with a fleet-wide circuit: an async function with `fn`'s parameters and result. */
export declare function circuitBreaker<A extends unknown[], R>(
  fn: (...args: A) => R | Promise<R>,
  options: CircuitBreakerFnOptions<A, R>,
): ((...args: A) => Promise<R>) & { readonly circuitBreaker: CircuitBreaker };

export declare class CircuitBreakerError extends Error {}

export declare class CircuitBreakerOpenError extends CircuitBreakerError {
  readonly code: 'ERR_CIRCUIT_OPEN';
  readonly circuit: CircuitInfo;
  readonly retryAfterMs: number | null;
}

export declare class CircuitBreakerPersistenceError extends CircuitBreakerError {
  readonly code: 'ERR_CIRCUIT_STORE';
  readonly kind: 'unavailable' | 'timeout' | 'throttled' | 'misconfigured' | 'corrupt';
}

/** A configuration, a circuit name or a store's settings were refused (the same refusal, with
 * the same message, as in every language). */
export declare class CircuitBreakerConfigError extends CircuitBreakerError {
  readonly code: 'ERR_CIRCUIT_CONFIG';
  /** The field to blame, camelCase as passed: `failureThreshold`, `name`, `config`, ... */
  readonly field: string;
}

/** The shared record: every field the store keeps (`state`, `version`, `openedAtMs`, ...),
 * camelCase; absent ones are `null`. The fields are the record's, declared once in the host. */
export type StoredRecord = Readonly<Record<string, string | number | null>>;

/** Helpers for tests: look inside and break an in-memory store, record every event. */
export declare const testing: {
  storedRecord(persistence: InMemoryPersistence, name: string): StoredRecord | null;
  storeCounts(persistence: InMemoryPersistence): { reads: number; writes: number; failedCalls: number };
  setStoreFault(persistence: InMemoryPersistence, kind: 'unavailable' | 'timeout' | 'throttled' | 'misconfigured' | null): void;
  putCorruptItem(persistence: InMemoryPersistence, name: string, version: number | null, problem: string): void;
  /** Deletes the circuit's item, as DynamoDB's TTL or an operator does. */
  deleteItem(persistence: Persistence, name: string): Promise<void>;
  /** Store calls wait (a slow store) until `releaseCalls`; with `which`, only loads or writes. */
  holdCalls(persistence: InMemoryPersistence, which?: { loads?: boolean; writes?: boolean }): void;
  releaseCalls(persistence: InMemoryPersistence, which?: { loads?: boolean; writes?: boolean }): void;
  recordEvents(persistence: Persistence, sink: (event: Record<string, unknown>) => void, clock?: ManualClock): void;
};
