/**
 * The customer service's business rules: what PREPARE, COMMIT and ABORT mean for a customer's
 * standing and spending limit.
 *
 * Theory of operation. PREPARE checks that the customer exists, is active, pays in the payment's
 * currency and stays within the spending limit counting what is already spent and every purchase
 * still in doubt; then it records the purchase as 'pending' and adds it to the customer's running
 * `pending_minor`. Pending purchases count against the limit, so two payments in doubt together can
 * never overspend it. COMMIT completes the purchase, issues its receipt and moves the amount from
 * pending to spent. ABORT cancels it, which frees its share of the limit. Every check runs before the only write, so a NO vote leaves the
 * tables untouched (the caller stores the vote in the same local transaction).
 */
import { assert } from '../../common/assert.ts';
import { receiptFor, type Payment } from '../../common/protocol.ts';
import { statementCache, type SqliteDatabase } from '../../common/sqlite.ts';
import { voteNo, type LocalVote, type ResourceManager } from '../resource-manager.ts';

export type CustomerStatus = 'active' | 'blocked';
export type PurchaseStatus = 'pending' | 'completed' | 'cancelled';

interface CustomerRow {
  readonly status: CustomerStatus;
  readonly currency: string;
  readonly spending_limit_minor: number;
  readonly spent_minor: number;
  readonly pending_minor: number;
}

interface PurchaseRow {
  readonly customer_id: string;
  readonly amount_minor: number;
  readonly status: PurchaseStatus;
}

/** Statements prepared once per connection: prepare, commit and abort run thousands per second. */
function prepareStatements(db: SqliteDatabase) {
  return {
    customer: db.prepare<[string], CustomerRow>(
      `SELECT status, currency, spending_limit_minor, spent_minor, pending_minor
       FROM customers WHERE customer_id = ?`,
    ),
    purchase: db.prepare<[string], PurchaseRow>(
      'SELECT customer_id, amount_minor, status FROM purchases WHERE tx_id = ?',
    ),
    insertPurchase: db.prepare<[string, string, string, string, number, string, number, number]>(
      `INSERT INTO purchases (tx_id, customer_id, vendor_id, order_id, amount_minor, currency,
         status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
    ),
    complete: db.prepare<[string, number, string]>(
      `UPDATE purchases SET status = 'completed', receipt = ?, updated_at = ?
       WHERE tx_id = ? AND status = 'pending'`,
    ),
    cancel: db.prepare<[number, string]>(
      `UPDATE purchases SET status = 'cancelled', updated_at = ?
       WHERE tx_id = ? AND status = 'pending'`,
    ),
    addPending: db.prepare<[number, string]>(
      'UPDATE customers SET pending_minor = pending_minor + ? WHERE customer_id = ?',
    ),
    pendingToSpent: db.prepare<[number, number, string]>(
      `UPDATE customers SET pending_minor = pending_minor - ?, spent_minor = spent_minor + ?
       WHERE customer_id = ?`,
    ),
    dropPending: db.prepare<[number, string]>(
      'UPDATE customers SET pending_minor = pending_minor - ? WHERE customer_id = ?',
    ),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

const statementsFor = statementCache(prepareStatements);

/** Why the customer may not make this payment, or null when they may. */
function refusal(statements: Statements, payment: Payment): string | null {
  const customer = statements.customer.get(payment.payer);
  if (customer === undefined) return 'unknown customer';
  if (customer.status === 'blocked') return 'customer blocked';
  if (customer.currency !== payment.currency) {
    return `currency mismatch: customer pays in ${customer.currency}`;
  }
  const pendingMinor = customer.pending_minor;
  const limitMinor = customer.spending_limit_minor;
  if (customer.spent_minor + pendingMinor + payment.amountMinor > limitMinor) {
    return (
      `over spending limit: spent ${customer.spent_minor}, pending ${pendingMinor}, ` +
      `amount ${payment.amountMinor}, limit ${limitMinor}`
    );
  }
  return null;
}

function prepare(db: SqliteDatabase, txId: string, payment: Payment, now: number): LocalVote {
  const statements = statementsFor(db);
  const reason = refusal(statements, payment);
  if (reason !== null) return voteNo(reason);
  statements.insertPurchase.run(
    txId,
    payment.payer,
    payment.payee,
    payment.orderId,
    payment.amountMinor,
    payment.currency,
    now,
    now,
  );
  const added = statements.addPending.run(payment.amountMinor, payment.payer);
  assert(added.changes === 1, `customer prepare ${txId}: customer missing`);
  return { vote: 'yes' };
}

function commit(db: SqliteDatabase, txId: string, now: number): void {
  const statements = statementsFor(db);
  const purchase = statements.purchase.get(txId);
  assert(purchase !== undefined, `customer commit ${txId}: no purchase`);
  assert(purchase.status === 'pending', `customer commit ${txId}: purchase is ${purchase.status}`);
  statements.complete.run(receiptFor(txId), now, txId);
  const { amount_minor: amount, customer_id: customerId } = purchase;
  const spent = statements.pendingToSpent.run(amount, amount, customerId);
  assert(spent.changes === 1, `customer commit ${txId}: customer missing`);
}

function abort(db: SqliteDatabase, txId: string, now: number): void {
  const statements = statementsFor(db);
  const purchase = statements.purchase.get(txId);
  assert(purchase !== undefined, `customer abort ${txId}: no purchase`);
  assert(purchase.status !== 'completed', `customer abort ${txId}: purchase already completed`);
  if (statements.cancel.run(now, txId).changes === 0) return;
  const dropped = statements.dropPending.run(purchase.amount_minor, purchase.customer_id);
  assert(dropped.changes === 1, `customer abort ${txId}: customer missing`);
}

export const customer: ResourceManager = { name: 'customer', prepare, commit, abort };
