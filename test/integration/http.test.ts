/**
 * The HTTP front door, with real HTTP requests against the gateway process on the real stack.
 * One stack for the whole file: the tests use distinct keys and orders.
 */
import test from 'ava';
import { ContinuumClient } from '../../client/index.ts';
import { paymentFor } from '../../participants/seed.ts';
import { HookCleanup, startTestStack, type TestStack } from '../helpers/harness.ts';

let ts: TestStack;
const cleanup = new HookCleanup();

test.before(async (t) => {
  ts = await startTestStack(cleanup.context(t), { gateway: true });
});

test.after.always(() => cleanup.run());

const client = 'http-shop';

async function post(key: string | undefined, body: unknown, clientId = client) {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'continuum-client-id': clientId,
  };
  if (key !== undefined) headers['idempotency-key'] = `"${key}"`;
  const response = await fetch(`${ts.stack.gatewayUrl}/payments`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}

test.serial('POST /payments commits, and the same request again is a marked replay', async (t) => {
  const first = await post('http-key-0000000000001', { payment: paymentFor('order-1011') });
  t.is(first.status, 200);
  t.like(first.body, { kind: 'outcome', outcome: 'committed', replay: false });
  t.is(first.headers.get('idempotent-replayed'), null);
  const again = await post('http-key-0000000000001', { payment: paymentFor('order-1011') });
  t.is(again.status, 200);
  t.is(again.headers.get('idempotent-replayed'), 'true');
  t.deepEqual(again.body, { ...first.body, replay: true });
});

test.serial('a missing or malformed Idempotency-Key is 400 and starts nothing', async (t) => {
  const before = ts.query<{ n: number }>('coordinator', 'SELECT count(*) AS n FROM payments');
  const missing = await post(undefined, { payment: paymentFor('order-1012') });
  t.is(missing.status, 400);
  t.regex(String(missing.body['detail']), /Idempotency-Key header is required/);
  const malformed = await post('short', { payment: paymentFor('order-1012') });
  t.is(malformed.status, 400);
  const noClient = await post('http-key-0000000000009', { payment: paymentFor('order-1012') }, '');
  t.is(noClient.status, 400);
  const badBody = await post('http-key-0000000000010', '{not json');
  t.is(badBody.status, 400);
  const badAmount = await post('http-key-0000000000011', {
    payment: { ...paymentFor('order-1012'), amountMinor: 0 },
  });
  t.is(badAmount.status, 400);
  const huge = await post('http-key-0000000000012', 'x'.repeat(70_000));
  t.is(huge.status, 413);
  const after = ts.query<{ n: number }>('coordinator', 'SELECT count(*) AS n FROM payments');
  t.deepEqual(after, before);
});

test.serial(
  'the same key with a different body is 422 and leaves the original untouched',
  async (t) => {
    const key = 'http-key-0000000000002';
    const first = await post(key, { payment: paymentFor('order-1012') });
    t.is(first.status, 200);
    const changed = { ...paymentFor('order-1012'), amountMinor: 9_999 };
    const reuse = await post(key, { payment: changed });
    t.is(reuse.status, 422);
    t.is(reuse.headers.get('content-type'), 'application/problem+json');
    const status = await fetch(`${ts.stack.gatewayUrl}/payments/${key}`, {
      headers: { 'continuum-client-id': client },
    });
    t.is(status.status, 200);
    t.like(await status.json(), { state: 'committed', txId: first.body['txId'] });
  },
);

test.serial(
  'GET /payments/{key} is 404 for a key never used, and keys are scoped by client',
  async (t) => {
    const unknown = await fetch(`${ts.stack.gatewayUrl}/payments/http-key-never-used-0001`, {
      headers: { 'continuum-client-id': client },
    });
    t.is(unknown.status, 404);
    // Another client's identical key names another payment: it neither collides nor reveals.
    const other = await fetch(`${ts.stack.gatewayUrl}/payments/http-key-0000000000001`, {
      headers: { 'continuum-client-id': 'someone-else' },
    });
    t.is(other.status, 404);
  },
);

test.serial(
  'a payment started over HTTP is resumed over NATS, and the other way round',
  async (t) => {
    const nats = await ContinuumClient.connect({ servers: ts.stack.natsUrls, clientId: client });
    t.teardown(() => nats.close());
    const overHttp = await post('http-key-0000000000003', { payment: paymentFor('order-1013') });
    const resumed = await nats.makePayment(paymentFor('order-1013'), {
      idempotencyKey: 'http-key-0000000000003',
    });
    t.deepEqual(resumed, { ...overHttp.body, replay: true });
    const overNats = await nats.makePayment(paymentFor('order-1014'), {
      idempotencyKey: 'nats-key-0000000000004',
    });
    const viaHttp = await post('nats-key-0000000000004', { payment: paymentFor('order-1014') });
    t.is(viaHttp.status, 200);
    t.deepEqual(viaHttp.body, { ...overNats, replay: true });
  },
);

test.serial('a request for a key still being decided is 409 with Retry-After', async (t) => {
  await ts.stack.services.vendor.pause();
  const key = 'http-key-0000000000005';
  const body = { payment: paymentFor('order-1015'), timeoutMs: 12_000 };
  try {
    // Both requests join the one payment and wait (the gateway's 5 s) while the vendor is
    // silent; when the wait runs out each is told "in progress" instead of hanging.
    const [first, second] = await Promise.all([post(key, body), post(key, body)]);
    for (const answer of [first, second]) {
      t.is(answer.status, 409);
      t.truthy(answer.headers.get('retry-after'));
      t.like(answer.body, { kind: 'in-progress' });
    }
    t.is(first.body['txId'], second.body['txId'], 'one payment, not two');
  } finally {
    ts.stack.services.vendor.resume();
  }
  let outcome = await post(key, body);
  for (let attempt = 1; outcome.status === 409 && attempt < 10; attempt += 1) {
    outcome = await post(key, body);
  }
  t.is(outcome.status, 200);
  t.is(outcome.body['outcome'], 'committed');
  const rows = ts.query('coordinator', 'SELECT tx_id FROM payments WHERE idempotency_key = ?', key);
  t.is(rows.length, 1);
  await ts.assertConsistent(t);
});
