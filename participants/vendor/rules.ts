/**
 * The vendor's business rules: what PREPARE, COMMIT and ABORT mean for orders and stock.
 *
 * Theory of operation. An order is paid by exactly one transaction. PREPARE checks that the
 * payment is the order's payment (same vendor, customer, currency, lines and total), that no other
 * transaction holds or has paid it, and that every item is available; then it reserves the units
 * (`stock.reserved`, one `reservations` row per item) and marks the order 'reserved' by this
 * transaction. COMMIT turns the reservation into a sale: on_hand and reserved drop together and
 * the order is 'paid'. ABORT gives the units back and reopens the order, so another payment may
 * try again. Every check runs before the first write, so a NO vote leaves the tables untouched
 * (the caller stores the vote in the same local transaction).
 */
import { assert } from '../../common/assert.ts';
import type { OrderLine, Payment } from '../../common/protocol.ts';
import { statementCache, type SqliteDatabase } from '../../common/sqlite.ts';
import { voteNo, type LocalVote, type ResourceManager } from '../resource-manager.ts';

export type OrderStatus = 'open' | 'reserved' | 'paid';
export type ReservationState = 'reserved' | 'consumed' | 'released';

interface OrderRow {
  readonly order_id: string;
  readonly vendor_id: string;
  readonly customer_id: string;
  readonly currency: string;
  readonly total_minor: number;
  readonly status: OrderStatus;
}

interface LineRow {
  readonly sku: string;
  readonly quantity: number;
  readonly unit_price_minor: number;
}

interface ReservationRow {
  readonly sku: string;
  readonly vendor_id: string;
  readonly quantity: number;
  readonly state: ReservationState;
}

const orderColumns = 'order_id, vendor_id, customer_id, currency, total_minor, status';

/** Statements prepared once per connection: prepare, commit and abort run thousands per second. */
function prepareStatements(db: SqliteDatabase) {
  return {
    order: db.prepare<[string], OrderRow>(`SELECT ${orderColumns} FROM orders WHERE order_id = ?`),
    orderOfTx: db.prepare<[string], OrderRow>(`SELECT ${orderColumns} FROM orders WHERE tx_id = ?`),
    lines: db.prepare<[string], LineRow>(
      'SELECT sku, quantity, unit_price_minor FROM order_lines WHERE order_id = ?',
    ),
    available: db.prepare<[string, string], { readonly available: number }>(
      'SELECT on_hand - reserved AS available FROM stock WHERE vendor_id = ? AND sku = ?',
    ),
    reserveStock: db.prepare<[number, string, string]>(
      'UPDATE stock SET reserved = reserved + ? WHERE vendor_id = ? AND sku = ?',
    ),
    releaseStock: db.prepare<[number, string, string]>(
      'UPDATE stock SET reserved = reserved - ? WHERE vendor_id = ? AND sku = ?',
    ),
    consumeStock: db.prepare<[number, number, string, string]>(
      `UPDATE stock SET on_hand = on_hand - ?, reserved = reserved - ?
       WHERE vendor_id = ? AND sku = ?`,
    ),
    insertReservation: db.prepare<[string, string, string, number]>(
      `INSERT INTO reservations (tx_id, sku, vendor_id, quantity, state)
       VALUES (?, ?, ?, ?, 'reserved')`,
    ),
    reservations: db.prepare<[string], ReservationRow>(
      'SELECT sku, vendor_id, quantity, state FROM reservations WHERE tx_id = ?',
    ),
    setReservationState: db.prepare<[ReservationState, string, string]>(
      'UPDATE reservations SET state = ? WHERE tx_id = ? AND sku = ?',
    ),
    reserveOrder: db.prepare<[string, number, string]>(
      `UPDATE orders SET status = 'reserved', tx_id = ?, updated_at = ?
       WHERE order_id = ? AND status = 'open'`,
    ),
    payOrder: db.prepare<[number, string]>(
      `UPDATE orders SET status = 'paid', updated_at = ? WHERE tx_id = ? AND status = 'reserved'`,
    ),
    reopenOrder: db.prepare<[number, string]>(
      `UPDATE orders SET status = 'open', tx_id = NULL, updated_at = ?
       WHERE tx_id = ? AND status = 'reserved'`,
    ),
  };
}

const statementsFor = statementCache(prepareStatements);

function lineKey(sku: string, quantity: number, unitPriceMinor: number): string {
  return `${sku}*${quantity}@${unitPriceMinor}`;
}

/** Compares lines as multisets, so order does not matter and a repeated line is a difference. */
function sameLines(stored: readonly LineRow[], paid: readonly OrderLine[]): boolean {
  if (stored.length !== paid.length) return false;
  const storedKeys = stored.map((l) => lineKey(l.sku, l.quantity, l.unit_price_minor)).sort();
  const paidKeys = paid.map((l) => lineKey(l.sku, l.quantity, l.unitPriceMinor)).sort();
  return storedKeys.every((key, index) => key === paidKeys[index]);
}

/** Why this payment is not the payment of this order, or null when it is. */
function orderMismatch(
  order: OrderRow,
  lines: readonly LineRow[],
  payment: Payment,
): string | null {
  if (order.vendor_id !== payment.payee) return 'payee is not the order vendor';
  if (order.customer_id !== payment.payer) return 'payer is not the order customer';
  if (order.currency !== payment.currency) {
    return `currency mismatch: order is in ${order.currency}`;
  }
  if (!sameLines(lines, payment.lines)) return 'order lines mismatch';
  if (order.total_minor !== payment.amountMinor) {
    return `amount mismatch: order total ${order.total_minor}`;
  }
  if (order.status === 'paid') return 'order already paid';
  if (order.status === 'reserved') return 'order reserved by another payment';
  return null;
}

function prepare(db: SqliteDatabase, txId: string, payment: Payment, now: number): LocalVote {
  const statements = statementsFor(db);
  const order = statements.order.get(payment.orderId);
  if (order === undefined) return voteNo('unknown order');
  const lines = statements.lines.all(order.order_id);
  const mismatch = orderMismatch(order, lines, payment);
  if (mismatch !== null) return voteNo(mismatch);
  for (const line of lines) {
    // An item the vendor never stocked is simply not available.
    const available = statements.available.get(order.vendor_id, line.sku)?.available ?? 0;
    if (available < line.quantity) return voteNo(`insufficient stock: ${line.sku}`);
  }
  for (const line of lines) {
    const reserved = statements.reserveStock.run(line.quantity, order.vendor_id, line.sku);
    assert(reserved.changes === 1, `vendor prepare ${txId}: stock row ${line.sku} vanished`);
    statements.insertReservation.run(txId, line.sku, order.vendor_id, line.quantity);
  }
  const held = statements.reserveOrder.run(txId, now, order.order_id);
  assert(held.changes === 1, `vendor prepare ${txId}: order ${order.order_id} not open`);
  return { vote: 'yes' };
}

function commit(db: SqliteDatabase, txId: string, now: number): void {
  const statements = statementsFor(db);
  const order = statements.orderOfTx.get(txId);
  assert(order !== undefined, `vendor commit ${txId}: no order held by this transaction`);
  assert(order.status === 'reserved', `vendor commit ${txId}: order is ${order.status}`);
  const reservations = statements.reservations.all(txId);
  assert(reservations.length > 0, `vendor commit ${txId}: no reservations`);
  for (const reservation of reservations) {
    const { sku, vendor_id: vendorId, quantity, state } = reservation;
    assert(state === 'reserved', `vendor commit ${txId}: reservation ${sku} is ${state}`);
    const consumed = statements.consumeStock.run(quantity, quantity, vendorId, sku);
    assert(consumed.changes === 1, `vendor commit ${txId}: stock row ${sku} missing`);
    statements.setReservationState.run('consumed', txId, sku);
  }
  statements.payOrder.run(now, txId);
}

function abort(db: SqliteDatabase, txId: string, now: number): void {
  const statements = statementsFor(db);
  const reservations = statements.reservations.all(txId);
  assert(reservations.length > 0, `vendor abort ${txId}: no reservations`);
  for (const { sku, vendor_id: vendorId, quantity, state } of reservations) {
    assert(state !== 'consumed', `vendor abort ${txId}: reservation ${sku} already consumed`);
    if (state !== 'reserved') continue;
    const released = statements.releaseStock.run(quantity, vendorId, sku);
    assert(released.changes === 1, `vendor abort ${txId}: stock row ${sku} missing`);
    statements.setReservationState.run('released', txId, sku);
  }
  const order = statements.orderOfTx.get(txId);
  assert(order?.status !== 'paid', `vendor abort ${txId}: order already paid`);
  // Reopen the order only while this transaction still holds it; otherwise it is not ours.
  statements.reopenOrder.run(now, txId);
}

export const vendor: ResourceManager = { name: 'vendor', prepare, commit, abort };
