/**
 * Reads the coordinator's journal and the three participants' databases and checks the promises
 * of the system (REFERENCE.md, Fault testing):
 *
 * - atomicity: per transaction, the effects at bank, vendor and customer are all committed or
 *   all absent, and they agree with the coordinator's decision;
 * - no lost decisions: nothing a participant committed is unknown or aborted at the coordinator;
 * - nothing left behind once quiet: no hold, reservation, pending purchase or undecided payment;
 * - conservation: the money per currency equals the baseline, and every account's held amount
 *   equals the sum of its open holds;
 * - every customer's pending total equals the sum of its pending purchases.
 *
 * It returns the violations as readable lines rather than throwing, so a test or the chaos run can
 * print them all. The database files are opened read-only; the services may keep running.
 */
import Database from 'better-sqlite3';
import { setTimeout as sleep } from 'node:timers/promises';
import { ulidTimePrefix } from '../common/ids.ts';
import type { ParticipantName } from '../common/protocol.ts';
import { inDoubtSql } from '../participants/service.ts';

export type DatabaseFiles = Readonly<Record<'coordinator' | ParticipantName, string>>;

/** Total money per currency: the one number conservation is measured against. */
export type MoneyBaseline = Readonly<Record<string, number>>;

type Db = Database.Database;

function openReadOnly(file: string): Db {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  db.pragma('query_only = ON');
  db.pragma('busy_timeout = 5000');
  return db;
}

function withDatabases<T>(
  files: DatabaseFiles,
  use: (dbs: Record<keyof DatabaseFiles, Db>) => T,
): T {
  const dbs = {
    coordinator: openReadOnly(files.coordinator),
    bank: openReadOnly(files.bank),
    vendor: openReadOnly(files.vendor),
    customer: openReadOnly(files.customer),
  };
  try {
    return use(dbs);
  } finally {
    for (const db of Object.values(dbs)) db.close();
  }
}

export function moneyBaseline(bankFile: string): MoneyBaseline {
  const db = openReadOnly(bankFile);
  try {
    return moneyByCurrency(db);
  } finally {
    db.close();
  }
}

function moneyByCurrency(bank: Db): Record<string, number> {
  const rows = bank
    .prepare('SELECT currency, sum(balance_minor) AS total FROM accounts GROUP BY currency')
    .all() as { currency: string; total: number }[];
  return Object.fromEntries(rows.map((row) => [row.currency, row.total]));
}

/** What each party shows for a transaction: 'committed', 'open' (held/reserved/pending), or none. */
type Effect = 'committed' | 'open' | 'released';

function effectsByTransaction(dbs: Record<keyof DatabaseFiles, Db>) {
  const read = (db: Db, sql: string): Map<string, Effect> => {
    const rows = db.prepare(sql).all() as { tx_id: string; effect: Effect }[];
    return new Map(rows.map((row) => [row.tx_id, row.effect]));
  };
  return {
    bank: read(
      dbs.bank,
      `SELECT tx_id, CASE state WHEN 'captured' THEN 'committed' WHEN 'held' THEN 'open'
       ELSE 'released' END AS effect FROM holds`,
    ),
    vendor: read(
      dbs.vendor,
      `SELECT tx_id, CASE min(state) WHEN 'consumed' THEN 'committed' WHEN 'reserved' THEN 'open'
       ELSE 'released' END AS effect FROM reservations GROUP BY tx_id`,
    ),
    customer: read(
      dbs.customer,
      `SELECT tx_id, CASE status WHEN 'completed' THEN 'committed' WHEN 'pending' THEN 'open'
       ELSE 'released' END AS effect FROM purchases`,
    ),
  };
}

export interface CheckOptions {
  /** Money per currency before the run; conservation is checked against it. */
  readonly baseline: MoneyBaseline;
  /** After healing and waiting: nothing may be open or undecided. */
  readonly settled: boolean;
  /**
   * Transactions the coordinator purged on purpose (key retention). It no longer knows them, so
   * only the participants' agreement with each other is checked for these.
   */
  readonly forgotten?: ReadonlySet<string>;
}

export function checkInvariants(files: DatabaseFiles, options: CheckOptions): string[] {
  return withDatabases(files, (dbs) => {
    const violations: string[] = [];
    const decisions = new Map(
      (
        dbs.coordinator.prepare('SELECT tx_id, state, completed_at FROM payments').all() as {
          tx_id: string;
          state: string;
          completed_at: number | null;
        }[]
      ).map((row) => [row.tx_id, row] as const),
    );
    const effects = effectsByTransaction(dbs);
    const txIds = new Set([...decisions.keys(), ...effects.bank.keys(), ...effects.vendor.keys()]);
    for (const txId of effects.customer.keys()) txIds.add(txId);
    for (const txId of txIds) {
      const state = decisions.get(txId)?.state ?? 'unknown';
      const seen = (['bank', 'vendor', 'customer'] as const).map(
        (name) => [name, effects[name].get(txId)] as const,
      );
      const committedAt = seen.filter(([, effect]) => effect === 'committed').map(([name]) => name);
      const summary = seen.map(([name, effect]) => `${name}=${effect ?? 'none'}`).join(' ');
      if (state === 'unknown' && options.forgotten?.has(txId)) {
        if (committedAt.length !== 0 && committedAt.length !== 3) {
          violations.push(
            `tx ${txId}: forgotten by the coordinator, committed only at ${committedAt.join(', ')}`,
          );
        }
        // Only a complete payment may be forgotten: nothing of it may still be held.
        if (options.settled && seen.some(([, effect]) => effect === 'open')) {
          violations.push(
            `tx ${txId}: still held after settling (${summary}, coordinator forgot it)`,
          );
        }
        continue;
      }
      if (committedAt.length > 0 && state !== 'committed') {
        violations.push(
          `tx ${txId}: coordinator says ${state} but committed at ${committedAt.join(', ')} (${summary})`,
        );
      }
      if (state === 'committed' && options.settled && committedAt.length !== 3) {
        violations.push(`tx ${txId}: committed but not applied everywhere (${summary})`);
      }
      if (options.settled && seen.some(([, effect]) => effect === 'open')) {
        violations.push(`tx ${txId}: still held after settling (${summary}, coordinator ${state})`);
      }
      if (options.settled && state === 'preparing') {
        violations.push(`tx ${txId}: undecided at the coordinator after settling`);
      }
    }
    violations.push(
      ...checkMoney(dbs.bank, options.baseline),
      ...checkPendingTotals(dbs.customer),
      ...checkLeftovers(dbs, options),
    );
    return violations;
  });
}

function checkMoney(bank: Db, baseline: MoneyBaseline): string[] {
  const violations: string[] = [];
  const now = moneyByCurrency(bank);
  for (const currency of new Set([...Object.keys(baseline), ...Object.keys(now)])) {
    if ((baseline[currency] ?? 0) !== (now[currency] ?? 0)) {
      violations.push(
        `money not conserved in ${currency}: ${baseline[currency]} became ${now[currency]}`,
      );
    }
  }
  const mismatched = bank
    .prepare(
      `SELECT a.account_id, a.held_minor, coalesce(sum(h.amount_minor), 0) AS open
       FROM accounts a LEFT JOIN holds h ON h.payer_account = a.account_id AND h.state = 'held'
       GROUP BY a.account_id HAVING a.held_minor <> open`,
    )
    .all() as { account_id: string; held_minor: number; open: number }[];
  for (const row of mismatched) {
    violations.push(
      `account ${row.account_id}: held ${row.held_minor} but open holds sum to ${row.open}`,
    );
  }
  return violations;
}

/** Every customer's running pending total equals the sum of its pending purchases. */
function checkPendingTotals(customer: Db): string[] {
  const mismatched = customer
    .prepare(
      `SELECT c.customer_id, c.pending_minor, coalesce(sum(p.amount_minor), 0) AS open
       FROM customers c LEFT JOIN purchases p
         ON p.customer_id = c.customer_id AND p.status = 'pending'
       GROUP BY c.customer_id HAVING c.pending_minor <> open`,
    )
    .all() as { customer_id: string; pending_minor: number; open: number }[];
  return mismatched.map(
    (row) =>
      `customer ${row.customer_id}: pending ${row.pending_minor} but pending purchases sum to ${row.open}`,
  );
}

function checkLeftovers(dbs: Record<keyof DatabaseFiles, Db>, options: CheckOptions): string[] {
  if (!options.settled) return [];
  const count = (db: Db, sql: string): number => (db.prepare(sql).get() as { n: number }).n;
  const leftovers: [string, number][] = [
    [
      'accounts with held money',
      count(dbs.bank, 'SELECT count(*) AS n FROM accounts WHERE held_minor > 0'),
    ],
    [
      'stock rows with reservations',
      count(dbs.vendor, 'SELECT count(*) AS n FROM stock WHERE reserved > 0'),
    ],
    [
      'orders still reserved',
      count(dbs.vendor, "SELECT count(*) AS n FROM orders WHERE status = 'reserved'"),
    ],
    [
      'incomplete payments at the coordinator',
      count(dbs.coordinator, 'SELECT count(*) AS n FROM payments WHERE completed_at IS NULL'),
    ],
    // A YES vote whose decision was applied must be out of doubt, or the participant's next start
    // would take it for undecided.
    ...(['bank', 'vendor', 'customer'] as const).map((name): [string, number] => [
      `YES votes still in doubt at the ${name}`,
      count(dbs[name], `SELECT count(*) AS n FROM (${inDoubtSql})`),
    ]),
  ];
  return leftovers.filter(([, n]) => n > 0).map(([what, n]) => `${n} ${what} after settling`);
}

/**
 * Transactions the participants hold business rows for that the coordinator's journal no longer
 * holds and may have purged: those whose id was made before the retention period, since the
 * purge forgets only payments completed before it. An unknown younger one is a violation. The
 * business rows, not the barrier, because the participants forget their barrier rows too.
 */
export function forgottenTransactions(files: DatabaseFiles, retentionMs: number): Set<string> {
  const before = ulidTimePrefix(Date.now() - retentionMs);
  const read = (file: string, sql: string): string[] => {
    const db = new Database(file, { readonly: true });
    try {
      return db.prepare(sql).pluck().all(before) as string[];
    } finally {
      db.close();
    }
  };
  const known = new Set(read(files.coordinator, 'SELECT tx_id FROM payments WHERE tx_id < ?'));
  const forgotten = new Set<string>();
  const business = [
    read(files.bank, 'SELECT tx_id FROM holds WHERE tx_id < ?'),
    read(files.vendor, 'SELECT DISTINCT tx_id FROM reservations WHERE tx_id < ?'),
    read(files.customer, 'SELECT tx_id FROM purchases WHERE tx_id < ?'),
  ];
  for (const txIds of business) {
    for (const txId of txIds) if (!known.has(txId)) forgotten.add(txId);
  }
  return forgotten;
}

/** Polls until the system is quiet (nothing open or incomplete) or the bound passes. */
export async function waitUntilSettled(files: DatabaseFiles, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const quiet = withDatabases(files, (dbs) => {
      const n = (db: Db, sql: string): number => (db.prepare(sql).get() as { n: number }).n;
      return (
        n(dbs.coordinator, 'SELECT count(*) AS n FROM payments WHERE completed_at IS NULL') === 0 &&
        n(dbs.bank, "SELECT count(*) AS n FROM holds WHERE state = 'held'") === 0 &&
        n(dbs.vendor, "SELECT count(*) AS n FROM reservations WHERE state = 'reserved'") === 0 &&
        n(dbs.customer, "SELECT count(*) AS n FROM purchases WHERE status = 'pending'") === 0
      );
    });
    if (quiet) return true;
    await sleep(100);
  }
  return false;
}
