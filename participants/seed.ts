/**
 * A small demo world for the three participants, and helpers that add to it for load tests.
 *
 * The world is described once, as data (`demoWorld`), and both the seeding and the tests and demo
 * read that description, so they cannot drift apart. Each order states the outcome it should get
 * when it is paid once against a freshly seeded world, in any order and concurrently with the
 * others: the failing orders are chosen so that exactly one participant votes NO, which makes
 * `abortedBy` deterministic. Seeding uses INSERT OR IGNORE, so running it again changes nothing,
 * not even rows that payments have changed since.
 */
import { assert } from '../common/assert.ts';
import type { OrderLine, ParticipantName, Payment } from '../common/protocol.ts';
import { identifierPattern } from '../common/protocol.ts';
import type { SqliteDatabase } from '../common/sqlite.ts';
import type { CustomerStatus } from './customer/rules.ts';

export interface ParticipantDatabases {
  readonly bank: SqliteDatabase;
  readonly vendor: SqliteDatabase;
  readonly customer: SqliteDatabase;
}

export interface DemoCustomer {
  readonly customerId: string;
  readonly name: string;
  readonly status: CustomerStatus;
  readonly currency: string;
  readonly spendingLimitMinor: number;
}

export interface DemoAccount {
  readonly accountId: string;
  readonly ownerId: string;
  readonly currency: string;
  readonly balanceMinor: number;
  readonly frozen: boolean;
}

export interface DemoStock {
  readonly vendorId: string;
  readonly sku: string;
  readonly onHand: number;
}

/** What paying an order once should give; `reasonPrefix` because amounts may vary by run. */
export type DemoExpectation =
  | { readonly outcome: 'committed' }
  | {
      readonly outcome: 'aborted';
      readonly abortedBy: ParticipantName;
      readonly reasonPrefix: string;
    };

/** An open order as the vendor stores it. */
export interface OrderSpec {
  readonly orderId: string;
  readonly customerId: string;
  readonly vendorId: string;
  readonly currency: string;
  readonly lines: readonly OrderLine[];
}

export interface DemoOrder extends OrderSpec {
  readonly expected: DemoExpectation;
}

export interface DemoWorld {
  readonly customers: readonly DemoCustomer[];
  readonly accounts: readonly DemoAccount[];
  readonly stock: readonly DemoStock[];
  readonly orders: readonly DemoOrder[];
}

export function accountIdFor(ownerId: string, currency: string): string {
  return `acct-${ownerId}-${currency.toLowerCase()}`;
}

function account(
  ownerId: string,
  currency: string,
  balanceMinor: number,
  frozen = false,
): DemoAccount {
  return { accountId: accountIdFor(ownerId, currency), ownerId, currency, balanceMinor, frozen };
}

function customer(
  customerId: string,
  currency: string,
  spendingLimitMinor: number,
  status: CustomerStatus = 'active',
): DemoCustomer {
  const name = customerId.charAt(0).toUpperCase() + customerId.slice(1);
  return { customerId, name, status, currency, spendingLimitMinor };
}

function line(sku: string, quantity: number, unitPriceMinor: number): OrderLine {
  return { sku, quantity, unitPriceMinor };
}

const committed: DemoExpectation = { outcome: 'committed' };

function abortedBy(participant: ParticipantName, reasonPrefix: string): DemoExpectation {
  return { outcome: 'aborted', abortedBy: participant, reasonPrefix };
}

/** Orders alice→acme of one book each, so the demo and tests have many distinct payments. */
const aliceBookOrders: readonly DemoOrder[] = [1011, 1012, 1013, 1014, 1015].map((number) => ({
  orderId: `order-${number}`,
  customerId: 'alice',
  vendorId: 'acme',
  currency: 'EUR',
  lines: [line('book', 1, 1250)],
  expected: committed,
}));

function order(
  orderId: string,
  customerId: string,
  vendorId: string,
  lines: readonly OrderLine[],
  expected: DemoExpectation,
  currency = 'EUR',
): DemoOrder {
  return { orderId, customerId, vendorId, currency, lines, expected };
}

export const demoWorld: DemoWorld = {
  customers: [
    customer('alice', 'EUR', 100_000),
    customer('bob', 'EUR', 5_000),
    customer('carol', 'EUR', 100_000, 'blocked'),
    customer('dave', 'USD', 20_000),
    customer('erin', 'EUR', 50_000),
    // Frank has the money but not the limit: his failing order is refused by the customer alone.
    customer('frank', 'EUR', 1_000),
  ],
  accounts: [
    account('alice', 'EUR', 50_000),
    account('bob', 'EUR', 2_000),
    account('carol', 'EUR', 10_000),
    account('dave', 'USD', 10_000),
    account('erin', 'EUR', 10_000, true),
    account('frank', 'EUR', 10_000),
    account('acme', 'EUR', 0),
    account('globex', 'EUR', 0),
  ],
  stock: [
    { vendorId: 'acme', sku: 'book', onHand: 100 },
    { vendorId: 'acme', sku: 'lamp', onHand: 5 },
    { vendorId: 'acme', sku: 'desk', onHand: 0 },
    { vendorId: 'acme', sku: 'pen', onHand: 1_000 },
    { vendorId: 'globex', sku: 'chair', onHand: 10 },
  ],
  orders: [
    order('order-1001', 'alice', 'acme', [line('book', 2, 1250)], committed),
    order(
      'order-1002',
      'bob',
      'acme',
      [line('lamp', 1, 4500)],
      abortedBy('bank', 'insufficient funds'),
    ),
    order(
      'order-1003',
      'alice',
      'acme',
      [line('desk', 1, 9000)],
      abortedBy('vendor', 'insufficient stock: desk'),
    ),
    order(
      'order-1004',
      'carol',
      'acme',
      [line('book', 1, 1250)],
      abortedBy('customer', 'customer blocked'),
    ),
    order('order-1005', 'alice', 'globex', [line('chair', 1, 3000)], committed),
    // Dave pays in USD, and acme has no USD account: only the bank can refuse.
    order(
      'order-1006',
      'dave',
      'acme',
      [line('book', 1, 1250)],
      abortedBy('bank', 'unknown payee account'),
      'USD',
    ),
    order(
      'order-1007',
      'erin',
      'acme',
      [line('book', 1, 1250)],
      abortedBy('bank', 'payer account frozen'),
    ),
    order(
      'order-1008',
      'frank',
      'acme',
      [line('lamp', 1, 4500)],
      abortedBy('customer', 'over spending limit'),
    ),
    // Cheap enough that bob's order-1002 still fits his limit, so only the bank refuses that one.
    order('order-1009', 'bob', 'acme', [line('pen', 1, 300)], committed),
    order('order-1010', 'alice', 'acme', [line('book', 3, 1250), line('lamp', 1, 4500)], committed),
    ...aliceBookOrders,
  ],
};

export function orderTotalMinor(lines: readonly OrderLine[]): number {
  return lines.reduce(
    (total, { quantity, unitPriceMinor }) => total + quantity * unitPriceMinor,
    0,
  );
}

/** The payment that pays an order exactly: payer, payee, amount and lines all match it. */
export function paymentOf(order: OrderSpec): Payment {
  return {
    payer: order.customerId,
    payee: order.vendorId,
    amountMinor: orderTotalMinor(order.lines),
    currency: order.currency,
    orderId: order.orderId,
    lines: order.lines,
  };
}

/** The exact payment for a seeded order: what a client sends to pay it. */
export function paymentFor(orderId: string): Payment {
  const found = demoWorld.orders.find((candidate) => candidate.orderId === orderId);
  if (found === undefined) throw new Error(`${orderId} is not an order of the demo world`);
  return paymentOf(found);
}

/** Inserts the demo world; rows that already exist are left exactly as they are. */
export function seedDemoData(databases: ParticipantDatabases, now: number = Date.now()): void {
  const { bank, vendor, customer: customerDb } = databases;
  customerDb.transaction(() => {
    const insert = customerInserter(customerDb);
    for (const entry of demoWorld.customers) insert(entry);
  })();
  bank.transaction(() => {
    const insert = accountInserter(bank);
    for (const entry of demoWorld.accounts) insert(entry);
  })();
  vendor.transaction(() => {
    const insertStock = vendor.prepare<[string, string, number]>(
      'INSERT OR IGNORE INTO stock (vendor_id, sku, on_hand, reserved) VALUES (?, ?, ?, 0)',
    );
    for (const entry of demoWorld.stock) insertStock.run(entry.vendorId, entry.sku, entry.onHand);
    const insertOrder = orderInserter(vendor, now);
    for (const entry of demoWorld.orders) insertOrder(entry);
  })();
}

function customerInserter(db: SqliteDatabase): (entry: DemoCustomer) => void {
  const statement = db.prepare<[string, string, CustomerStatus, string, number]>(
    `INSERT OR IGNORE INTO customers
       (customer_id, name, status, currency, spending_limit_minor, spent_minor)
     VALUES (?, ?, ?, ?, ?, 0)`,
  );
  return (entry) => {
    statement.run(
      entry.customerId,
      entry.name,
      entry.status,
      entry.currency,
      entry.spendingLimitMinor,
    );
  };
}

function accountInserter(db: SqliteDatabase): (entry: DemoAccount) => void {
  const statement = db.prepare<[string, string, string, number, number]>(
    `INSERT OR IGNORE INTO accounts
       (account_id, owner_id, currency, balance_minor, held_minor, frozen)
     VALUES (?, ?, ?, ?, 0, ?)`,
  );
  return (entry) => {
    const frozen = entry.frozen ? 1 : 0;
    statement.run(entry.accountId, entry.ownerId, entry.currency, entry.balanceMinor, frozen);
  };
}

/** Inserts open orders with their lines; an order whose id exists is left as it is. */
function orderInserter(db: SqliteDatabase, now: number): (entry: OrderSpec) => void {
  const insertOrder = db.prepare<[string, string, string, string, number, number, number]>(
    `INSERT OR IGNORE INTO orders (order_id, vendor_id, customer_id, currency, total_minor,
       status, tx_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'open', NULL, ?, ?)`,
  );
  const insertLine = db.prepare<[string, string, number, number]>(
    'INSERT INTO order_lines (order_id, sku, quantity, unit_price_minor) VALUES (?, ?, ?, ?)',
  );
  return (entry) => {
    const { orderId, vendorId, customerId, currency, lines } = entry;
    const total = orderTotalMinor(lines);
    const inserted = insertOrder.run(orderId, vendorId, customerId, currency, total, now, now);
    if (inserted.changes === 0) return;
    for (const { sku, quantity, unitPriceMinor } of lines) {
      insertLine.run(orderId, sku, quantity, unitPriceMinor);
    }
  };
}

/** Adds units to a vendor's stock of an item, creating the item when the vendor has none. */
export function addStock(
  vendorDb: SqliteDatabase,
  vendorId: string,
  sku: string,
  units: number,
): void {
  assert(Number.isSafeInteger(units) && units >= 0, `addStock: ${units} is not a unit count`);
  vendorDb
    .prepare<[string, string, number]>(
      `INSERT INTO stock (vendor_id, sku, on_hand, reserved) VALUES (?, ?, ?, 0)
       ON CONFLICT (vendor_id, sku) DO UPDATE SET on_hand = on_hand + excluded.on_hand`,
    )
    .run(vendorId, sku, units);
}

export interface LoadPartiesOptions {
  readonly customerId: string;
  readonly vendorId: string;
  readonly currency: string;
  /** The customer's opening balance; the spending limit is set to the same amount. */
  readonly balanceMinor: number;
}

/**
 * Creates a customer who can pay `balanceMinor` in total (active, limit = balance, a funded bank
 * account) and a bank account for the vendor, so a load test does not drain the demo customers.
 * Like the demo seed it inserts only what is missing.
 */
export function seedLoadParties(
  databases: Pick<ParticipantDatabases, 'bank' | 'customer'>,
  options: LoadPartiesOptions,
): void {
  const { customerId, vendorId, currency, balanceMinor } = options;
  customerInserter(databases.customer)(customer(customerId, currency, balanceMinor));
  databases.bank.transaction(() => {
    const insert = accountInserter(databases.bank);
    insert(account(customerId, currency, balanceMinor));
    insert(account(vendorId, currency, 0));
  })();
}

/** A bulk insert runs in one local transaction; bound it so it cannot lock the vendor for long. */
export const bulkOrderCountMax = 1_000_000;

export interface BulkOrderOptions {
  readonly customerId: string;
  readonly vendorId: string;
  readonly currency: string;
  readonly sku: string;
  readonly unitPriceMinor: number;
  readonly count: number;
  /** Order ids are `<prefix>-<index>`, index from 0. */
  readonly prefix: string;
  /** Units per order; 1 unless given. */
  readonly quantity?: number;
  readonly now?: number;
}

/**
 * Inserts `count` open single-line orders and returns the payment for each, in index order. The
 * stock is not touched: call addStock for enough units. Orders that already exist are kept as
 * they are, so calling it again with the same prefix returns the same payments.
 */
export function makeBulkOrders(vendorDb: SqliteDatabase, options: BulkOrderOptions): Payment[] {
  const { count, prefix, quantity = 1, now = Date.now() } = options;
  assert(Number.isSafeInteger(count) && count >= 0, `makeBulkOrders: bad count ${count}`);
  assert(count <= bulkOrderCountMax, `makeBulkOrders: count ${count} over ${bulkOrderCountMax}`);
  const orders = Array.from({ length: count }, (_, index): OrderSpec => {
    const orderId = `${prefix}-${index}`;
    assert(identifierPattern.test(orderId), `makeBulkOrders: ${orderId} is not an identifier`);
    const { customerId, vendorId, currency, sku, unitPriceMinor } = options;
    return {
      orderId,
      customerId,
      vendorId,
      currency,
      lines: [line(sku, quantity, unitPriceMinor)],
    };
  });
  vendorDb.transaction(() => {
    const insert = orderInserter(vendorDb, now);
    for (const entry of orders) insert(entry);
  })();
  return orders.map(paymentOf);
}
