// A typed use of the package, checked with `tsc --noEmit` (npm run typecheck): the wrapped
// function keeps the parameter and return types of the function it wraps.
import {
  circuitBreaker,
  CircuitBreaker,
  CircuitBreakerOpenError,
  CircuitBreakerConfigError,
  CircuitState,
  DynamoDBPersistence,
  InMemoryPersistence,
  ManualClock,
  type CircuitInfo,
  type CircuitTransition,
} from '../lib/index.js';

interface Order {
  id: string;
  amountCents: number;
}

const persistence = new DynamoDBPersistence({ tableName: 'CircuitBreakerState' });

const charge = circuitBreaker(async (order: Order): Promise<{ chargeId: string }> => ({ chargeId: order.id }), {
  name: 'payment-backend',
  persistence,
  config: { failureThreshold: 5, recoveryTimeout: 30, successThreshold: 3, localCacheMaxAge: 5 },
  onCircuitOpen: (order: Order, circuit: CircuitInfo) => ({ chargeId: `queued:${order.id}:${circuit.state}` }),
  onTransition: (t: CircuitTransition) => console.log(t.circuitName, t.fromState, t.toState, t.reason),
  isFailure: (err: unknown) => !(err instanceof TypeError),
});

async function main(): Promise<void> {
  const result: { chargeId: string } = await charge({ id: 'o-1', amountCents: 500 });
  console.log(result.chargeId);
  // @ts-expect-error: the wrapper keeps fn's parameter types
  await charge('not an order');

  const double = circuitBreaker((x: number) => x * 2, { name: 'sync', persistence: new InMemoryPersistence(), clock: new ManualClock() });
  const doubled: number = await double(21);
  console.log(doubled, charge.circuitBreaker.name);

  const breaker = new CircuitBreaker({ name: 'manual', persistence: new InMemoryPersistence() });
  try {
    const n: number = await breaker.call((a: number, b: number) => a + b, 1, 2);
    console.log(n);
  } catch (err) {
    if (err instanceof CircuitBreakerOpenError) {
      const wait: number | null = err.retryAfterMs;
      const state: CircuitState = err.circuit.state;
      console.log(err.code, wait, state === CircuitState.OPEN);
    }
  }
  const info = await breaker.forceOpen({ duration: 600, reason: 'provider incident' });
  console.log(info.overrideUntilMs);
  const permit = await breaker.acquire();
  await (permit.probe ? permit.success() : permit.ignore());
}

function configured(failureThreshold: number): CircuitBreaker | string {
  try {
    return new CircuitBreaker({ name: 'orders', persistence, config: { failureThreshold } });
  } catch (err) {
    if (err instanceof CircuitBreakerConfigError) {
      const code: 'ERR_CIRCUIT_CONFIG' = err.code;
      return `${code} ${err.field}`;
    }
    throw err;
  }
}

void main;
void configured;
