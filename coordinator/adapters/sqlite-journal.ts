/**
 * The coordinator's journal in SQLite. Appends a batch of records in one SQLite transaction (one
 * fsync under synchronous=FULL: group commit), keeps the `payments` index in step with it, looks
 * payments up by key or id, and reads back the records recovery must replay.
 *
 * Records are checked when they are read back: a record of an unknown kind, an unreadable body or
 * an index that disagrees with the log makes the coordinator refuse to start, naming the file and
 * the record, rather than silently forget a decision.
 */
import {
  FencedError,
  JournalBusyError,
  JournalCorruptError,
  ValidationError,
} from '../../common/errors.ts';
import {
  participantNames,
  readOutcomeDetails,
  readPayment,
  transactionIdPattern,
  type AbortSource,
  type ParticipantName,
} from '../../common/protocol.ts';
import Database, { type Transaction } from 'better-sqlite3';
import { performance } from 'node:perf_hooks';
import {
  batchReader,
  busyTimeoutMs,
  isBusyError,
  openDatabase,
  type BatchReader,
  type SqliteDatabase,
} from '../../common/sqlite.ts';
import { countCommit, workCounters } from '../../common/stats.ts';
import type { JournalRecord, StoredPayment } from '../core/types.ts';

interface PaymentRow {
  readonly tx_id: string;
  readonly client_id: string;
  readonly idempotency_key: string;
  readonly fingerprint: string;
  readonly state: 'preparing' | 'committed' | 'aborted';
  readonly aborted_by: string | null;
  readonly reason: string | null;
}

interface JournalRow {
  readonly seq: number;
  readonly tx_id: string;
  readonly kind: string;
  readonly body: string;
  readonly written_at: number;
}

const paymentColumns = 'tx_id, client_id, idempotency_key, fingerprint, state, aborted_by, reason';

/** Completed payments purged per purge call, so one purge never holds the write lock for long. */
export const purgeChunkMax = 1_000;

export class SqliteJournal {
  readonly file: string;
  /** How long a completed payment's key is remembered; see docs/idempotency.md. */
  readonly retentionMs: number;
  readonly #db: SqliteDatabase;
  readonly #statements;
  /** The term this process leads, once it started one; writes outside it are refused. */
  #epoch: number | undefined;
  #epochIgnored = false;
  /** Test-only mutation 'purge-by-age': the purge's statements, broken. */
  #purgeByAge: { expired: Database.Statement; purgePayment: Database.Statement } | undefined;
  /**
   * Runs the reads of a batch, in one read transaction when the batch is large enough that its
   * lookups gain by sharing one snapshot and one read lock (batchReader).
   */
  readonly reading: BatchReader;
  /** Made once: better-sqlite3 builds four wrapper functions for every `transaction()` call. */
  readonly #appendInTransaction: Transaction<
    (records: readonly JournalRecord[], now: number) => void
  >;

  /** `busyWaitMs`: how long a write waits for another process's write lock (busy_timeout). */
  constructor(file: string, retentionMs: number, busyWaitMs = busyTimeoutMs) {
    this.file = file;
    this.retentionMs = retentionMs;
    this.#db = openDatabase(file, 'coordinator');
    this.#db.pragma(`busy_timeout = ${busyWaitMs}`);
    const db = this.#db;
    this.reading = batchReader(db);
    this.#statements = {
      append: db.prepare(
        'INSERT INTO journal (tx_id, kind, body, written_at, epoch) VALUES (?, ?, ?, ?, ?)',
      ),
      claim: db.prepare(
        `INSERT INTO payments (tx_id, client_id, idempotency_key, fingerprint, state, created_at)
         VALUES (?, ?, ?, ?, 'preparing', ?)`,
      ),
      decide: db.prepare(
        `UPDATE payments SET state = ?, aborted_by = ?, reason = ?, decided_at = ?
         WHERE tx_id = ? AND state = 'preparing'`,
      ),
      complete: db.prepare(
        'UPDATE payments SET completed_at = ? WHERE tx_id = ? AND completed_at IS NULL',
      ),
      byKey: db.prepare(
        `SELECT ${paymentColumns} FROM payments WHERE client_id = ? AND idempotency_key = ?
         AND (completed_at IS NULL OR completed_at >= ?)`,
      ),
      releaseExpiredKey: db
        .prepare(
          `DELETE FROM payments WHERE client_id = ? AND idempotency_key = ?
           AND completed_at IS NOT NULL AND completed_at < ? RETURNING tx_id`,
        )
        .pluck(),
      expired: db.prepare(
        `SELECT tx_id FROM payments WHERE completed_at IS NOT NULL AND completed_at < ?
         ORDER BY completed_at LIMIT ${purgeChunkMax}`,
      ),
      purgeRecords: db.prepare('DELETE FROM journal WHERE tx_id = ?'),
      purgePayment: db.prepare('DELETE FROM payments WHERE tx_id = ? AND completed_at IS NOT NULL'),
      byId: db.prepare(`SELECT ${paymentColumns} FROM payments WHERE tx_id = ?`),
      // Through the index of payments not completed: proportional to the payments in flight, not
      // to the journal, which holds every payment of the retention period.
      unfinished: db.prepare(
        `SELECT seq, tx_id, kind, body, written_at FROM journal
         WHERE tx_id IN (SELECT tx_id FROM payments WHERE completed_at IS NULL)
         ORDER BY seq`,
      ),
      incomplete: db.prepare('SELECT tx_id FROM payments WHERE completed_at IS NULL').pluck(),
      everyRecord: db.prepare(
        'SELECT seq, tx_id, kind, body, written_at FROM journal ORDER BY seq',
      ),
      // The journal alone: transactions with records but no completed record (verify only).
      unfinishedInLog: db
        .prepare(
          `SELECT DISTINCT tx_id FROM journal AS record
           WHERE NOT EXISTS (SELECT 1 FROM journal AS done
                             WHERE done.tx_id = record.tx_id AND done.kind = 'completed')`,
        )
        .pluck(),
      epoch: db.prepare('SELECT epoch FROM leadership WHERE id = 1').pluck(),
      newTerm: db
        .prepare(
          'UPDATE leadership SET epoch = epoch + 1, holder = ?, since = ? WHERE id = 1 RETURNING epoch',
        )
        .pluck(),
      history: db.prepare(
        'SELECT seq, tx_id, kind, body, written_at FROM journal WHERE tx_id = ? ORDER BY seq',
      ),
    };
    this.#appendInTransaction = db.transaction((records: readonly JournalRecord[], now: number) => {
      this.checkTerm();
      for (const record of records) this.#write(record, now);
    });
  }

  /**
   * Starts a new term of leadership for `holder`: increments the epoch, durably, and returns it.
   * Any other coordinator's later writes are refused from here on.
   */
  beginTerm(holder: string, now: number): number {
    const epoch = this.#whenFree(() => this.#statements.newTerm.get(holder, now) as number);
    workCounters.sqliteCommits += 1;
    this.#epoch = epoch;
    return epoch;
  }

  /** Test-only mutation 'ignore-epoch' (test/sim/mutations.ts): the fence is never checked. */
  ignoreEpoch(): void {
    this.#epochIgnored = true;
  }

  /**
   * Test-only mutation 'purge-by-age' (test/sim/mutations.ts): the purge forgets payments by the
   * age of their start, complete or not.
   */
  purgeByAge(): void {
    this.#purgeByAge = {
      expired: this.#db.prepare(
        `SELECT tx_id FROM payments WHERE created_at < ? ORDER BY created_at LIMIT ${purgeChunkMax}`,
      ),
      purgePayment: this.#db.prepare('DELETE FROM payments WHERE tx_id = ?'),
    };
  }

  /** Throws FencedError if another coordinator has started a newer term since ours began. */
  checkTerm(): void {
    if (this.#epoch === undefined || this.#epochIgnored) return;
    const current = this.#statements.epoch.get() as number;
    if (current !== this.#epoch) throw new FencedError(this.#epoch, current);
  }

  /**
   * Writes records in one SQLite transaction; durable when this returns (synchronous=FULL). The
   * term is checked inside the same transaction, so a coordinator whose term is over cannot
   * slip a record in between the check and the write.
   */
  append(records: readonly JournalRecord[], now: number): void {
    if (records.length === 0) return;
    const startedAt = performance.now();
    this.#whenFree(() => this.#appendInTransaction.immediate(records, now));
    countCommit(startedAt);
  }

  /**
   * Runs a write, which waits for the write lock up to the busy timeout; JournalBusyError if
   * another process kept it longer. Nothing was written then: the write never began.
   */
  #whenFree<T>(write: () => T): T {
    try {
      return write();
    } catch (error) {
      if (isBusyError(error)) throw new JournalBusyError(this.file, error);
      throw error;
    }
  }

  #write(record: JournalRecord, now: number): void {
    const s = this.#statements;
    s.append.run(record.txId, record.kind, JSON.stringify(record), now, this.#epoch ?? 0);
    switch (record.kind) {
      case 'begin': {
        const claim = (): void => {
          s.claim.run(
            record.txId,
            record.clientId,
            record.idempotencyKey,
            record.fingerprint,
            record.createdAt,
          );
        };
        try {
          claim();
        } catch (error) {
          if (!isUniqueViolation(error)) throw error;
          // An expired key may be reused for a new payment: its old payment gives way, with its
          // records (the purge starts from `payments` and would never find them otherwise).
          // Looked for only when the claim collides, so the usual begin costs one statement.
          const cutoff = now - this.retentionMs;
          const released = s.releaseExpiredKey.get(record.clientId, record.idempotencyKey, cutoff);
          if (typeof released !== 'string') throw error;
          s.purgeRecords.run(released);
          claim();
        }
        return;
      }
      case 'decided': {
        const state = record.decision === 'commit' ? 'committed' : 'aborted';
        const changed = s.decide.run(
          state,
          record.abortedBy ?? null,
          record.reason ?? null,
          record.decidedAt,
          record.txId,
        );
        // The machine decides once; a second decision would be a bug, so refuse to write it.
        if (changed.changes !== 1) throw new Error(`decision for ${record.txId} not recorded`);
        return;
      }
      case 'completed':
        s.complete.run(record.completedAt, record.txId);
        return;
    }
  }

  /** The payment a key names, unless it completed longer ago than the retention period. */
  findByKey(clientId: string, idempotencyKey: string, now: number): StoredPayment | undefined {
    const cutoff = now - this.retentionMs;
    const row = this.#statements.byKey.get(clientId, idempotencyKey, cutoff) as
      PaymentRow | undefined;
    return row && storedFrom(row);
  }

  /**
   * Forgets up to purgeChunkMax payments that completed before the retention period, with their
   * records. A payment that is not complete is never purged, whatever its age: a participant may
   * still be waiting for its decision. Returns how many were purged. Like every write of a term,
   * refused (FencedError) once a newer term has begun.
   */
  purge(now: number): number {
    const s = { ...this.#statements, ...this.#purgeByAge };
    // IMMEDIATE: the write lock first, waiting for it (busy_timeout) if the other coordinator
    // writes. A deferred transaction would read, then find its snapshot stale when it came to
    // delete after the other's commit, and SQLite answers that with SQLITE_BUSY at once.
    const purged = this.#whenFree(() =>
      this.#db
        .transaction(() => {
          this.checkTerm();
          const rows = s.expired.all(now - this.retentionMs) as { tx_id: string }[];
          for (const { tx_id: txId } of rows) {
            s.purgeRecords.run(txId);
            s.purgePayment.run(txId);
          }
          return rows.length;
        })
        .immediate(),
    );
    // A transaction that changed nothing syncs nothing; count only those that wrote.
    if (purged > 0) workCounters.sqliteCommits += 1;
    return purged;
  }

  findById(txId: string): StoredPayment | undefined {
    const row = this.#statements.byId.get(txId) as PaymentRow | undefined;
    return row && storedFrom(row);
  }

  /**
   * Every record of every transaction the `payments` index lists as not completed, in the order
   * written: what recovery replays. Reads only those transactions' records, so a takeover costs
   * what is in flight, not what the retention period keeps; `verify()` reads everything.
   */
  unfinishedRecords(): JournalRecord[] {
    const rows = this.#statements.unfinished.all() as JournalRow[];
    return rows.map((row) => this.#decode(row));
  }

  /**
   * Reads the whole journal and throws JournalCorruptError, naming the file and the record or
   * transaction, unless every record decodes and the transactions the log alone shows unfinished
   * are exactly those the `payments` index lists as unfinished. Recovery trusts the index to find
   * the unfinished work; this checks that trust, at a cost proportional to the journal (about a
   * second per million payments held), so it runs when asked (`--verify-journal on`), not on
   * every takeover.
   */
  verify(): void {
    const s = this.#statements;
    for (const row of s.everyRecord.iterate() as Iterable<JournalRow>) this.#decode(row);
    const inLog = new Set(s.unfinishedInLog.all() as string[]);
    const inIndex = new Set(s.incomplete.all() as string[]);
    for (const txId of new Set([...inLog, ...inIndex])) {
      if (inLog.has(txId) === inIndex.has(txId)) continue;
      const message = inLog.has(txId)
        ? 'the journal has records without completion but the payments index has no unfinished entry'
        : 'the payments index has an unfinished entry but the journal shows no unfinished records';
      throw new JournalCorruptError(this.file, `transaction ${txId}`, message);
    }
  }

  /** Every record of one transaction, with the time each was written: for `inspect`. */
  history(txId: string): { record: JournalRecord; writtenAt: number; seq: number }[] {
    const rows = this.#statements.history.all(txId) as JournalRow[];
    return rows.map((row) => ({
      record: this.#decode(row),
      writtenAt: row.written_at,
      seq: row.seq,
    }));
  }

  /**
   * Checks that the index agrees with what recovery rebuilt from the log: every payment the
   * index says is unfinished has its records, with the same decision.
   */
  checkIndex(inFlight: ReadonlyMap<string, 'preparing' | 'committed' | 'aborted'>): void {
    const rows = this.#db
      .prepare('SELECT tx_id, state FROM payments WHERE completed_at IS NULL')
      .all() as { tx_id: string; state: string }[];
    const indexed = new Map(rows.map((row) => [row.tx_id, row.state] as const));
    for (const txId of new Set([...indexed.keys(), ...inFlight.keys()])) {
      const inIndex = indexed.get(txId) ?? 'no unfinished entry';
      const inJournal = inFlight.get(txId) ?? 'no unfinished records';
      if (inIndex !== inJournal) {
        const message = `payments index says ${inIndex} but the journal says ${inJournal}`;
        throw new JournalCorruptError(this.file, `transaction ${txId}`, message);
      }
    }
  }

  close(): void {
    this.#db.close();
  }

  #decode(row: JournalRow): JournalRecord {
    try {
      return decodeRecord(row);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new JournalCorruptError(this.file, `record seq ${row.seq} (${row.tx_id})`, message);
    }
  }
}

function storedFrom(row: PaymentRow): StoredPayment {
  const base = {
    txId: row.tx_id,
    clientId: row.client_id,
    idempotencyKey: row.idempotency_key,
    fingerprint: row.fingerprint,
  };
  if (row.state === 'preparing') return base;
  return {
    ...base,
    decided: {
      decision: row.state === 'committed' ? 'commit' : 'abort',
      ...(row.aborted_by === null ? {} : { abortedBy: row.aborted_by as AbortSource }),
      ...(row.reason === null ? {} : { reason: row.reason }),
    },
  };
}

/** Decodes and checks one journal row; throws on anything correct code cannot have written. */
function decodeRecord(row: JournalRow): JournalRecord {
  const body = JSON.parse(row.body) as Record<string, unknown>;
  if (body['kind'] !== row.kind) throw new ValidationError('kind', `row says ${row.kind}`);
  if (body['txId'] !== row.tx_id || !transactionIdPattern.test(row.tx_id)) {
    throw new ValidationError('txId', 'does not match its row');
  }
  const txId = row.tx_id;
  switch (row.kind) {
    case 'begin':
      return {
        kind: 'begin',
        txId,
        clientId: text(body, 'clientId'),
        idempotencyKey: text(body, 'idempotencyKey'),
        fingerprint: text(body, 'fingerprint'),
        payment: readPayment(body['payment']),
        participants: readParticipants(body['participants']),
        createdAt: time(body, 'createdAt'),
        deadlineAt: time(body, 'deadlineAt'),
      };
    case 'decided':
      return decodeDecided(txId, body);
    case 'completed':
      return { kind: 'completed', txId, completedAt: time(body, 'completedAt') };
    default:
      throw new ValidationError('kind', `unknown record kind ${JSON.stringify(row.kind)}`);
  }
}

function decodeDecided(txId: string, body: Record<string, unknown>): JournalRecord {
  const decision = body['decision'];
  if (decision !== 'commit' && decision !== 'abort') {
    throw new ValidationError('decision', 'must be commit or abort');
  }
  // The same checks as on the wire: a record naming a party that does not exist is corrupt.
  const { abortedBy, reason } = readOutcomeDetails(body);
  return {
    kind: 'decided',
    txId,
    decision,
    ...(abortedBy === undefined ? {} : { abortedBy }),
    ...(reason === undefined ? {} : { reason }),
    decidedAt: time(body, 'decidedAt'),
  };
}

function text(body: Record<string, unknown>, key: string): string {
  const value = body[key];
  if (typeof value !== 'string' || value.length === 0) {
    throw new ValidationError(key, 'must be a non-empty string');
  }
  return value;
}

function time(body: Record<string, unknown>, key: string): number {
  const value = body[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ValidationError(key, 'must be a timestamp');
  }
  return value;
}

function readParticipants(value: unknown): ParticipantName[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new ValidationError('participants', 'must be a non-empty list');
  }
  return value.map((name) => {
    if (!participantNames.includes(name as ParticipantName)) {
      throw new ValidationError('participants', `unknown participant ${String(name)}`);
    }
    return name as ParticipantName;
  });
}

/** SQLite refused a row because its key is taken (a failed statement leaves the transaction). */
function isUniqueViolation(error: unknown): boolean {
  return error instanceof Database.SqliteError && error.code === 'SQLITE_CONSTRAINT_UNIQUE';
}
