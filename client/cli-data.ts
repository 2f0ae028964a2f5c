/**
 * `pay balances` and `pay inspect`: read a stack's SQLite files, read-only, and show what the
 * parties hold. Nothing here talks to NATS, so both work on the data of a stopped stack, and on a
 * running one (WAL lets readers in beside the services' writers).
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { transactionIdPattern, type ParticipantName } from '../common/protocol.ts';
import { UsageError } from './cli-args.ts';
import { formatClock, formatMoney, formatTable } from './cli-format.ts';

export type DatabaseName = 'coordinator' | ParticipantName;
export type DataFiles = Readonly<Record<DatabaseName, string>>;

/**
 * The SQLite files under a data directory: `<dir>/<name>/<name>.sqlite` as the stack lays them
 * out, or `<dir>/<name>.sqlite` as the README's hand-started services do.
 */
export function dataFiles(
  dir: string,
  needed: readonly DatabaseName[],
  command: string,
): DataFiles {
  const files: Record<string, string> = {};
  for (const name of ['coordinator', 'bank', 'vendor', 'customer'] as const) {
    const nested = join(dir, name, `${name}.sqlite`);
    const flat = join(dir, `${name}.sqlite`);
    files[name] = existsSync(nested) ? nested : flat;
    if (needed.includes(name) && !existsSync(files[name])) {
      throw new UsageError(
        `--data: ${dir} holds no ${name} database (looked for ${nested} and ${flat})`,
        command,
      );
    }
  }
  return files as DataFiles;
}

type Db = Database.Database;

function withDatabase<T>(file: string, use: (db: Db) => T): T {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma('query_only = ON');
    db.pragma('busy_timeout = 5000');
    return use(db);
  } finally {
    db.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Balances.

export interface AccountView {
  readonly accountId: string;
  readonly ownerId: string;
  readonly currency: string;
  readonly balanceMinor: number;
  readonly heldMinor: number;
  readonly availableMinor: number;
  readonly frozen: boolean;
}

export interface OrderView {
  readonly orderId: string;
  readonly vendorId: string;
  readonly customerId: string;
  readonly currency: string;
  readonly totalMinor: number;
  readonly status: string;
  readonly txId: string | null;
}

export interface PurchaseView {
  readonly txId: string;
  readonly customerId: string;
  readonly vendorId: string;
  readonly orderId: string;
  readonly amountMinor: number;
  readonly currency: string;
  readonly status: string;
  readonly receipt: string | null;
  readonly createdAt: number;
}

export interface Balances {
  readonly accounts: readonly AccountView[];
  /** Orders not yet paid: open, or reserved by a payment in doubt. */
  readonly openOrders: readonly OrderView[];
  readonly purchases: readonly PurchaseView[];
}

export function readBalances(files: DataFiles): Balances {
  const accounts = withDatabase(
    files.bank,
    (db) =>
      db
        .prepare(
          `SELECT account_id AS accountId, owner_id AS ownerId, currency,
           balance_minor AS balanceMinor, held_minor AS heldMinor,
           balance_minor - held_minor AS availableMinor, frozen
         FROM accounts ORDER BY owner_id, currency`,
        )
        .all() as (Omit<AccountView, 'frozen'> & { frozen: number })[],
  ).map((row) => ({ ...row, frozen: row.frozen === 1 }));
  const openOrders = withDatabase(
    files.vendor,
    (db) =>
      db
        .prepare(
          `SELECT order_id AS orderId, vendor_id AS vendorId, customer_id AS customerId, currency,
             total_minor AS totalMinor, status, tx_id AS txId
           FROM orders WHERE status <> 'paid' ORDER BY order_id`,
        )
        .all() as OrderView[],
  );
  const purchases = withDatabase(
    files.customer,
    (db) =>
      db
        .prepare(
          `SELECT tx_id AS txId, customer_id AS customerId, vendor_id AS vendorId,
             order_id AS orderId, amount_minor AS amountMinor, currency, status, receipt,
             created_at AS createdAt
           FROM purchases ORDER BY created_at, tx_id`,
        )
        .all() as PurchaseView[],
  );
  return { accounts, openOrders, purchases };
}

export function formatBalances(balances: Balances): string {
  const accountRows = balances.accounts.map((a) => [
    a.ownerId,
    a.accountId,
    formatMoney(a.balanceMinor, a.currency),
    formatMoney(a.heldMinor, a.currency),
    formatMoney(a.availableMinor, a.currency),
    a.frozen ? 'frozen' : '',
  ]);
  const orderRows = balances.openOrders.map((o) => [
    o.orderId,
    `${o.customerId} → ${o.vendorId}`,
    formatMoney(o.totalMinor, o.currency),
    o.status,
    o.txId ?? '',
  ]);
  const purchaseRows = balances.purchases.map((p) => [
    p.customerId,
    p.orderId,
    p.vendorId,
    formatMoney(p.amountMinor, p.currency),
    p.status,
    p.receipt ?? `tx ${p.txId}`,
  ]);
  return [
    'Bank accounts',
    formatTable([['owner', 'account', 'balance', 'held', 'available', ''], ...accountRows]),
    '',
    `Vendor orders not yet paid (${orderRows.length})`,
    orderRows.length === 0
      ? '  none'
      : formatTable([['order', 'customer → vendor', 'total', 'status', 'tx'], ...orderRows]),
    '',
    `Customer purchases (${purchaseRows.length})`,
    purchaseRows.length === 0
      ? '  none'
      : formatTable([
          ['customer', 'order', 'vendor', 'amount', 'status', 'receipt'],
          ...purchaseRows,
        ]),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Inspect: one transaction as a timeline across the four databases.

/** The coordinator's index row of a payment, when it knows the transaction. */
export interface PaymentView {
  readonly txId: string;
  readonly clientId: string;
  readonly idempotencyKey: string;
  readonly state: string;
  readonly abortedBy: string | null;
  readonly reason: string | null;
  readonly createdAt: number;
  readonly decidedAt: number | null;
  readonly completedAt: number | null;
}

export interface TimelineEntry {
  readonly at: number;
  readonly party: DatabaseName;
  /** Where the row lives: `journal`, `barrier`, `holds`, `orders`, `reservations`, `purchases`. */
  readonly table: string;
  readonly what: string;
}

export interface Inspection {
  readonly txId: string;
  readonly payment: PaymentView | undefined;
  readonly timeline: readonly TimelineEntry[];
}

/** No database knows the transaction or key. */
export class TransactionNotFoundError extends Error {
  override readonly name = 'TransactionNotFoundError';
  readonly id: string;
  constructor(id: string) {
    super(`no transaction or idempotency key ${id} in any of the four databases`);
    this.id = id;
  }
}

const paymentColumns = `tx_id AS txId, client_id AS clientId, idempotency_key AS idempotencyKey,
  state, aborted_by AS abortedBy, reason, created_at AS createdAt, decided_at AS decidedAt,
  completed_at AS completedAt`;

/** Finds the transaction an argument names: a transaction id first, then an idempotency key. */
function findPayment(
  db: Db,
  id: string,
  clientId: string | undefined,
  command: string,
): PaymentView | undefined {
  const byTx = db.prepare(`SELECT ${paymentColumns} FROM payments WHERE tx_id = ?`).get(id);
  if (byTx !== undefined) return byTx as PaymentView;
  const byKey = db
    .prepare(
      `SELECT ${paymentColumns} FROM payments WHERE idempotency_key = ?
       AND (? IS NULL OR client_id = ?) ORDER BY client_id`,
    )
    .all(id, clientId ?? null, clientId ?? null) as PaymentView[];
  if (byKey.length > 1) {
    const clients = byKey.map((row) => row.clientId).join(', ');
    throw new UsageError(
      `key ${id} is used by several clients (${clients}); pass --client-id`,
      command,
    );
  }
  return byKey[0];
}

export function inspectTransaction(
  files: DataFiles,
  id: string,
  clientId: string | undefined,
  command: string,
): Inspection {
  const payment = withDatabase(files.coordinator, (db) => findPayment(db, id, clientId, command));
  // A transaction the coordinator has forgotten may still be in the participants' barriers.
  const txId = payment?.txId ?? id;
  const timeline: (TimelineEntry & { rank: number })[] = [];
  if (payment !== undefined) timeline.push(...journalEntries(files.coordinator, txId));
  timeline.push(...bankEntries(files.bank, txId), ...vendorEntries(files.vendor, txId));
  timeline.push(...customerEntries(files.customer, txId));
  if (timeline.length === 0 || !transactionIdPattern.test(txId)) {
    throw new TransactionNotFoundError(id);
  }
  // Rows written in the same millisecond are put in protocol order: begin, prepare, decision,
  // commit or abort, completed.
  timeline.sort((a, b) => a.at - b.at || a.rank - b.rank);
  return {
    txId,
    payment,
    timeline: timeline.map(({ at, party, table, what }) => ({ at, party, table, what })),
  };
}

type RankedEntry = TimelineEntry & { readonly rank: number };

function journalEntries(file: string, txId: string): RankedEntry[] {
  const rows = withDatabase(
    file,
    (db) =>
      db
        .prepare(
          'SELECT seq, kind, body, written_at AS at FROM journal WHERE tx_id = ? ORDER BY seq',
        )
        .all(txId) as { seq: number; kind: string; body: string; at: number }[],
  );
  return rows.map((row) => {
    const body = JSON.parse(row.body) as Record<string, unknown>;
    const rank = row.kind === 'begin' ? 0 : row.kind === 'decided' ? 2 : 4;
    return {
      at: row.at,
      party: 'coordinator',
      table: 'journal',
      rank,
      what: `#${row.seq} ${row.kind}${journalSummary(row.kind, body)}`,
    };
  });
}

function journalSummary(kind: string, body: Record<string, unknown>): string {
  const text = (key: string): string => {
    const value = body[key];
    return typeof value === 'string' || typeof value === 'number' ? String(value) : '?';
  };
  if (kind === 'begin') {
    const payment = (body['payment'] ?? {}) as Record<string, unknown>;
    const amount = typeof payment['amountMinor'] === 'number' ? payment['amountMinor'] : 0;
    const currency = typeof payment['currency'] === 'string' ? payment['currency'] : '?';
    const who = `${String(payment['payer'])} → ${String(payment['payee'])}`;
    return `: ${who} ${formatMoney(amount, currency)} for ${String(payment['orderId'])}`;
  }
  if (kind === 'decided') {
    const by = body['abortedBy'] === undefined ? '' : ` by ${text('abortedBy')}`;
    const reason = body['reason'] === undefined ? '' : `: ${text('reason')}`;
    return ` ${text('decision')}${by}${reason}`;
  }
  return '';
}

interface BarrierRow {
  vote: string;
  reason: string | null;
  decision: string | null;
  created_at: number;
  decided_at: number | null;
}

/** The vote (or tombstone), and the decision once applied: what the barrier row records. */
function barrierEntries(db: Db, party: ParticipantName, txId: string): RankedEntry[] {
  const rows = db
    .prepare('SELECT vote, reason, decision, created_at, decided_at FROM barrier WHERE tx_id = ?')
    .all(txId) as BarrierRow[];
  return rows.flatMap((row): RankedEntry[] => {
    const entry = { party, table: 'barrier' };
    const vote = `prepare ${row.vote}${row.reason === null ? '' : `: ${row.reason}`}`;
    const entries: RankedEntry[] = [{ ...entry, at: row.created_at, rank: 1, what: vote }];
    if (row.decision !== null && row.decided_at !== null) {
      entries.push({ ...entry, at: row.decided_at, rank: 3, what: `${row.decision} done` });
    }
    return entries;
  });
}

/** The first row for a business change, and a second for its end when it has one. */
function lifeEntries(
  party: ParticipantName,
  table: string,
  created: { at: number; what: string },
  ended: { at: number; what: string } | undefined,
): RankedEntry[] {
  const entries: RankedEntry[] = [{ ...created, party, table, rank: 1 }];
  if (ended !== undefined) entries.push({ ...ended, party, table, rank: 3 });
  return entries;
}

interface HoldRow {
  readonly payer: string;
  readonly payee: string;
  readonly amount: number;
  readonly currency: string;
  readonly state: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

function bankEntries(file: string, txId: string): RankedEntry[] {
  return withDatabase(file, (db) => {
    const entries = barrierEntries(db, 'bank', txId);
    const hold = db
      .prepare(
        `SELECT payer_account AS payer, payee_account AS payee, amount_minor AS amount, currency,
           state, created_at AS createdAt, updated_at AS updatedAt FROM holds WHERE tx_id = ?`,
      )
      .get(txId) as HoldRow | undefined;
    if (hold === undefined) return entries;
    const money = formatMoney(hold.amount, hold.currency);
    const created = { at: hold.createdAt, what: `hold ${money} ${hold.payer} → ${hold.payee}` };
    const ended =
      hold.state === 'held' ? undefined : { at: hold.updatedAt, what: `hold ${hold.state}` };
    return [...entries, ...lifeEntries('bank', 'holds', created, ended)];
  });
}

function vendorEntries(file: string, txId: string): RankedEntry[] {
  return withDatabase(file, (db) => {
    const entries = barrierEntries(db, 'vendor', txId);
    const reservations = db
      .prepare('SELECT sku, quantity, state FROM reservations WHERE tx_id = ? ORDER BY sku')
      .all(txId) as { sku: string; quantity: number; state: string }[];
    // Reservations carry no time of their own: they were made with the prepare row.
    const prepared = entries.find((entry) => entry.what.startsWith('prepare'));
    if (reservations.length > 0 && prepared !== undefined) {
      const items = reservations.map((r) => `${r.sku} × ${r.quantity} (${r.state})`).join(', ');
      entries.push({ ...prepared, table: 'reservations', what: `reserved ${items}` });
    }
    const order = db
      .prepare('SELECT order_id AS orderId, status, updated_at AS at FROM orders WHERE tx_id = ?')
      .get(txId) as { orderId: string; status: string; at: number } | undefined;
    if (order !== undefined) {
      const rank = order.status === 'paid' ? 3 : 1;
      entries.push({
        at: order.at,
        party: 'vendor',
        table: 'orders',
        rank,
        what: `order ${order.orderId} ${order.status}`,
      });
    }
    return entries;
  });
}

interface PurchaseRow {
  readonly orderId: string;
  readonly amount: number;
  readonly currency: string;
  readonly status: string;
  readonly receipt: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

function customerEntries(file: string, txId: string): RankedEntry[] {
  return withDatabase(file, (db) => {
    const entries = barrierEntries(db, 'customer', txId);
    const purchase = db
      .prepare(
        `SELECT order_id AS orderId, amount_minor AS amount, currency, status, receipt,
           created_at AS createdAt, updated_at AS updatedAt FROM purchases WHERE tx_id = ?`,
      )
      .get(txId) as PurchaseRow | undefined;
    if (purchase === undefined) return entries;
    const money = formatMoney(purchase.amount, purchase.currency);
    const created = {
      at: purchase.createdAt,
      what: `purchase ${purchase.orderId} ${money} pending`,
    };
    const receipt = purchase.receipt === null ? '' : `, receipt ${purchase.receipt}`;
    const ended =
      purchase.status === 'pending'
        ? undefined
        : { at: purchase.updatedAt, what: `purchase ${purchase.status}${receipt}` };
    return [...entries, ...lifeEntries('customer', 'purchases', created, ended)];
  });
}

export function formatInspection(inspection: Inspection): string {
  const { payment, timeline, txId } = inspection;
  const first = timeline[0]?.at ?? 0;
  const heading =
    payment === undefined
      ? [`Transaction ${txId}: unknown to the coordinator (forgotten, or never begun there)`]
      : [
          `Transaction ${txId}: ${describePayment(payment)}`,
          `  client ${payment.clientId}, key ${payment.idempotencyKey}`,
        ];
  const day = new Date(first).toISOString().slice(0, 10);
  const rows = timeline.map((entry) => [
    formatClock(entry.at),
    `+${entry.at - first}`,
    entry.party,
    entry.table,
    entry.what,
  ]);
  return [
    ...heading,
    '',
    formatTable([[`time (UTC, ${day})`, 'ms', 'party', 'table', 'record'], ...rows]),
  ].join('\n');
}

function describePayment(payment: PaymentView): string {
  const by = payment.abortedBy === null ? '' : ` by ${payment.abortedBy}`;
  const reason = payment.reason === null ? '' : ` (${payment.reason})`;
  return `${payment.state}${by}${reason}`;
}
