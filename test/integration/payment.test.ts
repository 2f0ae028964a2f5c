/**
 * Make-payment end to end on the real stack: real nats-server, real processes, real SQLite.
 * Every test ends by checking every invariant across the four databases.
 */
import test from 'ava';
import { paymentFor, makeBulkOrders, seedDemoData, addStock } from '../../participants/seed.ts';
import { startTestStack } from '../helpers/harness.ts';

const balance = (ts: Awaited<ReturnType<typeof startTestStack>>, owner: string): number => {
  const rows = ts.query<{ balance_minor: number }>(
    'bank',
    "SELECT balance_minor FROM accounts WHERE owner_id = ? AND currency = 'EUR'",
    owner,
  );
  return rows[0]?.balance_minor ?? Number.NaN;
};

test('a committed payment changes all three databases', async (t) => {
  const ts = await startTestStack(t);
  const before = { alice: balance(ts, 'alice'), acme: balance(ts, 'acme') };
  const outcome = await ts.client.makePayment(paymentFor('order-1001'));
  t.is(outcome.outcome, 'committed');
  t.false(outcome.replay);
  t.is(outcome.receipt, `rcpt-${outcome.txId}`);
  await ts.assertConsistent(t);
  t.is(balance(ts, 'alice'), before.alice - 2500);
  t.is(balance(ts, 'acme'), before.acme + 2500);
  const [order] = ts.query<{ status: string; tx_id: string }>(
    'vendor',
    "SELECT status, tx_id FROM orders WHERE order_id = 'order-1001'",
  );
  t.deepEqual(order, { status: 'paid', tx_id: outcome.txId });
  const [stock] = ts.query<{ on_hand: number; reserved: number }>(
    'vendor',
    "SELECT on_hand, reserved FROM stock WHERE vendor_id = 'acme' AND sku = 'book'",
  );
  t.deepEqual(stock, { on_hand: 98, reserved: 0 });
  const [purchase] = ts.query<{ status: string; receipt: string }>(
    'customer',
    'SELECT status, receipt FROM purchases WHERE tx_id = ?',
    outcome.txId,
  );
  t.deepEqual(purchase, { status: 'completed', receipt: outcome.receipt });
  const [journal] = ts.query<{ state: string }>(
    'coordinator',
    'SELECT state FROM payments WHERE tx_id = ?',
    outcome.txId,
  );
  t.is(journal?.state, 'committed');
});

const refusals = [
  { order: 'order-1002', by: 'bank', reason: /^insufficient funds/ },
  { order: 'order-1003', by: 'vendor', reason: /^insufficient stock: desk/ },
  { order: 'order-1004', by: 'customer', reason: /^customer blocked/ },
] as const;

for (const refusal of refusals) {
  test(`a NO vote from the ${refusal.by} aborts everywhere and releases every hold`, async (t) => {
    const ts = await startTestStack(t);
    const before = ts.query('bank', 'SELECT * FROM accounts ORDER BY account_id');
    const stockBefore = ts.query('vendor', 'SELECT * FROM stock ORDER BY vendor_id, sku');
    const outcome = await ts.client.makePayment(paymentFor(refusal.order));
    t.is(outcome.outcome, 'aborted');
    t.is(outcome.abortedBy, refusal.by);
    t.regex(outcome.reason ?? '', refusal.reason);
    await ts.assertConsistent(t);
    t.deepEqual(ts.query('bank', 'SELECT * FROM accounts ORDER BY account_id'), before);
    t.deepEqual(ts.query('vendor', 'SELECT * FROM stock ORDER BY vendor_id, sku'), stockBefore);
    const completed = ts.query('customer', "SELECT * FROM purchases WHERE status <> 'cancelled'");
    t.deepEqual(completed, []);
    const [order] = ts.query<{ status: string }>(
      'vendor',
      'SELECT status FROM orders WHERE order_id = ?',
      refusal.order,
    );
    t.is(order?.status, 'open');
  });
}

test('a participant that does not answer makes the payment abort at its deadline', async (t) => {
  const ts = await startTestStack(t);
  await ts.stack.services.vendor.pause();
  const started = Date.now();
  const outcome = await ts.client.makePayment(paymentFor('order-1001'), {
    paymentTimeoutMs: 1_000,
  });
  const elapsedMs = Date.now() - started;
  t.is(outcome.outcome, 'aborted');
  t.is(outcome.abortedBy, 'coordinator');
  t.regex(outcome.reason ?? '', /deadline passed without a vote from vendor/);
  t.true(elapsedMs >= 1_000, `the abort waits for the deadline (${elapsedMs} ms)`);
  ts.stack.services.vendor.resume();
  await ts.assertConsistent(t);
  t.is(balance(ts, 'alice'), 50_000);
});

test('concurrent payments from one account never overdraw it', async (t) => {
  const orderCount = 12;
  const ts = await startTestStack(t, {
    seed: (dbs) => {
      seedDemoData(dbs);
      addStock(dbs.vendor, 'acme', 'pen', 100);
    },
  });
  // bob has 2,000 EUR and a 5,000 limit: at 300 each, exactly six payments fit his balance.
  const { Database } = { Database: (await import('better-sqlite3')).default };
  const vendorDb = new Database(ts.files.vendor);
  vendorDb.pragma('journal_mode = WAL');
  vendorDb.pragma('synchronous = FULL');
  const payments = makeBulkOrders(vendorDb, {
    customerId: 'bob',
    vendorId: 'acme',
    currency: 'EUR',
    sku: 'pen',
    unitPriceMinor: 300,
    count: orderCount,
    prefix: 'bob-pen',
  });
  vendorDb.close();
  const outcomes = await Promise.all(payments.map((payment) => ts.client.makePayment(payment)));
  const committed = outcomes.filter((outcome) => outcome.outcome === 'committed');
  t.is(committed.length, 6);
  for (const outcome of outcomes.filter((o) => o.outcome === 'aborted')) {
    t.is(outcome.abortedBy, 'bank');
    t.regex(outcome.reason ?? '', /^insufficient funds/);
  }
  await ts.assertConsistent(t);
  t.is(balance(ts, 'bob'), 2_000 - 6 * 300);
});
