'use strict';
// The error table (conformance/config-errors.json) through the JavaScript API: every bad input
// is refused with the field (camelCase) and the message that Rust and Python give for it.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { CircuitBreaker, CircuitBreakerConfigError, DynamoDBPersistence, InMemoryPersistence, SQLitePersistence } = require('../lib/index.js');

const table = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'conformance', 'config-errors.json'), 'utf8'));

const camel = (snake) => snake.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

/** A table value (`{"int": 0}`, `{"float": "NaN"}`, `{"text": ""}`, ...) as a JavaScript value. */
function value(typed) {
  const [[kind, v]] = Object.entries(typed);
  switch (kind) {
    case 'int': return v;
    case 'float': return typeof v === 'string' ? Number(v) : v;
    case 'text': return v;
    case 'repeat': return v[0].repeat(v[1]);
    case 'bool': return v;
    case 'null': return null;
    default: throw new Error(`unknown value kind ${kind}`);
  }
}

function config(fields) {
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [camel(k), value(v)]));
}

async function refusal(c) {
  const persistence = new InMemoryPersistence();
  try {
    if (c.config) new CircuitBreaker({ name: 'payments', persistence, config: config(c.config) });
    else if (c.name) new CircuitBreaker({ name: value(c.name), persistence });
    else if (c.override) await new CircuitBreaker({ name: 'payments', persistence }).forceOpen(config(c.override));
    else if (c.dynamodb) new DynamoDBPersistence(config(c.dynamodb));
    else if (c.sqlite) new SQLitePersistence({ path: value(c.sqlite) });
    else {
      const inUse = new CircuitBreaker({ name: 'payments', persistence, config: config(c.conflict[0]) });
      new CircuitBreaker({ name: 'payments', persistence, config: config(c.conflict[1]) });
      void inUse;
    }
  } catch (e) {
    return e;
  }
  return null;
}

test('every bad input in the table gets its field and message', async () => {
  assert.ok(table.cases.length > 50);
  const wrong = [];
  for (const c of table.cases) {
    const e = await refusal(c);
    const field = camel(c.field);
    const message = c.message.replace(/\{([a-z_]+)\}/g, (_, f) => camel(f));
    const ok = e instanceof CircuitBreakerConfigError && e.code === 'ERR_CIRCUIT_CONFIG'
      && e.field === field && e.message === `invalid ${field}: ${message}`;
    if (!ok) wrong.push(`${c.what}: expected ${field}: ${message}\n      got ${e && `${e.constructor.name} ${e.code} ${e.field}: ${e.message}`}`);
  }
  assert.deepEqual(wrong, []);
});
