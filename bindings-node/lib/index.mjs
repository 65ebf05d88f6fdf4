// ES module entry: the same objects as the CommonJS entry.
import fleetbreaker from './index.js';

export const {
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
} = fleetbreaker;
export default fleetbreaker;
