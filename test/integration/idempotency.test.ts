/**
 * Idempotency keys and client continuity on the real stack (REFERENCE.md, Idempotency keys):
 * one execution per key under concurrency, replays that touch no participant, keys scoped by
 * client, expiry, the client's failure classification, a kill -9 of the client's own NATS server
 * in a 3-node cluster, and a client process restart resumed from durable intents.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ContinuumClient,
  PaymentOutcomeUnknownError,
  PaymentRefusedError,
} from '../../client/index.ts';
import { projectRoot } from '../../ops/service-process.ts';
import { paymentFor } from '../../participants/seed.ts';
import { deliveredToParticipants as deliveredToNodes } from '../helpers/connz.ts';
import { fastFlags, startTestStack, type TestStack } from '../helpers/harness.ts';

async function deliveredToParticipants(ts: TestStack): Promise<Record<string, number>> {
  return deliveredToNodes(ts.stack.nats);
}

async function serverOf(ts: TestStack, connectionName: string): Promise<number> {
  for (const [index, node] of ts.stack.nats.entries()) {
    if (!node.isRunning()) continue;
    const response = await fetch(`http://127.0.0.1:${node.httpPort}/connz?limit=1000`);
    const body = (await response.json()) as { connections: { name?: string }[] };
    if (body.connections.some((connection) => connection.name === connectionName)) return index;
  }
  throw new Error(`${connectionName} is connected to no server`);
}

test('concurrent first requests with one key execute once', async (t) => {
  const ts = await startTestStack(t);
  const key = 'concurrent-key-000000001';
  const outcomes = await Promise.all(
    Array.from({ length: 20 }, () =>
      ts.client.makePayment(paymentFor('order-1001'), { idempotencyKey: key }),
    ),
  );
  const txIds = new Set(outcomes.map((outcome) => outcome.txId));
  t.is(txIds.size, 1, 'every request got the one transaction');
  t.true(outcomes.every((outcome) => outcome.outcome === 'committed'));
  const rows = ts.query('coordinator', 'SELECT tx_id FROM payments WHERE idempotency_key = ?', key);
  t.is(rows.length, 1);
  const holds = ts.query('bank', 'SELECT tx_id FROM holds');
  t.is(holds.length, 1, 'the bank saw one payment');
  await ts.assertConsistent(t);
});

test('a replay after the outcome is the stored outcome and sends nothing to participants', async (t) => {
  const ts = await startTestStack(t);
  const key = 'replay-key-0000000000001';
  const first = await ts.client.makePayment(paymentFor('order-1001'), { idempotencyKey: key });
  await ts.assertConsistent(t);
  const before = await deliveredToParticipants(ts);
  t.deepEqual(Object.keys(before).sort(), [
    'continuum-bank',
    'continuum-customer',
    'continuum-vendor',
  ]);
  const replays = await Promise.all(
    [1, 2, 3].map(() => ts.client.makePayment(paymentFor('order-1001'), { idempotencyKey: key })),
  );
  for (const replay of replays) t.deepEqual(replay, { ...first, replay: true });
  t.deepEqual(await deliveredToParticipants(ts), before, 'no message reached any participant');
});

test('the same key with a different payment is refused and changes nothing', async (t) => {
  const ts = await startTestStack(t);
  const key = 'mismatch-key-00000000001';
  const first = await ts.client.makePayment(paymentFor('order-1001'), { idempotencyKey: key });
  const changed = { ...paymentFor('order-1001'), amountMinor: 2_400 };
  const error = await t.throwsAsync(ts.client.makePayment(changed, { idempotencyKey: key }), {
    instanceOf: PaymentRefusedError,
  });
  t.is(error.code, 'key-mismatch');
  t.is(error.idempotencyKey, key);
  const status = await ts.client.status(key);
  t.like(status, { txId: first.txId, state: 'committed' });
  await ts.assertConsistent(t);
});

test('keys are scoped by client: the same key from another client is another payment', async (t) => {
  const ts = await startTestStack(t);
  const other = await ContinuumClient.connect({
    servers: ts.stack.natsUrls,
    clientId: 'other-shop',
  });
  t.teardown(() => other.close());
  const key = 'shared-key-0000000000001';
  const mine = await ts.client.makePayment(paymentFor('order-1001'), { idempotencyKey: key });
  // The other client neither sees the first client's result nor collides with it.
  t.is((await other.status(key)).state, 'unknown');
  const theirs = await other.makePayment(paymentFor('order-1005'), { idempotencyKey: key });
  t.not(theirs.txId, mine.txId);
  t.false(theirs.replay);
  await ts.assertConsistent(t);
});

test('a key reused after its retention period starts a new payment', async (t) => {
  const ts = await startTestStack(t, {
    flags: {
      ...fastFlags,
      coordinator: [...(fastFlags.coordinator ?? []), '--key-retention-ms', '300'],
    },
  });
  // A retention this short is for tests: the coordinator says what it risks.
  const log = ts.stack.services.coordinator.logTail(200);
  t.regex(log, /"event":"key-retention-short".*"retentionMs":300/);
  const key = 'expiring-key-00000000001';
  const first = await ts.client.makePayment(paymentFor('order-1001'), { idempotencyKey: key });
  await ts.assertConsistent(t);
  await sleep(800);
  const purged = ts.query('coordinator', 'SELECT * FROM payments WHERE tx_id = ?', first.txId);
  t.deepEqual(purged, [], 'the completed payment was purged after its retention');
  // Same key, new payment: the order is paid already, so the vendor refuses it.
  const second = await ts.client.makePayment(paymentFor('order-1001'), { idempotencyKey: key });
  t.not(second.txId, first.txId);
  t.like(second, { outcome: 'aborted', abortedBy: 'vendor', replay: false });
  await ts.assertConsistent(t, new Set([first.txId]));
});

test('an invalid payment is refused at once and never retried', async (t) => {
  const ts = await startTestStack(t);
  const attempts: number[] = [];
  const bad = { ...paymentFor('order-1001'), currency: 'EUX' };
  await t.throwsAsync(
    ts.client.makePayment(bad, { onEvent: (event) => attempts.push(event.attempt) }),
    { name: 'ValidationError' },
  );
  t.deepEqual(attempts, [], 'rejected by the client before any attempt');
});

test('with no coordinator the client gives up at its deadline with the key to resume', async (t) => {
  const ts = await startTestStack(t);
  await ts.stack.services.coordinator.stop();
  const failures: string[] = [];
  const error = await t.throwsAsync(
    ts.client.makePayment(paymentFor('order-1001'), {
      idempotencyKey: 'deadline-key-00000000001',
      deadlineMs: 800,
      onEvent: (event) => {
        if (event.kind === 'failed') failures.push(event.failure);
      },
    }),
    { instanceOf: PaymentOutcomeUnknownError },
  );
  t.is(error.idempotencyKey, 'deadline-key-00000000001');
  t.true(failures.length >= 2, 'it retried');
  t.true(
    failures.every((failure) => failure === 'never-delivered'),
    failures.join(','),
  );
  // Once the coordinator is back, resuming with the key finishes the one payment.
  await ts.stack.services.coordinator.start();
  const outcome = await ts.client.makePayment(paymentFor('order-1001'), {
    idempotencyKey: error.idempotencyKey,
  });
  t.is(outcome.outcome, 'committed');
  await ts.assertConsistent(t);
});

test('kill -9 of the client’s NATS server mid-request: one outcome, applied once', async (t) => {
  const ts = await startTestStack(t, { cluster: true });
  const key = 'failover-key-00000000001';
  await ts.stack.services.vendor.pause();
  const failures: string[] = [];
  const paying = ts.client.makePayment(paymentFor('order-1001'), {
    idempotencyKey: key,
    attemptTimeoutMs: 700,
    paymentTimeoutMs: 10_000,
    onEvent: (event) => {
      if (event.kind === 'failed') failures.push(event.failure);
    },
  });
  await sleep(300);
  const index = await serverOf(ts, 'client-test-client');
  await ts.stack.nats[index]?.kill();
  t.log(`killed nats node ${index}, the client's server, with the request in flight`);
  await sleep(300);
  ts.stack.services.vendor.resume();
  const outcome = await paying;
  t.is(outcome.outcome, 'committed');
  t.true(failures.length >= 1, `the client saw the break and retried (${failures.join(',')})`);
  t.not(await serverOf(ts, 'client-test-client'), index, 'the client moved to another server');
  await ts.stack.nats[index]?.restart();
  await ts.assertConsistent(t);
  const rows = ts.query('coordinator', 'SELECT tx_id FROM payments WHERE idempotency_key = ?', key);
  t.deepEqual(rows, [{ tx_id: outcome.txId }]);
  t.is(ts.query('bank', 'SELECT tx_id FROM holds').length, 1);
});

test('a client process restarted mid-payment resumes its durable intents', async (t) => {
  const ts = await startTestStack(t);
  const intentsDir = mkdtempSync(join(tmpdir(), 'continuum-intents-'));
  t.teardown(() => rmSync(intentsDir, { recursive: true, force: true }));
  const intentsFile = join(intentsDir, 'intents.sqlite');
  const key = 'intent-key-0000000000001';
  await ts.stack.services.vendor.pause();
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'test/helpers/pay-once.ts',
      ts.stack.natsUrls.join(','),
      'shop-1',
      intentsFile,
      'order-1001',
      key,
    ],
    { cwd: projectRoot, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout });
  await new Promise<void>((resolve) => lines.once('line', () => resolve()));
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  ts.stack.services.vendor.resume();
  const client = await ContinuumClient.connect({
    servers: ts.stack.natsUrls,
    clientId: 'shop-1',
    intentsFile,
  });
  t.teardown(() => client.close());
  const resumed = await client.resumePending();
  t.is(resumed.length, 1);
  t.is(resumed[0]?.idempotencyKey, key);
  t.is(resumed[0]?.outcome?.outcome, 'committed');
  t.deepEqual(await client.resumePending(), [], 'nothing is pending once answered');
  const rows = ts.query('coordinator', 'SELECT tx_id FROM payments WHERE idempotency_key = ?', key);
  t.deepEqual(rows, [{ tx_id: resumed[0]?.outcome?.txId }]);
  await ts.assertConsistent(t);
});
