/**
 * A participant's side of two-phase commit, presumed-abort variant, as a deterministic machine.
 *
 * Theory of operation. The participant's durable truth is its barrier: one row per transaction and
 * phase, written in the same SQLite transaction as the business change (dtm's barrier). The shell
 * looks the barrier up and hands it to the machine with each message as `stored`; the machine
 * decides what to do and the shell does it:
 *
 * - PREPARE of an unknown transaction: run the business prepare and record the vote, durably, in
 *   one local transaction (`prepare-locally`); only then reply with the vote. A YES vote is never
 *   sent before it is durable.
 * - After voting YES the transaction is in doubt: the participant holds its resources and never
 *   decides alone. It waits for the decision and, if none comes, asks the coordinator (`query`)
 *   with backoff until it gets an answer. "Unknown" from the coordinator means ABORT (presumed
 *   abort: the coordinator journals `begin` before it sends any PREPARE).
 * - COMMIT or ABORT of a transaction voted YES: apply it durably, then acknowledge.
 * - ABORT of an unknown transaction: write a tombstone, so a PREPARE that arrives late votes NO.
 * - Duplicates are answered from the barrier without touching the business tables again.
 * - A finished transaction's barrier rows expire after the barrier retention; the shell then says
 *   `forgotten` for a transaction older than what it purged. A decision for it was applied before
 *   it was forgotten (only finished transactions expire), so it is acknowledged; a PREPARE for it
 *   is far past any deadline and gets NO.
 *
 * Only in-doubt transactions and the ones being executed right now live in memory, so memory does
 * not grow with history. Recovery replays the barrier's in-doubt transactions and queries for each.
 *
 * Transition table (stored state, message -> effects):
 *
 *   unknown     PREPARE        -> prepare-locally, then reply the vote (YES: in doubt)
 *   voted-yes   PREPARE        -> reply YES again
 *   voted-no    PREPARE        -> reply NO again
 *   aborted     PREPARE        -> reply NO (tombstone or aborted)
 *   committed   PREPARE        -> reply YES again (stale duplicate; the decision stands)
 *   voted-yes   COMMIT/ABORT   -> apply-decision, then ack
 *   unknown     ABORT          -> apply-decision (tombstone), then ack
 *   voted-no    ABORT          -> ack (nothing is held)
 *   committed   COMMIT, aborted ABORT -> ack again
 *   forgotten   PREPARE        -> reply NO (older than the barrier's retention)
 *   forgotten   COMMIT/ABORT   -> ack (applied before it was forgotten)
 *   unknown/voted-no/aborted COMMIT, committed ABORT -> error reply: the peer broke the protocol
 *
 * A local transaction that could not begin (another process kept the database's write lock past
 * the busy timeout, `local-failed`) wrote nothing: its message is answered `unavailable` and the
 * transaction is where it was before the message came.
 */
import { assert, unreachable } from '../../common/assert.ts';
import { TurnoverMap, TurnoverSet } from '../../common/turnover-map.ts';
import type {
  Decision,
  ParticipantMessage,
  ParticipantName,
  ParticipantReply,
  Payment,
  TransactionState,
} from '../../common/protocol.ts';

/** What the barrier says of a transaction. */
export type StoredStatus =
  | { readonly status: 'voted-yes' }
  | { readonly status: 'voted-no'; readonly reason: string }
  | { readonly status: 'committed' }
  | { readonly status: 'aborted' }
  /** No rows, and older than the barrier rows purged so far: finished and forgotten. */
  | { readonly status: 'forgotten' };

export type RequestRef = number;

export type ParticipantInput =
  | {
      readonly kind: 'message-received';
      readonly now: number;
      readonly requestRef: RequestRef;
      readonly message: ParticipantMessage;
      readonly stored: StoredStatus | undefined;
    }
  | {
      /** The local prepare is durable: business change, barrier row and vote in one commit. */
      readonly kind: 'prepared-locally';
      readonly now: number;
      readonly requestRef: RequestRef;
      readonly txId: string;
      readonly vote: 'yes' | 'no';
      readonly reason?: string;
    }
  | {
      readonly kind: 'decision-applied';
      readonly now: number;
      readonly requestRef: RequestRef | undefined;
      readonly txId: string;
      readonly decision: Decision;
    }
  | {
      /**
       * The local transaction of a prepare or decision wrote nothing: another process kept the
       * database's write lock past the busy timeout. The sender re-sends; an in-doubt
       * transaction stays in doubt.
       */
      readonly kind: 'local-failed';
      readonly now: number;
      readonly requestRef: RequestRef | undefined;
      readonly txId: string;
      readonly error: string;
    }
  | {
      readonly kind: 'status-received';
      readonly now: number;
      readonly txId: string;
      readonly state: TransactionState;
    }
  | { readonly kind: 'status-failed'; readonly now: number; readonly txId: string }
  | { readonly kind: 'tick'; readonly now: number }
  | { readonly kind: 'in-doubt-recovered'; readonly txId: string }
  | { readonly kind: 'recovery-finished'; readonly now: number };

export type ParticipantEffect =
  | {
      readonly kind: 'prepare-locally';
      readonly requestRef: RequestRef;
      readonly txId: string;
      readonly payment: Payment;
    }
  | {
      readonly kind: 'apply-decision';
      readonly requestRef: RequestRef | undefined;
      readonly txId: string;
      readonly decision: Decision;
    }
  | { readonly kind: 'reply'; readonly requestRef: RequestRef; readonly reply: ParticipantReply }
  | { readonly kind: 'query-status'; readonly txId: string };

export interface ParticipantConfig {
  readonly name: ParticipantName;
  /** How long a YES vote waits for its decision before the participant asks the coordinator. */
  readonly inDoubtQueryAfterMs: number;
  /** Largest delay between status queries; doubles from inDoubtQueryAfterMs up to it. */
  readonly inDoubtQueryMsMax: number;
  /** Test-only mutation: see test/sim/mutations.ts. Deliberate bugs; production never sets it. */
  readonly mutations?: ReadonlySet<string>;
}

interface InDoubt {
  nextQueryAt: number;
  queryAttempts: number;
}

export class ParticipantMachine {
  readonly #config: ParticipantConfig;
  /** Transactions voted YES and not yet decided here. */
  readonly #inDoubt = new TurnoverMap<string, InDoubt>();
  /** Transactions whose local prepare or decision the shell is executing right now. */
  readonly #executing = new TurnoverSet<string>();
  #recovering = true;

  constructor(config: ParticipantConfig) {
    assert(config.inDoubtQueryAfterMs > 0, 'in-doubt query delay is positive');
    this.#config = config;
  }

  get inDoubtCount(): number {
    return this.#inDoubt.size;
  }

  /**
   * Whether this transaction voted YES here and is not decided yet. Such a transaction's barrier
   * holds its YES vote and no decision, so the shell need not read it back for a decision.
   */
  isInDoubt(txId: string): boolean {
    return this.#inDoubt.has(txId);
  }

  step(input: ParticipantInput): ParticipantEffect[] {
    switch (input.kind) {
      case 'in-doubt-recovered':
        assert(this.#recovering, 'in-doubt transactions are replayed before recovery finishes');
        // Ask at once when recovery finishes: the decision may have been sent while we were down.
        this.#inDoubt.set(input.txId, { nextQueryAt: 0, queryAttempts: 0 });
        return [];
      case 'recovery-finished':
        assert(this.#recovering, 'recovery finishes once');
        this.#recovering = false;
        return this.#onTick(input.now);
      default:
        assert(!this.#recovering, `${input.kind} before recovery finished`);
    }
    switch (input.kind) {
      case 'message-received':
        return this.#onMessage(input.requestRef, input.message, input.stored);
      case 'prepared-locally':
        return this.#onPrepared(input.now, input.requestRef, input.txId, input.vote, input.reason);
      case 'decision-applied':
        return this.#onApplied(input.requestRef, input.txId, input.decision);
      case 'local-failed':
        return this.#onLocalFailed(input.requestRef, input.txId, input.error);
      case 'status-received':
        return this.#onStatus(input.txId, input.state);
      case 'status-failed':
        return [];
      case 'tick':
        return this.#onTick(input.now);
      default:
        return unreachable(input, 'participant input');
    }
  }

  /**
   * When the next in-doubt query is due. A transaction whose decision is being applied is not
   * queried (`#onTick` skips it), so it sets no deadline: while the shell holds its decision back
   * for the next PREPARE's write, a deadline already past would wake the shell for nothing, again
   * and again, until the write.
   */
  nextDeadline(): number | undefined {
    let earliest: number | undefined;
    for (const [txId, entry] of this.#inDoubt) {
      if (this.#executing.has(txId)) continue;
      if (earliest === undefined || entry.nextQueryAt < earliest) earliest = entry.nextQueryAt;
    }
    return earliest;
  }

  #onMessage(
    requestRef: RequestRef,
    message: ParticipantMessage,
    stored: StoredStatus | undefined,
  ): ParticipantEffect[] {
    const { txId } = message;
    // A duplicate that arrives while the first copy is being executed is dropped: the sender
    // re-sends until it gets an answer, and the barrier would refuse a second execution anyway.
    if (this.#executing.has(txId)) return [];
    if (message.kind === 'prepare') {
      // Test-only mutation: see test/sim/mutations.ts
      const forget = stored?.status === 'aborted' && this.#mutated('prepare-after-abort-is-new');
      if (stored === undefined || forget) {
        this.#executing.add(txId);
        // Test-only mutation: see test/sim/mutations.ts
        const early = this.#mutated('reply-yes-before-durable')
          ? [this.#reply(requestRef, { kind: 'vote', txId, vote: 'yes' })]
          : [];
        return [...early, { kind: 'prepare-locally', requestRef, txId, payment: message.payment }];
      }
      // Test-only mutation: see test/sim/mutations.ts
      if (stored.status === 'forgotten' && this.#mutated('forgotten-prepare-votes-yes')) {
        return [this.#reply(requestRef, { kind: 'vote', txId, vote: 'yes' })];
      }
      return [this.#reply(requestRef, voteFromStored(txId, stored))];
    }
    const { decision } = message;
    const status = stored?.status ?? 'unknown';
    if (status === 'voted-yes' || (status === 'unknown' && decision === 'abort')) {
      this.#executing.add(txId);
      return [{ kind: 'apply-decision', requestRef, txId, decision }];
    }
    const settled = decision === 'commit' ? 'committed' : 'aborted';
    const done = status === settled || status === 'forgotten';
    if (done || (status === 'voted-no' && decision === 'abort')) {
      return [this.#reply(requestRef, { kind: 'ack', txId, decision })];
    }
    const text = `${decision} for a transaction that is ${status} here`;
    return [
      {
        kind: 'reply',
        requestRef,
        reply: { v: 1, kind: 'error', code: 'invalid-request', message: text },
      },
    ];
  }

  #onPrepared(
    now: number,
    requestRef: RequestRef,
    txId: string,
    vote: 'yes' | 'no',
    reason: string | undefined,
  ): ParticipantEffect[] {
    assert(this.#executing.delete(txId), `prepare of ${txId} was being executed`);
    if (vote === 'yes') {
      const nextQueryAt = now + this.#config.inDoubtQueryAfterMs;
      this.#inDoubt.set(txId, { nextQueryAt, queryAttempts: 0 });
      return [this.#reply(requestRef, { kind: 'vote', txId, vote })];
    }
    return [this.#reply(requestRef, { kind: 'vote', txId, vote, reason: reason ?? 'refused' })];
  }

  #onApplied(
    requestRef: RequestRef | undefined,
    txId: string,
    decision: Decision,
  ): ParticipantEffect[] {
    this.#executing.delete(txId);
    this.#inDoubt.delete(txId);
    if (requestRef === undefined) return [];
    return [this.#reply(requestRef, { kind: 'ack', txId, decision })];
  }

  /**
   * Nothing of the step is durable, so it is as if its message had been lost: no longer being
   * executed, a copy the sender re-sends is executed anew. A prepare was never in doubt; a
   * decision's transaction still is, and is queried when its time comes.
   */
  #onLocalFailed(
    requestRef: RequestRef | undefined,
    txId: string,
    error: string,
  ): ParticipantEffect[] {
    assert(this.#executing.delete(txId), `the failed step of ${txId} was being executed`);
    if (requestRef === undefined) return [];
    const reply = { v: 1, kind: 'error', code: 'unavailable', message: error } as const;
    return [{ kind: 'reply', requestRef, reply }];
  }

  #onStatus(txId: string, state: TransactionState): ParticipantEffect[] {
    if (!this.#inDoubt.has(txId) || this.#executing.has(txId)) return [];
    if (state === 'preparing') return [];
    this.#executing.add(txId);
    const decision: Decision = state === 'committed' ? 'commit' : 'abort';
    return [{ kind: 'apply-decision', requestRef: undefined, txId, decision }];
  }

  #onTick(now: number): ParticipantEffect[] {
    const effects: ParticipantEffect[] = [];
    for (const [txId, entry] of this.#inDoubt) {
      if (now < entry.nextQueryAt || this.#executing.has(txId)) continue;
      entry.queryAttempts += 1;
      const { inDoubtQueryAfterMs: min, inDoubtQueryMsMax: max } = this.#config;
      entry.nextQueryAt = now + Math.min(max, min * 2 ** Math.min(entry.queryAttempts - 1, 20));
      effects.push({ kind: 'query-status', txId });
    }
    return effects;
  }

  /** Test-only mutation: see test/sim/mutations.ts */
  #mutated(name: string): boolean {
    return this.#config.mutations?.has(name) === true;
  }

  #reply(
    requestRef: RequestRef,
    body:
      | { kind: 'vote'; txId: string; vote: 'yes' }
      | { kind: 'vote'; txId: string; vote: 'no'; reason: string }
      | { kind: 'ack'; txId: string; decision: Decision },
  ): ParticipantEffect {
    return { kind: 'reply', requestRef, reply: { v: 1, participant: this.#config.name, ...body } };
  }
}

function voteFromStored(
  txId: string,
  stored: StoredStatus,
):
  | { kind: 'vote'; txId: string; vote: 'yes' }
  | { kind: 'vote'; txId: string; vote: 'no'; reason: string } {
  switch (stored.status) {
    case 'voted-yes':
    case 'committed':
      return { kind: 'vote', txId, vote: 'yes' };
    case 'voted-no':
      return { kind: 'vote', txId, vote: 'no', reason: stored.reason };
    case 'aborted':
      return { kind: 'vote', txId, vote: 'no', reason: 'transaction already aborted here' };
    case 'forgotten':
      return {
        kind: 'vote',
        txId,
        vote: 'no',
        reason: 'transaction older than the barrier retention',
      };
    default:
      return unreachable(stored, 'stored status');
  }
}
