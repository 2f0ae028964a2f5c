/**
 * A participant's database is its party's business database too: the vendor's order system
 * writes orders into it while the vendor service runs (`bench/orders.ts` does, and so would an
 * operator's import). Another process holding its write lock must make the participant wait, or,
 * past the busy timeout, refuse what it cannot write and carry on; never exit (docs/decisions.md,
 * "A participant's database locked by another process").
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { paymentFor } from '../../participants/seed.ts';
import { fastFlags, startTestStack, type TestStack } from '../helpers/harness.ts';
import { until } from '../helpers/wait.ts';
import { holdWriteLock } from '../helpers/write-lock-holder.ts';

/** The events of a service's log, by name. */
function loggedEvents(logFile: string): string[] {
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => (JSON.parse(line) as { event: string }).event);
}

/** A stack whose vendor has recorded the coordinator's term: its next writes are a batch's. */
async function startPaidStack(t: ExecutionContext, flags: readonly string[] = []) {
  const ts = await startTestStack(t, {
    flags: { ...fastFlags, vendor: [...(fastFlags.vendor ?? []), ...flags] },
  });
  const first = await ts.client.makePayment(paymentFor('order-1001'));
  t.is(first.outcome, 'committed');
  return ts;
}

test("a participant waits for another writer's lock, then prepares and commits", async (t) => {
  const ts = await startPaidStack(t);
  const { vendor } = ts.stack.services;
  // Written under the lock, as the vendor's order system writes its orders.
  const holder = holdWriteLock(
    ts.stack.dbFile('vendor'),
    { locked: ["UPDATE orders SET updated_at = updated_at WHERE order_id = 'order-1002'"] },
    1_500,
  );
  await holder.locked;
  const startedAt = Date.now();
  const outcome = await ts.client.makePayment(paymentFor('order-1005'));
  t.is(outcome.outcome, 'committed');
  t.true(Date.now() - startedAt >= 1_000, 'the payment waited for the lock');
  t.is(await holder.exited, 0);
  t.true(vendor.isRunning(), `the vendor is still running (${vendor.exitStatus ?? ''})`);
  t.false(loggedEvents(vendor.spec.logFile).includes('local-write-failed'));
  await ts.assertConsistent(t);
});

/**
 * Pays for `orderId` while another process holds the vendor's write lock for 7 s, past the busy
 * timeout: the payment commits once the lock is gone, the vendor never exits, and the coordinator
 * was refused with `unavailable` on the way.
 */
async function payThroughLongLock(t: ExecutionContext, ts: TestStack, orderId: string) {
  const { vendor, coordinator } = ts.stack.services;
  const holder = holdWriteLock(ts.stack.dbFile('vendor'), { locked: [] }, 7_000);
  await holder.locked;
  const options = { paymentTimeoutMs: 30_000, deadlineMs: 40_000 };
  const outcome = await ts.client.makePayment(paymentFor(orderId), options);
  t.is(outcome.outcome, 'committed');
  t.is(await holder.exited, 0);
  t.true(vendor.isRunning(), `the vendor is still running (${vendor.exitStatus ?? ''})`);
  const coordinatorLog = readFileSync(coordinator.spec.logFile, 'utf8');
  t.true(coordinatorLog.includes('vendor refused: unavailable'), 'the PREPARE was refused');
}

test('past the busy timeout a participant refuses what it cannot write, carries on, and pays once the lock is gone', async (t) => {
  const ts = await startPaidStack(t);
  await payThroughLongLock(t, ts, 'order-1005');
  t.true(loggedEvents(ts.stack.services.vendor.spec.logFile).includes('local-write-failed'));
  // And the vendor goes on as before.
  const next = await ts.client.makePayment(paymentFor('order-1009'));
  t.is(next.outcome, 'committed');
  await ts.assertConsistent(t);
});

test("past the busy timeout a new term's first message is refused, and accepted once the lock is gone", async (t) => {
  const ts = await startTestStack(t);
  // Before the first payment: the vendor must record the coordinator's term before its PREPARE.
  await payThroughLongLock(t, ts, 'order-1001');
  t.deepEqual(
    loggedEvents(ts.stack.services.vendor.spec.logFile).filter((event) => event.includes('term')),
    ['new-term-unrecorded', 'new-coordinator-term'],
  );
  await ts.assertConsistent(t);
});

test('the barrier purge waits for the lock, and past the busy timeout leaves its turn to the next', async (t) => {
  // With a retention of 1 s the vendor purges every 100 ms: each purge meets the lock.
  const ts = await startPaidStack(t, ['--barrier-retention-ms', '1000']);
  const { vendor } = ts.stack.services;
  const holder = holdWriteLock(ts.stack.dbFile('vendor'), { locked: [] }, 6_500);
  await holder.locked;
  t.is(await holder.exited, 0);
  t.true(vendor.isRunning(), `the vendor is still running (${vendor.exitStatus ?? ''})`);
  t.true(loggedEvents(vendor.spec.logFile).includes('barrier-purge-deferred'));
  const barrierRows = (): number =>
    ts.query<{ n: number }>('vendor', 'SELECT count(*) AS n FROM barrier')[0]?.n ?? 0;
  t.true(await until(() => barrierRows() === 0, 5_000), 'a later purge forgot the payment');
  const later = await ts.client.makePayment(paymentFor('order-1005'));
  t.is(later.outcome, 'committed');
  await ts.assertConsistent(t);
});
