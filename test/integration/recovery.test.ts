/**
 * The crash-point matrix on the real stack: a process dies (SIGKILL, from inside, at a named step)
 * while a payment is in flight, is restarted, and the payment must reach the outcome that point
 * allows — ABORT before a durable decision, COMMIT after a durable COMMIT — identically in all
 * three databases, with money conserved, no hold left, and the client's key giving that outcome.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CrashPoint } from '../../common/crash.ts';
import type { Outcome, ParticipantName, Payment } from '../../common/protocol.ts';
import { ServiceProcess, ServiceStartError } from '../../ops/service-process.ts';
import type { ServiceName } from '../../ops/stack.ts';
import { paymentFor } from '../../participants/seed.ts';
import { startTestStack, type TestStack } from '../helpers/harness.ts';

interface CrashCase {
  readonly point: CrashPoint;
  readonly service: ServiceName;
  readonly payment: Payment;
  readonly expected: Outcome;
}

const commits = paymentFor('order-1001');
// The vendor refuses this one (out of stock); bank and customer vote YES and must then abort.
const vendorRefuses = paymentFor('order-1003');

const matrix: readonly CrashCase[] = [
  {
    point: 'coordinator-after-begin',
    service: 'coordinator',
    payment: commits,
    expected: 'aborted',
  },
  {
    point: 'coordinator-after-prepares',
    service: 'coordinator',
    payment: commits,
    expected: 'aborted',
  },
  {
    point: 'coordinator-before-decision',
    service: 'coordinator',
    payment: commits,
    expected: 'aborted',
  },
  {
    point: 'coordinator-after-decision',
    service: 'coordinator',
    payment: commits,
    expected: 'committed',
  },
  {
    point: 'coordinator-after-some-acks',
    service: 'coordinator',
    payment: commits,
    expected: 'committed',
  },
  ...(['bank', 'vendor', 'customer'] as const).map((service): CrashCase => ({
    point: 'participant-after-vote',
    service,
    payment: commits,
    expected: 'committed',
  })),
  ...(['bank', 'vendor', 'customer'] as const).map((service): CrashCase => ({
    point: 'participant-after-commit',
    service,
    payment: commits,
    expected: 'committed',
  })),
  ...(['bank', 'customer'] as const).map((service): CrashCase => ({
    point: 'participant-after-abort',
    service,
    payment: vendorRefuses,
    expected: 'aborted',
  })),
];

async function armCrash(ts: TestStack, service: ServiceName, point: CrashPoint): Promise<void> {
  await ts.stack.services[service].restart({ CONTINUUM_CRASH_AT: point });
}

for (const crash of matrix) {
  test(`${crash.service} dies at ${crash.point}: the payment is ${crash.expected} everywhere`, async (t) => {
    const ts = await startTestStack(t);
    await armCrash(ts, crash.service, crash.point);
    const process = ts.stack.services[crash.service];
    const key = `crash-${crash.point}-${crash.service}`.slice(0, 64);
    const paying = ts.client.makePayment(crash.payment, {
      idempotencyKey: key,
      attemptTimeoutMs: 500,
    });
    await process.exited();
    t.log(`${crash.service} died at ${crash.point}; restarting`);
    await process.start();
    const outcome = await paying;
    t.is(outcome.outcome, crash.expected);
    if (crash.service === 'coordinator' && crash.expected === 'aborted') {
      t.is(outcome.abortedBy, 'coordinator');
      t.is(outcome.reason, 'coordinator restarted before a decision');
    }
    await ts.assertConsistent(t);
    const status = await ts.client.status(key);
    t.is(status.txId, outcome.txId);
    t.is(status.state, crash.expected);
    const replay = await ts.client.makePayment(crash.payment, { idempotencyKey: key });
    t.deepEqual(replay, { ...outcome, replay: true });
  });
}

test('a participant that stays down while the coordinator decides releases its hold when back', async (t) => {
  const ts = await startTestStack(t);
  await armCrash(ts, 'bank', 'participant-after-vote');
  const outcome = await ts.client.makePayment(commits, { paymentTimeoutMs: 1_000 });
  t.is(outcome.outcome, 'aborted');
  t.is(outcome.abortedBy, 'coordinator');
  t.false(ts.stack.services.bank.isRunning());
  // The bank's YES vote and its hold survived the crash; it must not release it on its own.
  const held = ts.query<{ state: string }>(
    'bank',
    'SELECT state FROM holds WHERE tx_id = ?',
    outcome.txId,
  );
  t.deepEqual(held, [{ state: 'held' }]);
  await ts.stack.services.bank.start();
  await ts.assertConsistent(t);
  const released = ts.query<{ state: string }>(
    'bank',
    'SELECT state FROM holds WHERE tx_id = ?',
    outcome.txId,
  );
  t.deepEqual(released, [{ state: 'released' }]);
});

test('a coordinator restarted while a participant is down finishes once it is back', async (t) => {
  const ts = await startTestStack(t);
  await armCrash(ts, 'vendor', 'participant-after-commit');
  const outcome = await ts.client.makePayment(commits);
  t.is(outcome.outcome, 'committed');
  await ts.stack.services.vendor.exited();
  await ts.stack.services.coordinator.kill();
  await ts.stack.services.coordinator.start();
  // The decision is re-sent with backoff; the missing ack is visible with its last error.
  await sleep(300);
  const view = await inFlight(ts);
  t.is(view.length, 1);
  t.like(view[0], { txId: outcome.txId, phase: 'committing', waitingFor: ['vendor'] });
  t.regex(view[0]?.lastError ?? '', /no responders|timeout/i);
  await ts.stack.services.vendor.start();
  await ts.assertConsistent(t);
  t.deepEqual(await inFlight(ts), []);
});

/** Writes a journal record as a disk or an operator might, with the coordinator stopped. */
async function insertRecord(file: string, txId: string, kind: string, index: boolean) {
  const Database = (await import('better-sqlite3')).default;
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  if (index) {
    db.prepare(
      `INSERT INTO payments (tx_id, client_id, idempotency_key, fingerprint, state, created_at)
       VALUES (?, 'test-client', 'key-corrupt-000001', 'x', 'preparing', ?)`,
    ).run(txId, Date.now());
  }
  db.prepare('INSERT INTO journal (tx_id, kind, body, written_at) VALUES (?, ?, ?, ?)').run(
    txId,
    kind,
    '{}',
    Date.now(),
  );
  db.close();
}

test('a coordinator whose journal holds an unknown record refuses to start, naming it', async (t) => {
  const ts = await startTestStack(t);
  const coordinator = ts.stack.services.coordinator;
  await coordinator.stop();
  // An unfinished payment, as the index says, whose record recovery cannot read.
  await insertRecord(ts.files.coordinator, '01HZX3V2M8Q4J7K9N0P5R6S7T8', 'mystery', true);
  const error = await t.throwsAsync(coordinator.start(), { instanceOf: ServiceStartError });
  t.regex(error.message, /JournalCorruptError/);
  t.true(error.message.includes(ts.files.coordinator), 'the message names the file');
  t.regex(error.message, /record seq \d+/);
});

test('--verify-journal on refuses records recovery would not read; without it they are skipped', async (t) => {
  const ts = await startTestStack(t);
  const coordinator = ts.stack.services.coordinator;
  await coordinator.stop();
  // Records of a payment the index does not list: recovery, which reads through the index,
  // never sees them; only a full read of the journal does.
  await insertRecord(ts.files.coordinator, '01HZX3V2M8Q4J7K9N0P5R6S7T9', 'mystery', false);
  const verifying = new ServiceProcess({
    ...coordinator.spec,
    args: [...coordinator.spec.args, '--verify-journal', 'on'],
  });
  t.teardown(() => verifying.kill());
  const error = await t.throwsAsync(verifying.start(), { instanceOf: ServiceStartError });
  t.regex(error.message, /JournalCorruptError/);
  t.regex(error.message, /record seq \d+/);
  const misspelt = new ServiceProcess({
    ...coordinator.spec,
    args: [...coordinator.spec.args, '--verify-journal', 'yes'],
  });
  t.teardown(() => misspelt.kill());
  const refused = await t.throwsAsync(misspelt.start(), { instanceOf: ServiceStartError });
  t.regex(refused.message, /ConfigError.*--verify-journal must be on or off/);
  await coordinator.start();
  const outcome = await ts.client.makePayment(paymentFor('order-1001'));
  t.is(outcome.outcome, 'committed');
});

async function inFlight(
  ts: TestStack,
): Promise<{ txId: string; phase: string; waitingFor: ParticipantName[]; lastError?: string }[]> {
  const reply = await ts.client.requestRaw('continuum.coordinator.in-flight', new Uint8Array());
  return JSON.parse(new TextDecoder().decode(reply)) as never;
}
