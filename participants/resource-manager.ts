/**
 * The business side of a participant: what PREPARE, COMMIT and ABORT mean for the bank, the vendor
 * and the customer. The participant shell calls these inside the SQLite transaction that also
 * writes the barrier row, so the business change and the protocol record commit together or not
 * at all. A resource manager never talks to the network and never decides the outcome.
 */
import type { ParticipantName, Payment } from '../common/protocol.ts';
import type { SqliteDatabase } from '../common/sqlite.ts';

export type LocalVote = { readonly vote: 'yes' } | { readonly vote: 'no'; readonly reason: string };

export function voteNo(reason: string): LocalVote {
  return { vote: 'no', reason };
}

export interface ResourceManager {
  readonly name: ParticipantName;
  /**
   * Checks the payment and, when it can go ahead, reserves what it needs (a hold, a stock
   * reservation, a pending purchase) so that a later commit cannot fail. Returns NO with a short
   * reason when it cannot. Called at most once per transaction.
   */
  prepare(db: SqliteDatabase, txId: string, payment: Payment, now: number): LocalVote;
  /** Makes the reservation of a transaction that voted YES permanent. Cannot fail. */
  commit(db: SqliteDatabase, txId: string, now: number): void;
  /** Releases the reservation of a transaction that voted YES. */
  abort(db: SqliteDatabase, txId: string, now: number): void;
}
