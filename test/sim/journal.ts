/**
 * The coordinator's journal, in memory, with the crash semantics of the real one.
 *
 * The real shell writes the records of one batch in one SQLite transaction. Here a write is a
 * group of consecutive records; a group that holds a forced record makes everything up to its last
 * forced record durable (a log is a prefix: a durable record makes all before it durable too).
 * Unforced records after that point sit in a volatile tail, and a crash keeps a random prefix of
 * that tail: "unforced records written after the last forced write may be lost".
 *
 * It also keeps the `payments` index the real adapter keeps (claim by key, stored outcome) and
 * refuses what SQLite's constraints would refuse: a second claim of one key, a decision for an
 * unknown or already decided transaction. A refusal is a JournalConstraintError, which the
 * simulator reports as a failure of the shell: correct code never provokes one.
 *
 * With a key retention it expires payments as the real adapter does: a lookup by key no longer
 * finds a payment whose `completed` record is durable and older than the retention; a `begin`
 * that claims such a key releases the old payment in the same write; and `purge` forgets every
 * such payment, records and all. A forgotten payment keeps only what the checker and the run's
 * totals need: its durable decision, which a purge forgets but never contradicts.
 */
import type { Decision } from '../../common/protocol.ts';
import type { JournalRecord, StoredPayment } from '../../coordinator/core/types.ts';
import type { Random } from './random.ts';

type BeginRecord = Extract<JournalRecord, { kind: 'begin' }>;
type DecidedRecord = Extract<JournalRecord, { kind: 'decided' }>;

/** What the journal knows of one transaction. */
export interface JournalEntry {
  readonly begin: BeginRecord;
  readonly decided: DecidedRecord | undefined;
  readonly completed: boolean;
}

interface Entry {
  readonly begin: BeginRecord;
  decided: DecidedRecord | undefined;
  /** Position of the decided record in the log, to tell whether it is durable yet. */
  decidedAt: number;
  completed: boolean;
  /** The completed record's time and position: it sets `completed_at` once durable. */
  completedAt: number;
  completedPosition: number;
}

/** Test-only mutation 'purge-by-age' (mutations.ts): the purge's condition, broken. */
export type PurgeRule = 'completed-before-cutoff' | 'begun-before-cutoff';

export class JournalConstraintError extends Error {
  override readonly name = 'JournalConstraintError';
}

/** A write of a term that is over: the real adapter's FencedError, checked inside the write. */
export class JournalFencedError extends Error {
  override readonly name = 'JournalFencedError';
}

/**
 * Another process held the journal's write lock past the busy timeout: the write never began
 * (the real adapter's `JournalBusyError`, common/errors.ts).
 */
export class JournalBusyError extends Error {
  override readonly name = 'JournalBusyError';
}

export function keyOf(clientId: string, idempotencyKey: string): string {
  return `${clientId}/${idempotencyKey}`;
}

export class SimJournal {
  /** `--key-retention-ms`; undefined: keys never expire. */
  readonly retentionMs: number | undefined;
  readonly #purgeRule: PurgeRule;
  readonly #records: JournalRecord[] = [];
  #durable = 0;
  readonly #byTx = new Map<string, Entry>();
  readonly #byKey = new Map<string, string>();
  /** Purged or released payments: their records stay in `#records` but are skipped. */
  readonly #forgotten = new Map<string, Entry>();
  /** The current term, durable (the `leadership` row); 0 before the first. */
  #epoch = 0;
  /**
   * Until when another process (a coordinator paused in the middle of a write, an operator's
   * tool) holds the write lock: a write waits for it up to the busy timeout.
   */
  lockedUntil = 0;

  /** Told of every record as it becomes durable, in log order (the checker listens). */
  readonly #onDurable: (record: JournalRecord) => void;

  constructor(
    retentionMs?: number,
    purgeRule: PurgeRule = 'completed-before-cutoff',
    onDurable: (record: JournalRecord) => void = () => undefined,
  ) {
    this.retentionMs = retentionMs;
    this.#purgeRule = purgeRule;
    this.#onDurable = onDurable;
  }

  /**
   * Appends one write made at `now`; the first `durableCount` records of it are durable once this
   * returns. A `begin` whose key names an expired payment releases it first, as the real
   * adapter's claim does when it collides. Returns how many payments were released.
   */
  append(
    records: readonly JournalRecord[],
    durableCount: number,
    now: number,
    epoch?: number,
  ): number {
    if (epoch !== undefined && epoch !== this.#epoch) {
      throw new JournalFencedError(`term ${epoch} is over; term ${this.#epoch} is current`);
    }
    const start = this.#records.length;
    let released = 0;
    for (const record of records) {
      if (record.kind === 'begin' && this.#releaseExpired(record, now)) released += 1;
      this.#index(record, this.#records.length);
      this.#records.push(record);
    }
    this.#makeDurable(start + durableCount);
    return released;
  }

  /**
   * The real `purge`: forgets every payment whose `completed` record is durable and older than
   * the retention, with its records. Returns how many.
   */
  purge(now: number): number {
    if (this.retentionMs === undefined) return 0;
    const cutoff = now - this.retentionMs;
    let purged = 0;
    for (const entry of [...this.#byTx.values()]) {
      const expired =
        this.#purgeRule === 'begun-before-cutoff'
          ? entry.begin.createdAt < cutoff
          : this.#expired(entry, now);
      if (!expired) continue;
      this.#forget(entry);
      purged += 1;
    }
    return purged;
  }

  get epoch(): number {
    return this.#epoch;
  }

  /**
   * The real `beginTerm`: a durable write that starts the next term. The previous leader's
   * unforced records that were not written by then never will be (it is fenced from now on):
   * as in a crash, a random prefix of them is kept. Returns the new epoch and how many were lost.
   */
  beginTerm(rng: Random): { epoch: number; lost: number } {
    const lost = this.crash(rng);
    this.#epoch += 1;
    return { epoch: this.#epoch, lost };
  }

  /**
   * Loses a random part of the volatile tail, as a crash may; the part kept had been written and
   * is durable from now on. Returns how many records were lost.
   */
  crash(rng: Random): number {
    const tail = this.#records.length - this.#durable;
    const kept = this.#durable + rng.int(0, tail);
    const lost = this.#records.length - kept;
    this.#makeDurable(kept);
    if (lost === 0) return 0;
    this.#records.length = kept;
    this.#byTx.clear();
    this.#byKey.clear();
    this.#records.forEach((record, index) => {
      if (!this.#forgotten.has(record.txId)) this.#index(record, index);
    });
    return lost;
  }

  /**
   * The payment a key names, unless it expired by `now` (the real `findByKey`); without `now`,
   * whatever the key names, expired or not.
   */
  findByKey(clientId: string, idempotencyKey: string, now?: number): StoredPayment | undefined {
    const txId = this.#byKey.get(keyOf(clientId, idempotencyKey));
    const entry = txId === undefined ? undefined : this.#byTx.get(txId);
    if (entry === undefined || (now !== undefined && this.#expired(entry, now))) return undefined;
    return this.findById(entry.begin.txId);
  }

  findById(txId: string): StoredPayment | undefined {
    const entry = this.#byTx.get(txId);
    if (entry === undefined) return undefined;
    const { begin, decided } = entry;
    const { clientId, idempotencyKey, fingerprint } = begin;
    const base = { txId, clientId, idempotencyKey, fingerprint };
    if (decided === undefined) return base;
    const { decision, abortedBy, reason } = decided;
    return {
      ...base,
      decided: {
        decision,
        ...(abortedBy === undefined ? {} : { abortedBy }),
        ...(reason === undefined ? {} : { reason }),
      },
    };
  }

  /** Every record of every transaction without a `completed` record, in the order written. */
  unfinishedRecords(): JournalRecord[] {
    return this.#records.filter((record) => this.#byTx.get(record.txId)?.completed === false);
  }

  /** The decision whose record is durable, if any, also of a payment purged since. */
  durableDecision(txId: string): Decision | undefined {
    const entry = this.#byTx.get(txId) ?? this.#forgotten.get(txId);
    if (entry?.decided === undefined || entry.decidedAt >= this.#durable) return undefined;
    return entry.decided.decision;
  }

  /** Every transaction the journal knows, for the liveness check at the end of a run. */
  transactions(): IterableIterator<JournalEntry> {
    return this.#byTx.values();
  }

  /** Every transaction the journal purged or released, for the run's totals. */
  forgotten(): IterableIterator<JournalEntry> {
    return this.#forgotten.values();
  }

  #makeDurable(length: number): void {
    for (let index = this.#durable; index < length; index += 1) {
      this.#onDurable(this.#records[index] as JournalRecord);
    }
    this.#durable = Math.max(this.#durable, length);
  }

  /** Completed durably, longer ago than the retention: `completed_at < now - retention`. */
  #expired(entry: Entry, now: number): boolean {
    if (this.retentionMs === undefined || !entry.completed) return false;
    return entry.completedPosition < this.#durable && entry.completedAt < now - this.retentionMs;
  }

  #releaseExpired(begin: BeginRecord, now: number): boolean {
    const txId = this.#byKey.get(keyOf(begin.clientId, begin.idempotencyKey));
    const entry = txId === undefined ? undefined : this.#byTx.get(txId);
    if (entry === undefined || !this.#expired(entry, now)) return false;
    this.#forget(entry);
    return true;
  }

  #forget(entry: Entry): void {
    const { txId, clientId, idempotencyKey } = entry.begin;
    this.#byTx.delete(txId);
    const key = keyOf(clientId, idempotencyKey);
    if (this.#byKey.get(key) === txId) this.#byKey.delete(key);
    this.#forgotten.set(txId, entry);
  }

  #index(record: JournalRecord, position: number): void {
    const entry = this.#byTx.get(record.txId);
    switch (record.kind) {
      case 'begin': {
        const key = keyOf(record.clientId, record.idempotencyKey);
        if (entry !== undefined || this.#byKey.has(key)) {
          throw new JournalConstraintError(`UNIQUE: ${key} claimed twice (${record.txId})`);
        }
        this.#byTx.set(record.txId, {
          begin: record,
          decided: undefined,
          decidedAt: -1,
          completed: false,
          completedAt: -1,
          completedPosition: -1,
        });
        this.#byKey.set(key, record.txId);
        return;
      }
      case 'decided':
        // The real adapter's UPDATE ... WHERE state = 'preparing' must change exactly one row.
        if (entry === undefined || entry.decided !== undefined) {
          throw new JournalConstraintError(`decision for ${record.txId} not recorded`);
        }
        entry.decided = record;
        entry.decidedAt = position;
        return;
      case 'completed':
        if (entry !== undefined && !entry.completed) {
          entry.completed = true;
          entry.completedAt = record.completedAt;
          entry.completedPosition = position;
        }
        return;
    }
  }
}
