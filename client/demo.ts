/**
 * `npm run demo`: starts the whole system in a temp directory (its own nats-server, coordinator,
 * bank, vendor and customer, each a process with its own SQLite file), makes a few payments, and
 * prints each outcome and what the three parties' databases say afterwards.
 */
import Database from 'better-sqlite3';
import { ContinuumClient } from './index.ts';
import { databaseFiles, startStack, type Stack } from '../ops/stack.ts';
import { NatsServerMissingError } from '../ops/nats-server.ts';
import { demoWorld, paymentFor, seedDemoData } from '../participants/seed.ts';
import { checkInvariants, moneyBaseline, waitUntilSettled } from '../ops/checker.ts';

const scenario = [
  { orderId: 'order-1001', story: 'alice buys 2 books from acme' },
  { orderId: 'order-1005', story: 'alice buys a chair from globex' },
  { orderId: 'order-1002', story: 'bob buys a lamp he cannot afford' },
  { orderId: 'order-1003', story: 'alice orders a desk that is out of stock' },
  { orderId: 'order-1004', story: 'carol, whose customer record is blocked, buys a book' },
] as const;

/** Formats minor units with the currency's own number of decimals (2 for EUR, 0 for JPY). */
function money(minor: number, currency: string): string {
  const format = new Intl.NumberFormat('en', { style: 'currency', currency });
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
  return `${(minor / 10 ** digits).toFixed(digits)} ${currency}`;
}

interface AccountRow {
  owner_id: string;
  currency: string;
  balance_minor: number;
  held_minor: number;
}
interface OrderRow {
  order_id: string;
  status: string;
  tx_id: string | null;
}
interface PurchaseRow {
  customer_id: string;
  order_id: string;
  amount_minor: number;
  currency: string;
  status: string;
  receipt: string | null;
}

function rows<T>(file: string, sql: string): T[] {
  const db = new Database(file, { readonly: true });
  try {
    db.pragma('busy_timeout = 5000');
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

function printParties(stack: Stack): void {
  console.log('\nBank accounts (balance, held):');
  const accounts = rows<AccountRow>(
    stack.dbFile('bank'),
    'SELECT * FROM accounts ORDER BY owner_id',
  );
  for (const row of accounts) {
    const balance = money(row.balance_minor, row.currency).padStart(14);
    console.log(
      `  ${row.owner_id.padEnd(8)} ${balance}  held ${money(row.held_minor, row.currency)}`,
    );
  }
  console.log('\nVendor orders touched by the demo:');
  const ids = scenario.map((step) => `'${step.orderId}'`).join(',');
  const orderSql = `SELECT * FROM orders WHERE order_id IN (${ids}) ORDER BY order_id`;
  for (const row of rows<OrderRow>(stack.dbFile('vendor'), orderSql)) {
    console.log(`  ${row.order_id}  ${row.status.padEnd(8)} ${row.tx_id ?? ''}`);
  }
  console.log('\nCustomer purchases:');
  const purchaseSql = 'SELECT * FROM purchases ORDER BY created_at';
  for (const row of rows<PurchaseRow>(stack.dbFile('customer'), purchaseSql)) {
    const amount = money(row.amount_minor, row.currency).padStart(12);
    const who = `${row.customer_id.padEnd(6)} ${row.order_id}`;
    console.log(`  ${who}  ${amount}  ${row.status.padEnd(9)} ${row.receipt ?? ''}`);
  }
}

async function main(): Promise<void> {
  console.log('Starting nats-server, coordinator, bank, vendor and customer ...');
  const started = Date.now();
  const stack = await startStack({ seed: seedDemoData });
  console.log(`  ready in ${Date.now() - started} ms; data in ${stack.root}`);
  const client = await ContinuumClient.connect({ servers: stack.natsUrls, clientId: 'demo' });
  const baseline = moneyBaseline(stack.dbFile('bank'));
  try {
    console.log(`\nPayments (${scenario.length}):`);
    for (const [index, step] of scenario.entries()) {
      const payment = paymentFor(step.orderId);
      const began = Date.now();
      const outcome = await client.makePayment(payment);
      const ms = Date.now() - began;
      const expected = demoWorld.orders.find((order) => order.orderId === step.orderId)?.expected;
      const detail =
        outcome.outcome === 'committed'
          ? `receipt ${outcome.receipt ?? ''}`
          : `refused by ${outcome.abortedBy ?? '?'}: ${outcome.reason ?? ''}`;
      console.log(`  ${index + 1}. ${step.story}: ${money(payment.amountMinor, payment.currency)}`);
      console.log(
        `     ${outcome.outcome.toUpperCase()} in ${ms} ms, tx ${outcome.txId}, ${detail}`,
      );
      if (expected && expected.outcome !== outcome.outcome) {
        throw new Error(`demo expected ${expected.outcome} for ${step.orderId}`);
      }
    }
    const files = databaseFiles(stack);
    const settled = await waitUntilSettled(files, 10_000);
    printParties(stack);
    const violations = checkInvariants(files, { baseline, settled });
    console.log(
      violations.length === 0
        ? '\nChecked: every payment all-or-nothing in all three databases, money conserved, no hold left.'
        : `\nINVARIANT VIOLATIONS:\n${violations.join('\n')}`,
    );
    if (violations.length > 0) process.exitCode = 1;
  } finally {
    await client.close();
    await stack.stop({ remove: true });
  }
}

main().catch((error: unknown) => {
  if (error instanceof NatsServerMissingError) console.error(error.message);
  else console.error(error);
  process.exit(1);
});
