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
}

export class JournalConstraintError extends Error {
  override readonly name = 'JournalConstraintError';
}

export function keyOf(clientId: string, idempotencyKey: string): string {
  return `${clientId}/${idempotencyKey}`;
}

export class SimJournal {
  readonly #records: JournalRecord[] = [];
  #durable = 0;
  readonly #byTx = new Map<string, Entry>();
  readonly #byKey = new Map<string, string>();

  /** Appends one write; the first `durableCount` records of it are durable once this returns. */
  append(records: readonly JournalRecord[], durableCount: number): void {
    const start = this.#records.length;
    for (const record of records) {
      this.#index(record, this.#records.length);
      this.#records.push(record);
    }
    this.#durable = Math.max(this.#durable, start + durableCount);
  }

  get durableLength(): number {
    return this.#durable;
  }

  recordAt(index: number): JournalRecord | undefined {
    return this.#records[index];
  }

  /** Loses a random part of the volatile tail, as a crash may. Returns how many records. */
  crash(rng: Random): number {
    const tail = this.#records.length - this.#durable;
    const kept = this.#durable + rng.int(0, tail);
    const lost = this.#records.length - kept;
    if (lost === 0) return 0;
    this.#records.length = kept;
    this.#byTx.clear();
    this.#byKey.clear();
    this.#records.forEach((record, index) => this.#index(record, index));
    return lost;
  }

  findByKey(clientId: string, idempotencyKey: string): StoredPayment | undefined {
    const txId = this.#byKey.get(keyOf(clientId, idempotencyKey));
    return txId === undefined ? undefined : this.findById(txId);
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

  /** The decision whose record is durable, if any. */
  durableDecision(txId: string): Decision | undefined {
    const entry = this.#byTx.get(txId);
    if (entry?.decided === undefined || entry.decidedAt >= this.#durable) return undefined;
    return entry.decided.decision;
  }

  /** Every transaction the journal knows, for the liveness check at the end of a run. */
  transactions(): IterableIterator<JournalEntry> {
    return this.#byTx.values();
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
        if (entry !== undefined) entry.completed = true;
        return;
    }
  }
}
