// A Lambda function that calls a payment provider through a fleet-wide circuit breaker.
//
// When the provider starts failing, every execution environment of the function stops calling
// it within seconds; one call at a time probes it while it recovers. Rejected orders are queued
// instead of failing the request.
import { circuitBreaker, DynamoDBPersistence } from 'fleetbreaker';

// Module scope: built once per execution environment, at cold start.
const persistence = new DynamoDBPersistence({ tableName: process.env.FLEETBREAKER_TABLE ?? 'CircuitBreakerState' });
const providerUrl = process.env.PROVIDER_URL ?? 'https://payments.example.com/charge';

class ProviderError extends Error {}

const charge = circuitBreaker(
  async (order) => {
    const response = await fetch(providerUrl, {
      method: 'POST',
      body: JSON.stringify(order),
      signal: AbortSignal.timeout(2000),
    });
    if (response.status >= 500) throw new ProviderError(`provider answered ${response.status}`);
    return response.json();
  },
  {
    name: 'payment-provider',
    persistence,
    config: { failureThreshold: 5, recoveryTimeout: 30, successThreshold: 3, backoffMultiplier: 2, maxRecoveryTimeout: 300 },
    // Timeouts, network errors and 5xx count; a refused card says nothing about the provider.
    isFailure: (err) => err instanceof ProviderError || err.name === 'TimeoutError' || err.name === 'TypeError',
    onCircuitOpen: (order, circuit) => ({ status: 'queued', orderId: order.id, retryAfterMs: circuit.retryAfterMs }),
    onTransition: (t) => console.log(JSON.stringify({ circuit: t.circuitName, from: t.fromState, to: t.toState, reason: t.reason })),
  },
);

export const handler = async (event) => {
  const order = JSON.parse(event.body ?? '{}');
  return { statusCode: 200, body: JSON.stringify(await charge(order)) };
};
