/**
 * The business rules of the bank, the vendor and the customer service, against real SQLite files
 * opened with the project's migrations and seeded with the demo world. Each rule runs inside a
 * local transaction, as the participant shell runs it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import Database from 'better-sqlite3';
import type { ExecutionContext } from 'ava';
import { AssertionError } from '../../common/assert.ts';
import type { Decision, Payment } from '../../common/protocol.ts';
import { openDatabase } from '../../common/sqlite.ts';
import type { SqliteDatabase } from '../../common/sqlite.ts';
import { bank } from '../../participants/bank/rules.ts';
import { receiptFor } from '../../common/protocol.ts';
import { customer } from '../../participants/customer/rules.ts';
import type { LocalVote, ResourceManager } from '../../participants/resource-manager.ts';
import {
  addStock,
  demoWorld,
  makeBulkOrders,
  orderTotalMinor,
  paymentFor,
  seedDemoData,
  seedLoadParties,
} from '../../participants/seed.ts';
import type { DemoOrder, ParticipantDatabases } from '../../participants/seed.ts';
import { vendor } from '../../participants/vendor/rules.ts';

/** The reasons the protocol accepts on the wire (common/protocol.ts keeps its copy private). */
const reasonPattern = /^[a-z0-9][a-z0-9 ._:,()'<>=/-]{0,199}$/i;
const seededAt = 1_000;
const now = 2_000;

let txCount = 0;
/** A fresh transaction id in the ULID alphabet, unique within this test file. */
function newTxId(): string {
  txCount += 1;
  return `01JTEST${String(txCount).padStart(19, '0')}`;
}

function openWorld(t: ExecutionContext): ParticipantDatabases {
  const directory = mkdtempSync(join(tmpdir(), 'continuum-rules-'));
  const databases = {
    bank: openDatabase(join(directory, 'bank.sqlite'), 'bank'),
    vendor: openDatabase(join(directory, 'vendor.sqlite'), 'vendor'),
    customer: openDatabase(join(directory, 'customer.sqlite'), 'customer'),
  };
  seedDemoData(databases, seededAt);
  t.teardown(() => {
    for (const db of Object.values(databases)) db.close();
    rmSync(directory, { recursive: true, force: true });
  });
  return databases;
}

function prepare(rm: ResourceManager, db: SqliteDatabase, txId: string, payment: Payment) {
  return db.transaction((): LocalVote => rm.prepare(db, txId, payment, now))();
}

function decide(rm: ResourceManager, db: SqliteDatabase, txId: string, decision: Decision) {
  db.transaction(() => {
    if (decision === 'commit') rm.commit(db, txId, now);
    else rm.abort(db, txId, now);
  })();
}

function rows(db: SqliteDatabase, sql: string): unknown[] {
  return db.prepare(sql).all();
}

/** Every business row of a participant, to show that something changed nothing. */
function businessRows(db: SqliteDatabase, tables: readonly string[]): Record<string, unknown[]> {
  return Object.fromEntries(tables.map((table) => [table, rows(db, `SELECT * FROM ${table}`)]));
}

const tablesOf = {
  bank: ['accounts', 'holds'],
  vendor: ['stock', 'orders', 'order_lines', 'reservations'],
  customer: ['customers', 'purchases'],
} as const;

interface AccountBalance {
  readonly balance_minor: number;
  readonly held_minor: number;
}

function accountOf(db: SqliteDatabase, ownerId: string, currency = 'EUR'): AccountBalance {
  const row = db
    .prepare<[string, string], AccountBalance>(
      'SELECT balance_minor, held_minor FROM accounts WHERE owner_id = ? AND currency = ?',
    )
    .get(ownerId, currency);
  if (row === undefined) throw new Error(`no ${currency} account for ${ownerId}`);
  return row;
}

function balanceSums(db: SqliteDatabase): unknown[] {
  return rows(db, 'SELECT currency, sum(balance_minor) AS total FROM accounts GROUP BY currency');
}

function one(db: SqliteDatabase, sql: string, ...params: unknown[]): unknown {
  const row = db.prepare(sql).get(...params);
  if (row === undefined) throw new Error(`no row for ${sql}`);
  return row;
}

function sortByKey(values: readonly unknown[]): string[] {
  return values.map((value) => JSON.stringify(value)).sort();
}

/**
 * The SQLite error code a statement fails with. better-sqlite3's SqliteError is not a native error
 * to ava's eyes, so t.throws cannot take it directly.
 */
function failureCode(db: SqliteDatabase, sql: string): string {
  try {
    db.exec(sql);
  } catch (error) {
    if (error instanceof Database.SqliteError) return error.code;
    throw error;
  }
  return 'no error';
}

function assertNo(t: ExecutionContext, vote: LocalVote, reason: string): void {
  t.deepEqual(vote, { vote: 'no', reason });
  if (vote.vote === 'no') t.regex(vote.reason, reasonPattern);
}

const payment1001 = paymentFor('order-1001');

// ---------------------------------------------------------------------------------------------
// Bank

const bankRefusals: readonly (readonly [string, Payment, string])[] = [
  ['payer without any account', { ...payment1001, payer: 'nobody' }, 'unknown payer account'],
  [
    'payer without an account in the currency',
    { ...payment1001, payer: 'dave' },
    'currency mismatch: payer has no EUR account',
  ],
  ['frozen payer account', paymentFor('order-1007'), 'payer account frozen'],
  ['payee without any account', { ...payment1001, payee: 'nobody' }, 'unknown payee account'],
  ['payee without an account in the currency', paymentFor('order-1006'), 'unknown payee account'],
  ['payer paying itself', { ...payment1001, payee: 'alice' }, 'payer and payee are the same'],
  ['insufficient funds', paymentFor('order-1002'), 'insufficient funds: available 2000 < 4500'],
];

for (const [title, payment, reason] of bankRefusals) {
  test(`bank votes NO and writes nothing: ${title}`, (t) => {
    const { bank: db } = openWorld(t);
    const before = businessRows(db, tablesOf.bank);
    assertNo(t, prepare(bank, db, newTxId(), payment), reason);
    t.deepEqual(businessRows(db, tablesOf.bank), before);
  });
}

test('bank: held money is not available to the next payment', (t) => {
  const { bank: db } = openWorld(t);
  t.deepEqual(prepare(bank, db, newTxId(), payment1001), { vote: 'yes' });
  t.deepEqual(accountOf(db, 'alice'), { balance_minor: 50_000, held_minor: 2_500 });
  const tooMuch = { ...payment1001, amountMinor: 48_000 };
  assertNo(t, prepare(bank, db, newTxId(), tooMuch), 'insufficient funds: available 47500 < 48000');
  t.deepEqual(prepare(bank, db, newTxId(), { ...tooMuch, amountMinor: 47_500 }), { vote: 'yes' });
});

test('bank: commit moves exactly the amount from payer to payee and conserves money', (t) => {
  const { bank: db } = openWorld(t);
  const sumsBefore = balanceSums(db);
  const txId = newTxId();
  t.deepEqual(prepare(bank, db, txId, payment1001), { vote: 'yes' });
  t.deepEqual(balanceSums(db), sumsBefore);
  decide(bank, db, txId, 'commit');
  t.deepEqual(accountOf(db, 'alice'), { balance_minor: 47_500, held_minor: 0 });
  t.deepEqual(accountOf(db, 'acme'), { balance_minor: 2_500, held_minor: 0 });
  t.deepEqual(balanceSums(db), sumsBefore);
  t.like(one(db, 'SELECT * FROM holds WHERE tx_id = ?', txId), {
    payer_account: 'acct-alice-eur',
    payee_account: 'acct-acme-eur',
    amount_minor: 2_500,
    currency: 'EUR',
    state: 'captured',
    created_at: now,
  });
});

test('bank: abort puts every account back and leaves no hold open', (t) => {
  const { bank: db } = openWorld(t);
  const accountsBefore = rows(db, 'SELECT * FROM accounts');
  const txId = newTxId();
  t.deepEqual(prepare(bank, db, txId, payment1001), { vote: 'yes' });
  decide(bank, db, txId, 'abort');
  t.deepEqual(rows(db, 'SELECT * FROM accounts'), accountsBefore);
  t.like(one(db, 'SELECT state FROM holds WHERE tx_id = ?', txId), { state: 'released' });
  t.deepEqual(rows(db, "SELECT * FROM holds WHERE state = 'held'"), []);
});

test('bank: commit and abort assert that the hold exists in the expected state', (t) => {
  const { bank: db } = openWorld(t);
  t.throws(
    () => {
      decide(bank, db, newTxId(), 'commit');
    },
    { instanceOf: AssertionError },
  );
  t.throws(
    () => {
      decide(bank, db, newTxId(), 'abort');
    },
    { instanceOf: AssertionError },
  );
  const aborted = newTxId();
  prepare(bank, db, aborted, payment1001);
  decide(bank, db, aborted, 'abort');
  t.throws(
    () => {
      decide(bank, db, aborted, 'commit');
    },
    { instanceOf: AssertionError },
  );
  const committed = newTxId();
  prepare(bank, db, committed, payment1001);
  decide(bank, db, committed, 'commit');
  t.throws(
    () => {
      decide(bank, db, committed, 'abort');
    },
    { instanceOf: AssertionError },
  );
});

const bankInvalidStates: readonly (readonly [string, string])[] = [
  ['negative balance', "UPDATE accounts SET balance_minor = -1 WHERE owner_id = 'acme'"],
  ['negative hold', "UPDATE accounts SET held_minor = -1 WHERE owner_id = 'alice'"],
  ['hold over balance', "UPDATE accounts SET held_minor = 50001 WHERE owner_id = 'alice'"],
  ['frozen not 0 or 1', "UPDATE accounts SET frozen = 2 WHERE owner_id = 'alice'"],
  ['lower-case currency', "UPDATE accounts SET currency = 'eur' WHERE owner_id = 'alice'"],
  ['second account per currency', "UPDATE accounts SET owner_id = 'bob' WHERE owner_id = 'alice'"],
  ['balance as text', "UPDATE accounts SET balance_minor = 'lots' WHERE owner_id = 'alice'"],
  [
    'hold in another currency than its accounts',
    `INSERT INTO holds VALUES ('tx', 'acct-alice-eur', 'acct-acme-eur', 1, 'USD', 'held', 0, 0)`,
  ],
  [
    'hold in an unknown state',
    `INSERT INTO holds VALUES ('tx', 'acct-alice-eur', 'acct-acme-eur', 1, 'EUR', 'gone', 0, 0)`,
  ],
  [
    'hold of nothing',
    `INSERT INTO holds VALUES ('tx', 'acct-alice-eur', 'acct-acme-eur', 0, 'EUR', 'held', 0, 0)`,
  ],
];

for (const [title, sql] of bankInvalidStates) {
  test(`bank schema rejects an invalid state: ${title}`, (t) => {
    const { bank: db } = openWorld(t);
    t.regex(failureCode(db, sql), /^SQLITE_CONSTRAINT_/);
  });
}

// ---------------------------------------------------------------------------------------------
// Vendor

const vendorRefusals: readonly (readonly [string, Payment, string])[] = [
  ['unknown order', { ...payment1001, orderId: 'order-9999' }, 'unknown order'],
  ['payee is not the vendor', { ...payment1001, payee: 'globex' }, 'payee is not the order vendor'],
  [
    'payer is not the customer',
    { ...payment1001, payer: 'bob' },
    'payer is not the order customer',
  ],
  ['other currency', { ...payment1001, currency: 'USD' }, 'currency mismatch: order is in EUR'],
  [
    'other quantity',
    { ...payment1001, lines: [{ sku: 'book', quantity: 1, unitPriceMinor: 2500 }] },
    'order lines mismatch',
  ],
  [
    'other unit price',
    { ...payment1001, lines: [{ sku: 'book', quantity: 2, unitPriceMinor: 1000 }] },
    'order lines mismatch',
  ],
  [
    'an extra line',
    {
      ...payment1001,
      lines: [...payment1001.lines, { sku: 'pen', quantity: 1, unitPriceMinor: 0 }],
    },
    'order lines mismatch',
  ],
  [
    'the line split in two',
    {
      ...payment1001,
      lines: [
        { sku: 'book', quantity: 1, unitPriceMinor: 1250 },
        { sku: 'book', quantity: 1, unitPriceMinor: 1250 },
      ],
    },
    'order lines mismatch',
  ],
  ['other amount', { ...payment1001, amountMinor: 2_400 }, 'amount mismatch: order total 2500'],
  ['out of stock', paymentFor('order-1003'), 'insufficient stock: desk'],
];

for (const [title, payment, reason] of vendorRefusals) {
  test(`vendor votes NO and writes nothing: ${title}`, (t) => {
    const { vendor: db } = openWorld(t);
    const before = businessRows(db, tablesOf.vendor);
    assertNo(t, prepare(vendor, db, newTxId(), payment), reason);
    t.deepEqual(businessRows(db, tablesOf.vendor), before);
  });
}

test('vendor: an item it never stocked is out of stock', (t) => {
  const { vendor: db } = openWorld(t);
  const [payment] = makeBulkOrders(db, {
    customerId: 'alice',
    vendorId: 'acme',
    currency: 'EUR',
    sku: 'ghost',
    unitPriceMinor: 100,
    count: 1,
    prefix: 'ghost-order',
  });
  if (payment === undefined) throw new Error('makeBulkOrders returned no payment');
  assertNo(t, prepare(vendor, db, newTxId(), payment), 'insufficient stock: ghost');
  addStock(db, 'acme', 'ghost', 1);
  t.deepEqual(prepare(vendor, db, newTxId(), payment), { vote: 'yes' });
});

test('vendor: a line short of stock reserves no other line', (t) => {
  const { vendor: db } = openWorld(t);
  const [allLamps] = makeBulkOrders(db, {
    customerId: 'bob',
    vendorId: 'acme',
    currency: 'EUR',
    sku: 'lamp',
    unitPriceMinor: 4_500,
    quantity: 5,
    count: 1,
    prefix: 'lamps',
  });
  if (allLamps === undefined) throw new Error('makeBulkOrders returned no payment');
  t.deepEqual(prepare(vendor, db, newTxId(), allLamps), { vote: 'yes' });
  const before = businessRows(db, tablesOf.vendor);
  assertNo(t, prepare(vendor, db, newTxId(), paymentFor('order-1010')), 'insufficient stock: lamp');
  t.deepEqual(businessRows(db, tablesOf.vendor), before);
});

test('vendor: lines match in any order', (t) => {
  const { vendor: db } = openWorld(t);
  const payment = paymentFor('order-1010');
  const reversed = { ...payment, lines: [...payment.lines].reverse() };
  t.deepEqual(prepare(vendor, db, newTxId(), reversed), { vote: 'yes' });
});

test('vendor: an order held by one transaction is refused to another', (t) => {
  const { vendor: db } = openWorld(t);
  t.deepEqual(prepare(vendor, db, newTxId(), payment1001), { vote: 'yes' });
  const reason = 'order reserved by another payment';
  assertNo(t, prepare(vendor, db, newTxId(), payment1001), reason);
});

test('vendor: commit sells the reserved units and marks the order paid', (t) => {
  const { vendor: db } = openWorld(t);
  const txId = newTxId();
  t.deepEqual(prepare(vendor, db, txId, payment1001), { vote: 'yes' });
  t.like(one(db, "SELECT * FROM stock WHERE sku = 'book'"), { on_hand: 100, reserved: 2 });
  decide(vendor, db, txId, 'commit');
  t.like(one(db, "SELECT * FROM stock WHERE sku = 'book'"), { on_hand: 98, reserved: 0 });
  t.deepEqual(rows(db, 'SELECT * FROM reservations'), [
    { tx_id: txId, sku: 'book', vendor_id: 'acme', quantity: 2, state: 'consumed' },
  ]);
  t.like(one(db, "SELECT * FROM orders WHERE order_id = 'order-1001'"), {
    status: 'paid',
    tx_id: txId,
    updated_at: now,
  });
  assertNo(t, prepare(vendor, db, newTxId(), payment1001), 'order already paid');
});

test('vendor: abort returns the units and reopens the order for another payment', (t) => {
  const { vendor: db } = openWorld(t);
  const stockBefore = rows(db, 'SELECT * FROM stock');
  const txId = newTxId();
  t.deepEqual(prepare(vendor, db, txId, paymentFor('order-1010')), { vote: 'yes' });
  decide(vendor, db, txId, 'abort');
  t.deepEqual(rows(db, 'SELECT * FROM stock'), stockBefore);
  t.deepEqual(rows(db, "SELECT * FROM reservations WHERE state <> 'released'"), []);
  t.like(one(db, "SELECT * FROM orders WHERE order_id = 'order-1010'"), {
    status: 'open',
    tx_id: null,
  });
  t.deepEqual(prepare(vendor, db, newTxId(), paymentFor('order-1010')), { vote: 'yes' });
});

test('vendor: commit and abort assert that the reservation exists in the expected state', (t) => {
  const { vendor: db } = openWorld(t);
  t.throws(
    () => {
      decide(vendor, db, newTxId(), 'commit');
    },
    { instanceOf: AssertionError },
  );
  t.throws(
    () => {
      decide(vendor, db, newTxId(), 'abort');
    },
    { instanceOf: AssertionError },
  );
  const committed = newTxId();
  prepare(vendor, db, committed, payment1001);
  decide(vendor, db, committed, 'commit');
  t.throws(
    () => {
      decide(vendor, db, committed, 'abort');
    },
    { instanceOf: AssertionError },
  );
  t.throws(
    () => {
      decide(vendor, db, committed, 'commit');
    },
    { instanceOf: AssertionError },
  );
});

const vendorInvalidStates: readonly (readonly [string, string])[] = [
  ['negative stock', "UPDATE stock SET on_hand = -1 WHERE sku = 'desk'"],
  ['negative reservation', "UPDATE stock SET reserved = -1 WHERE sku = 'book'"],
  ['more reserved than on hand', "UPDATE stock SET reserved = 6 WHERE sku = 'lamp'"],
  ['unknown order status', "UPDATE orders SET status = 'lost' WHERE order_id = 'order-1001'"],
  ['open order held by a tx', "UPDATE orders SET tx_id = 'tx' WHERE order_id = 'order-1001'"],
  ['paid order without a tx', "UPDATE orders SET status = 'paid' WHERE order_id = 'order-1001'"],
  ['empty order line', "UPDATE order_lines SET quantity = 0 WHERE order_id = 'order-1001'"],
  ['line of an unknown order', "INSERT INTO order_lines VALUES ('order-0', 'book', 1, 1)"],
  [
    'reservation of unknown stock',
    "INSERT INTO reservations VALUES ('tx', 'x', 'acme', 1, 'reserved')",
  ],
  ['reservation state', "INSERT INTO reservations VALUES ('tx', 'book', 'acme', 1, 'lost')"],
];

for (const [title, sql] of vendorInvalidStates) {
  test(`vendor schema rejects an invalid state: ${title}`, (t) => {
    const { vendor: db } = openWorld(t);
    t.regex(failureCode(db, sql), /^SQLITE_CONSTRAINT_/);
  });
}

// ---------------------------------------------------------------------------------------------
// Customer

const customerRefusals: readonly (readonly [string, Payment, string])[] = [
  ['unknown customer', { ...payment1001, payer: 'nobody' }, 'unknown customer'],
  ['blocked customer', paymentFor('order-1004'), 'customer blocked'],
  [
    'other currency',
    { ...payment1001, currency: 'USD' },
    'currency mismatch: customer pays in EUR',
  ],
  [
    'over the spending limit',
    paymentFor('order-1008'),
    'over spending limit: spent 0, pending 0, amount 4500, limit 1000',
  ],
];

for (const [title, payment, reason] of customerRefusals) {
  test(`customer votes NO and writes nothing: ${title}`, (t) => {
    const { customer: db } = openWorld(t);
    const before = businessRows(db, tablesOf.customer);
    assertNo(t, prepare(customer, db, newTxId(), payment), reason);
    t.deepEqual(businessRows(db, tablesOf.customer), before);
  });
}

test('customer: pending and spent amounts both count against the limit', (t) => {
  const { customer: db } = openWorld(t);
  const lamp = newTxId();
  t.deepEqual(prepare(customer, db, lamp, paymentFor('order-1002')), { vote: 'yes' });
  t.deepEqual(prepare(customer, db, newTxId(), paymentFor('order-1009')), { vote: 'yes' });
  const more = { ...paymentFor('order-1009'), amountMinor: 1_000 };
  const pendingReason = 'over spending limit: spent 0, pending 4800, amount 1000, limit 5000';
  assertNo(t, prepare(customer, db, newTxId(), more), pendingReason);
  decide(customer, db, lamp, 'commit');
  const spentReason = 'over spending limit: spent 4500, pending 300, amount 1000, limit 5000';
  assertNo(t, prepare(customer, db, newTxId(), more), spentReason);
  const exact = { ...more, amountMinor: 200 };
  t.deepEqual(prepare(customer, db, newTxId(), exact), { vote: 'yes' });
});

test('customer: commit completes the purchase with a receipt and counts it as spent', (t) => {
  const { customer: db } = openWorld(t);
  const txId = newTxId();
  t.deepEqual(prepare(customer, db, txId, payment1001), { vote: 'yes' });
  const alice = "SELECT * FROM customers WHERE customer_id = 'alice'";
  t.like(one(db, alice), { pending_minor: 2_500, spent_minor: 0 }, 'prepare adds to pending');
  t.like(one(db, 'SELECT * FROM purchases WHERE tx_id = ?', txId), {
    customer_id: 'alice',
    vendor_id: 'acme',
    order_id: 'order-1001',
    amount_minor: 2_500,
    currency: 'EUR',
    status: 'pending',
    receipt: null,
  });
  decide(customer, db, txId, 'commit');
  t.like(one(db, 'SELECT * FROM purchases WHERE tx_id = ?', txId), {
    status: 'completed',
    receipt: receiptFor(txId),
    updated_at: now,
  });
  t.is(receiptFor(txId), `rcpt-${txId}`);
  t.like(one(db, alice), { pending_minor: 0, spent_minor: 2_500 }, 'commit moves it to spent');
});

test('customer: abort cancels the purchase and frees its share of the limit', (t) => {
  const { customer: db } = openWorld(t);
  const customersBefore = rows(db, 'SELECT * FROM customers');
  const txId = newTxId();
  t.deepEqual(prepare(customer, db, txId, paymentFor('order-1002')), { vote: 'yes' });
  decide(customer, db, txId, 'abort');
  t.deepEqual(rows(db, 'SELECT * FROM customers'), customersBefore);
  t.deepEqual(rows(db, "SELECT * FROM purchases WHERE status = 'pending'"), []);
  t.like(one(db, 'SELECT * FROM purchases WHERE tx_id = ?', txId), { status: 'cancelled' });
  t.deepEqual(prepare(customer, db, newTxId(), paymentFor('order-1002')), { vote: 'yes' });
});

test('customer: commit and abort assert that the purchase exists in the expected state', (t) => {
  const { customer: db } = openWorld(t);
  t.throws(
    () => {
      decide(customer, db, newTxId(), 'commit');
    },
    { instanceOf: AssertionError },
  );
  t.throws(
    () => {
      decide(customer, db, newTxId(), 'abort');
    },
    { instanceOf: AssertionError },
  );
  const committed = newTxId();
  prepare(customer, db, committed, payment1001);
  decide(customer, db, committed, 'commit');
  t.throws(
    () => {
      decide(customer, db, committed, 'abort');
    },
    { instanceOf: AssertionError },
  );
  t.throws(
    () => {
      decide(customer, db, committed, 'commit');
    },
    { instanceOf: AssertionError },
  );
});

const customerInvalidStates: readonly (readonly [string, string])[] = [
  ['negative spent', "UPDATE customers SET spent_minor = -1 WHERE customer_id = 'alice'"],
  ['negative limit', "UPDATE customers SET spending_limit_minor = -1 WHERE customer_id = 'bob'"],
  ['unknown status', "UPDATE customers SET status = 'gone' WHERE customer_id = 'bob'"],
  [
    'completed without a receipt',
    `INSERT INTO purchases VALUES ('tx', 'alice', 'acme', 'o', 1, 'EUR', 'completed', NULL, 0, 0)`,
  ],
  [
    'pending with a receipt',
    `INSERT INTO purchases VALUES ('tx', 'alice', 'acme', 'o', 1, 'EUR', 'pending', 'r', 0, 0)`,
  ],
  [
    'purchase of an unknown customer',
    `INSERT INTO purchases VALUES ('tx', 'nobody', 'acme', 'o', 1, 'EUR', 'pending', NULL, 0, 0)`,
  ],
];

for (const [title, sql] of customerInvalidStates) {
  test(`customer schema rejects an invalid state: ${title}`, (t) => {
    const { customer: db } = openWorld(t);
    t.regex(failureCode(db, sql), /^SQLITE_CONSTRAINT_/);
  });
}

// ---------------------------------------------------------------------------------------------
// The demo world as a whole

const participants = [
  ['bank', bank],
  ['vendor', vendor],
  ['customer', customer],
] as const;

interface Attempt {
  readonly order: DemoOrder;
  readonly txId: string;
  readonly votes: readonly {
    readonly name: keyof ParticipantDatabases;
    readonly vote: LocalVote;
  }[];
}

/** Prepares one demo order at all three participants and checks the votes it expects. */
function attempt(t: ExecutionContext, databases: ParticipantDatabases, order: DemoOrder): Attempt {
  const txId = newTxId();
  const votes = participants.map(([name, rm]) => {
    return { name, vote: prepare(rm, databases[name], txId, paymentFor(order.orderId)) };
  });
  const refusals = votes.flatMap(({ name, vote }) => (vote.vote === 'no' ? [{ name, vote }] : []));
  if (order.expected.outcome === 'committed') {
    t.deepEqual(refusals, [], order.orderId);
  } else {
    t.is(refusals.length, 1, order.orderId);
    t.is(refusals[0]?.name, order.expected.abortedBy, order.orderId);
    const reason = refusals[0]?.vote.vote === 'no' ? refusals[0].vote.reason : '';
    t.true(reason.startsWith(order.expected.reasonPrefix), `${order.orderId}: ${reason}`);
  }
  return { order, txId, votes };
}

/** Sends the decision the coordinator would: commit if all voted YES, else abort to the YES. */
function settle(databases: ParticipantDatabases, { txId, votes }: Attempt): void {
  const decision = votes.every(({ vote }) => vote.vote === 'yes') ? 'commit' : 'abort';
  for (const [name, rm] of participants) {
    const vote = votes.find((entry) => entry.name === name)?.vote;
    if (vote?.vote === 'yes') decide(rm, databases[name], txId, decision);
  }
}

test('demo world: every order gets its stated outcome when all are in doubt at once', (t) => {
  const databases = openWorld(t);
  const sumsBefore = balanceSums(databases.bank);
  const attempts = demoWorld.orders.map((order) => attempt(t, databases, order));
  for (const entry of attempts) settle(databases, entry);
  assertSettled(t, databases, sumsBefore);
});

for (const direction of ['forward', 'backward'] as const) {
  test(`demo world: every order gets its stated outcome paid one by one, ${direction}`, (t) => {
    const databases = openWorld(t);
    const sumsBefore = balanceSums(databases.bank);
    const orders = [...demoWorld.orders];
    if (direction === 'backward') orders.reverse();
    for (const order of orders) settle(databases, attempt(t, databases, order));
    assertSettled(t, databases, sumsBefore);
  });
}

/** After every decision: money conserved, nothing held, and each change matches what was paid. */
function assertSettled(
  t: ExecutionContext,
  databases: ParticipantDatabases,
  sumsBefore: unknown[],
): void {
  const paid = demoWorld.orders.filter((order) => order.expected.outcome === 'committed');
  const totalTo = (vendorId: string) =>
    paid
      .filter((order) => order.vendorId === vendorId)
      .reduce((sum, order) => sum + orderTotalMinor(order.lines), 0);
  t.deepEqual(balanceSums(databases.bank), sumsBefore);
  t.deepEqual(rows(databases.bank, 'SELECT * FROM accounts WHERE held_minor <> 0'), []);
  t.is(accountOf(databases.bank, 'acme').balance_minor, totalTo('acme'));
  t.is(accountOf(databases.bank, 'globex').balance_minor, totalTo('globex'));
  t.deepEqual(rows(databases.vendor, 'SELECT * FROM stock WHERE reserved <> 0'), []);
  const onHand = demoWorld.stock.map(({ vendorId, sku, onHand: seeded }) => {
    const sold = paid
      .filter((order) => order.vendorId === vendorId)
      .flatMap((order) => order.lines.filter((line) => line.sku === sku))
      .reduce((sum, line) => sum + line.quantity, 0);
    return { vendor_id: vendorId, sku, on_hand: seeded - sold };
  });
  const onHandSql = 'SELECT vendor_id, sku, on_hand FROM stock';
  t.deepEqual(sortByKey(rows(databases.vendor, onHandSql)), sortByKey(onHand));
  t.deepEqual(rows(databases.vendor, "SELECT * FROM reservations WHERE state = 'reserved'"), []);
  t.deepEqual(rows(databases.customer, "SELECT * FROM purchases WHERE status = 'pending'"), []);
  const aliceSpent = paid
    .filter((order) => order.customerId === 'alice')
    .reduce((sum, order) => sum + orderTotalMinor(order.lines), 0);
  t.like(one(databases.customer, "SELECT * FROM customers WHERE customer_id = 'alice'"), {
    spent_minor: aliceSpent,
  });
}

test('demo world: seeding again changes nothing, not even rows that payments changed', (t) => {
  const databases = openWorld(t);
  const txId = newTxId();
  prepare(bank, databases.bank, txId, payment1001);
  decide(bank, databases.bank, txId, 'commit');
  const snapshot = () =>
    participants.map(([name]) => businessRows(databases[name], tablesOf[name]));
  const before = snapshot();
  seedDemoData(databases, seededAt + 1);
  t.deepEqual(snapshot(), before);
  t.is(before[0]?.['accounts']?.length, demoWorld.accounts.length);
  t.is(before[1]?.['orders']?.length, demoWorld.orders.length);
});

test('demo world: paymentFor builds the exact payment of a seeded order', (t) => {
  t.deepEqual(paymentFor('order-1001'), {
    payer: 'alice',
    payee: 'acme',
    amountMinor: 2_500,
    currency: 'EUR',
    orderId: 'order-1001',
    lines: [{ sku: 'book', quantity: 2, unitPriceMinor: 1250 }],
  });
  t.throws(() => paymentFor('order-9999'));
});

test('bulk orders: load parties can pay every bulk order through all three participants', (t) => {
  const databases = openWorld(t);
  const count = 50;
  seedLoadParties(databases, {
    customerId: 'load-1',
    vendorId: 'load-shop',
    currency: 'EUR',
    balanceMinor: count * 100,
  });
  addStock(databases.vendor, 'load-shop', 'widget', count);
  const options = {
    customerId: 'load-1',
    vendorId: 'load-shop',
    currency: 'EUR',
    sku: 'widget',
    unitPriceMinor: 100,
    count,
    prefix: 'load',
  };
  const payments = makeBulkOrders(databases.vendor, options);
  t.deepEqual(makeBulkOrders(databases.vendor, options), payments);
  t.is(new Set(payments.map((payment) => payment.orderId)).size, count);
  for (const payment of payments) {
    const txId = newTxId();
    for (const [name, rm] of participants) {
      t.deepEqual(prepare(rm, databases[name], txId, payment), { vote: 'yes' });
      decide(rm, databases[name], txId, 'commit');
    }
  }
  t.deepEqual(accountOf(databases.bank, 'load-1'), { balance_minor: 0, held_minor: 0 });
  t.like(one(databases.vendor, "SELECT * FROM stock WHERE sku = 'widget'"), { on_hand: 0 });
});
