/**
 * The coordinator's two-phase commit, presumed-abort variant, as a deterministic state machine.
 *
 * Theory of operation. A payment becomes a transaction: `begin` is journaled (forced) before any
 * PREPARE leaves, so after a crash the coordinator knows whom to tell. Votes are collected until
 * the deadline. The decision is journaled (forced) before anyone hears it: COMMIT only if every
 * participant voted YES, ABORT otherwise. Then the client gets its answer and the participants get
 * the decision, re-sent with backoff until each acknowledges; the transaction is then `completed`
 * (not forced: losing it only means re-sending a decision that is already applied) and leaves
 * memory. A participant that voted NO has already aborted and is not told again.
 *
 * The machine owns its state and mutates it in place for speed (thousands of transactions per
 * second); every handler checks before it changes anything, so a throw leaves the state as it was.
 * It does no IO: time, fresh ids and journal lookups arrive in the inputs, and it answers with
 * effects that the shell carries out in order. Recovery is the same code: the shell replays the
 * journal's records for unfinished transactions, then says `recovery-finished`.
 *
 * Transition table (phase of a transaction, input -> effects, next phase):
 *
 *   (none)      pay-requested, new key   -> journal begin (forced), send PREPARE*     preparing
 *   preparing   vote YES, not all in     -> (nothing)                                  preparing
 *   preparing   vote YES, all in         -> journal COMMIT (forced), reply, send COMMIT committing
 *   preparing   vote NO                  -> journal ABORT (forced), reply, send ABORT   aborting
 *   preparing   tick past deadline       -> journal ABORT (forced), reply, send ABORT   aborting
 *   preparing   tick past resend time    -> send PREPARE to those who have not voted   preparing
 *   committing/aborting  ack, all in     -> journal completed (not forced)             (gone)
 *   committing/aborting  tick past resend time -> re-send decision, back off           same
 *   any         duplicate or stale vote/ack -> (nothing)                               same
 *   recovery: begin without decision     -> journal ABORT (forced), send ABORT*         aborting
 *   recovery: begin with decision        -> re-send the decision                       same
 *   any         status query             -> reply state (a client asking by id about   same
 *                                           another client's transaction: unknown)
 */
import { assert, unreachable } from '../../common/assert.ts';
import { TurnoverMap } from '../../common/turnover-map.ts';
import { DueQueue } from './due-queue.ts';
import {
  paymentFingerprint,
  paymentTimeoutMsDefault,
  receiptFor,
  type AbortSource,
  type Decision,
  type OutcomeReply,
  type ParticipantName,
  type Payment,
  type InProgressReply,
  type PayReply,
  type PayRequest,
  type StatusReply,
} from '../../common/protocol.ts';
import type {
  CoordinatorConfig,
  CoordinatorEffect,
  CoordinatorInput,
  JournalRecord,
  RequestRef,
  StatusQuery,
  StoredPayment,
  TransactionView,
} from './types.ts';

interface DecisionState {
  readonly decision: Decision;
  readonly abortedBy?: AbortSource;
  readonly reason?: string;
}

interface Transaction {
  readonly txId: string;
  readonly clientId: string;
  readonly idempotencyKey: string;
  readonly fingerprint: string;
  readonly payment: Payment;
  readonly participants: readonly ParticipantName[];
  readonly createdAt: number;
  readonly deadlineAt: number;
  readonly votes: Map<ParticipantName, 'yes' | 'no'>;
  /** Participants that must acknowledge the decision: everyone that did not vote NO. */
  readonly awaitingAck: Set<ParticipantName>;
  decided: DecisionState | undefined;
  sendAttempts: number;
  nextSendAt: number;
  lastError: string | undefined;
  waiters: Waiter[];
}

/** A request waiting for a transaction's outcome, until `until` if the caller gave a wait. */
interface Waiter {
  readonly requestRef: RequestRef;
  readonly until: number | undefined;
}

/** A journal record sequence that correct code cannot have written. */
export class RecoveryRejectedError extends Error {
  override readonly name = 'RecoveryRejectedError';
}

export class CoordinatorMachine {
  readonly #config: CoordinatorConfig;
  readonly #transactions = new TurnoverMap<string, Transaction>();
  /** In-flight transactions by client and idempotency key. */
  readonly #byKey = new TurnoverMap<string, string>();
  /** When each transaction next has something to do: see DueQueue for its stale entries. */
  readonly #due = new DueQueue();
  #recovering = true;

  constructor(config: CoordinatorConfig) {
    assert(config.participants.length > 0, 'at least one participant');
    assert(config.decisionResendMsMin <= config.decisionResendMsMax, 'resend bounds ordered');
    this.#config = config;
  }

  isInFlight(txId: string): boolean {
    return this.#transactions.has(txId);
  }

  get inFlightCount(): number {
    return this.#transactions.size;
  }

  step(input: CoordinatorInput): CoordinatorEffect[] {
    switch (input.kind) {
      case 'record-recovered':
        assert(this.#recovering, 'records are replayed only before recovery finishes');
        this.#replay(input.record);
        return [];
      case 'recovery-finished':
        return this.#finishRecovery(input.now);
      default:
        assert(!this.#recovering, `${input.kind} before recovery finished`);
    }
    switch (input.kind) {
      case 'pay-requested':
        return this.#onPay(input.now, input.requestRef, input.request, input.newTxId, input.stored);
      case 'status-requested':
        return this.#onStatus(input.requestRef, input.query, input.stored);
      case 'vote-received':
        return this.#onVote(input.now, input.txId, input.participant, input.vote, input.reason);
      case 'ack-received':
        return this.#onAck(input.now, input.txId, input.participant, input.decision);
      case 'send-failed':
        return this.#onSendFailed(input.txId, input.error);
      case 'tick':
        return this.#onTick(input.now);
      default:
        return unreachable(input, 'coordinator input');
    }
  }

  /** The earliest time at which a `tick` has something to do, if any. */
  nextDeadline(): number | undefined {
    this.#compactDue();
    for (;;) {
      const entry = this.#due.peek();
      if (entry === undefined) return undefined;
      const tx = this.#transactions.get(entry.txId);
      if (tx === undefined) {
        this.#due.take();
        continue;
      }
      const at = dueAt(tx);
      assert(at >= entry.at, `transaction ${tx.txId} has an entry no later than its time`);
      if (at === entry.at) return at;
      // The transaction's time moved later: this entry is stale, the time it names is not.
      this.#due.take();
      this.#due.add(at, tx.txId);
    }
  }

  /** In-flight transactions, oldest first, for operators and the status endpoint. */
  inspect(now: number): TransactionView[] {
    return [...this.#transactions.values()].map((tx) => ({
      txId: tx.txId,
      idempotencyKey: tx.idempotencyKey,
      phase: phaseOf(tx),
      ageMs: now - tx.createdAt,
      sendAttempts: tx.sendAttempts,
      waitingFor: tx.decided
        ? [...tx.awaitingAck]
        : tx.participants.filter((name) => !tx.votes.has(name)),
      lastError: tx.lastError,
    }));
  }

  // -------------------------------------------------------------------------------------------
  // Client requests.

  #onPay(
    now: number,
    requestRef: RequestRef,
    request: PayRequest,
    newTxId: string,
    stored: StoredPayment | undefined,
  ): CoordinatorEffect[] {
    const fingerprint = paymentFingerprint(request.payment);
    const inFlightId = this.#byKey.get(keyOf(request.clientId, request.idempotencyKey));
    const tx = inFlightId === undefined ? undefined : this.#transactions.get(inFlightId);
    if (tx) {
      if (this.#differs(tx.fingerprint, fingerprint)) {
        return [mismatch(requestRef, request.idempotencyKey)];
      }
      if (tx.decided) return [replyEffect(requestRef, outcomeReply(tx, tx.decided, true))];
      return this.#wait(now, tx, requestRef, request.waitMs);
    }
    if (stored) {
      if (this.#differs(stored.fingerprint, fingerprint)) {
        return [mismatch(requestRef, request.idempotencyKey)];
      }
      // Every undecided transaction in the journal is in memory after recovery, so a stored
      // entry that is not in flight here must carry its decision.
      assert(stored.decided, `stored transaction ${stored.txId} is undecided but not in flight`);
      return [replyEffect(requestRef, outcomeReply(stored, stored.decided, true))];
    }
    if (this.#transactions.size >= this.#config.inFlightMax) {
      return [replyEffect(requestRef, errorOf('overloaded', 'too many payments in flight'))];
    }
    return this.#begin(now, requestRef, request, newTxId, fingerprint);
  }

  #begin(
    now: number,
    requestRef: RequestRef,
    request: PayRequest,
    txId: string,
    fingerprint: string,
  ): CoordinatorEffect[] {
    assert(!this.#transactions.has(txId), `fresh transaction id ${txId} is fresh`);
    const record: JournalRecord = {
      kind: 'begin',
      txId,
      clientId: request.clientId,
      idempotencyKey: request.idempotencyKey,
      fingerprint,
      payment: request.payment,
      participants: this.#config.participants,
      createdAt: now,
      deadlineAt: now + (request.timeoutMs ?? paymentTimeoutMsDefault),
    };
    const tx = this.#add(record, now + this.#config.prepareResendMs);
    tx.sendAttempts = 1;
    return [
      { kind: 'journal', record, forced: true },
      ...prepares(tx, tx.participants),
      ...this.#wait(now, tx, requestRef, request.waitMs),
    ];
  }

  /**
   * Makes a request wait for the transaction's outcome, or answers "in progress" at once when
   * the caller will not wait or too many requests already wait (a retry storm on one key).
   */
  #wait(
    now: number,
    tx: Transaction,
    requestRef: RequestRef,
    waitMs: number | undefined,
  ): CoordinatorEffect[] {
    if (waitMs === 0 || tx.waiters.length >= this.#config.waitersPerTransactionMax) {
      return [replyEffect(requestRef, inProgressReply(now, tx))];
    }
    tx.waiters.push({ requestRef, until: waitMs === undefined ? undefined : now + waitMs });
    if (waitMs !== undefined) this.#schedule(tx);
    return [];
  }

  #onStatus(
    requestRef: RequestRef,
    query: StatusQuery,
    stored: StoredPayment | undefined,
  ): CoordinatorEffect[] {
    const txId =
      'txId' in query ? query.txId : this.#byKey.get(keyOf(query.clientId, query.idempotencyKey));
    const tx = txId === undefined ? undefined : this.#transactions.get(txId);
    const found = tx ?? stored;
    // A client sees only its own transactions: another client's is answered as if unknown, the
    // same answer as for an id nobody used, so the reply tells it nothing.
    const known =
      query.clientId === undefined || found?.clientId === query.clientId ? found : undefined;
    let reply: StatusReply;
    if (!known) {
      // Presumed abort: begin is forced before any PREPARE, so a transaction the journal does not
      // know was never prepared anywhere, or was aborted. A participant treats this as ABORT.
      reply = { v: 1, kind: 'status', txId: 'txId' in query ? query.txId : null, state: 'unknown' };
    } else if (!known.decided) {
      reply = { v: 1, kind: 'status', txId: known.txId, state: 'preparing' };
    } else {
      const { decision, abortedBy, reason } = known.decided;
      reply = {
        v: 1,
        kind: 'status',
        txId: known.txId,
        state: decision === 'commit' ? 'committed' : 'aborted',
        ...(abortedBy === undefined ? {} : { abortedBy }),
        ...(reason === undefined ? {} : { reason }),
      };
    }
    return [replyEffect(requestRef, reply)];
  }

  // -------------------------------------------------------------------------------------------
  // Participants' answers.

  #onVote(
    now: number,
    txId: string,
    participant: ParticipantName,
    vote: 'yes' | 'no',
    reason: string | undefined,
  ): CoordinatorEffect[] {
    const tx = this.#transactions.get(txId);
    // Votes for transactions already decided or gone are stale duplicates; the decision stands.
    if (!tx || tx.decided || tx.votes.has(participant)) return [];
    if (!tx.participants.includes(participant)) return [];
    // The deadline is strict: a vote that arrives after it, even before the next tick, is late.
    if (now >= tx.deadlineAt) return this.#abortAtDeadline(now, tx);
    tx.votes.set(participant, vote);
    if (vote === 'no') {
      return this.#decide(now, tx, {
        decision: 'abort',
        abortedBy: participant,
        reason: reason ?? 'voted no',
      });
    }
    if (tx.votes.size < tx.participants.length) return [];
    return this.#decide(now, tx, { decision: 'commit' });
  }

  #onAck(
    now: number,
    txId: string,
    participant: ParticipantName,
    decision: Decision,
  ): CoordinatorEffect[] {
    const tx = this.#transactions.get(txId);
    if (!tx?.decided || tx.decided.decision !== decision) return [];
    if (!tx.awaitingAck.delete(participant)) return [];
    return tx.awaitingAck.size === 0 ? this.#complete(now, tx) : [];
  }

  #onSendFailed(txId: string, error: string): CoordinatorEffect[] {
    const tx = this.#transactions.get(txId);
    if (tx) tx.lastError = error;
    return [];
  }

  /** Handles every transaction with an entry due by now, each once, earliest first. */
  #onTick(now: number): CoordinatorEffect[] {
    const due = new Map<string, Transaction>();
    for (let entry = this.#due.peek(); entry && entry.at <= now; entry = this.#due.peek()) {
      this.#due.take();
      const tx = this.#transactions.get(entry.txId);
      if (tx) due.set(tx.txId, tx);
    }
    const effects: CoordinatorEffect[] = [];
    for (const tx of due.values()) {
      if (!tx.decided && now >= tx.deadlineAt) {
        effects.push(...this.#abortAtDeadline(now, tx));
      } else if (now >= tx.nextSendAt) {
        effects.push(...this.#resend(now, tx));
      }
      if (!tx.decided) effects.push(...expireWaiters(now, tx));
      // Its entries due by now are taken: it needs one for its next time, if still in flight.
      if (this.#transactions.has(tx.txId)) this.#schedule(tx);
    }
    return effects;
  }

  #abortAtDeadline(now: number, tx: Transaction): CoordinatorEffect[] {
    const silent = tx.participants.filter((name) => !tx.votes.has(name));
    const reason = `deadline passed without a vote from ${silent.join(', ')}`;
    return this.#decide(now, tx, { decision: 'abort', abortedBy: 'coordinator', reason });
  }

  #resend(now: number, tx: Transaction): CoordinatorEffect[] {
    tx.sendAttempts += 1;
    if (!tx.decided) {
      tx.nextSendAt = now + this.#config.prepareResendMs;
      return prepares(
        tx,
        tx.participants.filter((name) => !tx.votes.has(name)),
      );
    }
    tx.nextSendAt = now + this.#backoffMs(tx.txId, tx.sendAttempts);
    return decisions(tx, tx.decided.decision);
  }

  /**
   * Exponential backoff with jitter between the configured bounds. The jitter is a hash of the
   * transaction id and attempt, not a random draw, so the machine stays deterministic while
   * re-sends of many transactions still spread out.
   */
  #backoffMs(txId: string, attempt: number): number {
    const { decisionResendMsMin: min, decisionResendMsMax: max } = this.#config;
    const ceiling = Math.min(max, min * 2 ** Math.min(attempt - 1, 30));
    return Math.max(min, Math.round(ceiling * (0.5 + 0.5 * hashFraction(`${txId}:${attempt}`))));
  }

  // -------------------------------------------------------------------------------------------
  // Decisions and completion.

  #decide(now: number, tx: Transaction, decided: DecisionState): CoordinatorEffect[] {
    assert(!tx.decided, `transaction ${tx.txId} is decided once`);
    tx.decided = decided;
    for (const name of tx.participants) {
      if (tx.votes.get(name) !== 'no') tx.awaitingAck.add(name);
    }
    tx.sendAttempts = 1;
    tx.nextSendAt = now + this.#backoffMs(tx.txId, 1);
    this.#schedule(tx);
    const record: JournalRecord = { kind: 'decided', txId: tx.txId, ...decided, decidedAt: now };
    const answer = outcomeReply(tx, decided, false);
    const effects: CoordinatorEffect[] = [
      // Forced even for ABORT, which presumed abort would allow to be lazy: the stored answer
      // for the key must never change, and a lost ABORT record would be re-decided on recovery
      // with a different reason.
      { kind: 'journal', record, forced: true },
      ...tx.waiters.map((waiter) => replyEffect(waiter.requestRef, answer)),
      ...decisions(tx, decided.decision),
    ];
    // Test-only mutation: see test/sim/mutations.ts
    if (this.#mutated('send-decision-before-forcing')) effects.push(...effects.splice(0, 1));
    tx.waiters = [];
    if (tx.awaitingAck.size === 0) effects.push(...this.#complete(now, tx));
    return effects;
  }

  #complete(now: number, tx: Transaction): CoordinatorEffect[] {
    this.#transactions.delete(tx.txId);
    this.#byKey.delete(keyOf(tx.clientId, tx.idempotencyKey));
    const record: JournalRecord = { kind: 'completed', txId: tx.txId, completedAt: now };
    return [{ kind: 'journal', record, forced: false }];
  }

  // -------------------------------------------------------------------------------------------
  // Recovery: replay the journal through the same transitions, then finish what was started.

  #replay(record: JournalRecord): void {
    const tx = this.#transactions.get(record.txId);
    switch (record.kind) {
      case 'begin':
        if (tx) throw new RecoveryRejectedError(`second begin for ${record.txId}`);
        this.#add(record, record.createdAt);
        return;
      case 'decided': {
        if (!tx) throw new RecoveryRejectedError(`decision for ${record.txId} without begin`);
        if (tx.decided) throw new RecoveryRejectedError(`second decision for ${record.txId}`);
        const { decision, abortedBy, reason } = record;
        tx.decided = {
          decision,
          ...(abortedBy === undefined ? {} : { abortedBy }),
          ...(reason === undefined ? {} : { reason }),
        };
        return;
      }
      case 'completed':
        if (!tx) throw new RecoveryRejectedError(`completion of ${record.txId} without begin`);
        if (!tx.decided) throw new RecoveryRejectedError(`completion of undecided ${record.txId}`);
        this.#transactions.delete(record.txId);
        this.#byKey.delete(keyOf(tx.clientId, tx.idempotencyKey));
        return;
      default:
        unreachable(record, 'journal record');
    }
  }

  #finishRecovery(now: number): CoordinatorEffect[] {
    assert(this.#recovering, 'recovery finishes once');
    this.#recovering = false;
    const effects: CoordinatorEffect[] = [];
    for (const tx of [...this.#transactions.values()]) {
      if (tx.decided) {
        // Acknowledgements are not journaled: tell every participant that may be waiting again.
        for (const name of tx.participants) tx.awaitingAck.add(name);
        tx.sendAttempts = 1;
        tx.nextSendAt = now + this.#backoffMs(tx.txId, 1);
        this.#schedule(tx);
        effects.push(...decisions(tx, tx.decided.decision));
      } else {
        const reason = 'coordinator restarted before a decision';
        effects.push(
          ...this.#decide(now, tx, { decision: 'abort', abortedBy: 'coordinator', reason }),
        );
      }
    }
    return effects;
  }

  /** Whether a request's payment differs from the one its idempotency key was first used for. */
  #differs(claimed: string, fingerprint: string): boolean {
    // Test-only mutation: see test/sim/mutations.ts
    return claimed !== fingerprint && !this.#mutated('skip-fingerprint-check');
  }

  /** Test-only mutation: see test/sim/mutations.ts */
  #mutated(name: string): boolean {
    return this.#config.mutations?.has(name) === true;
  }

  #add(record: Extract<JournalRecord, { kind: 'begin' }>, nextSendAt: number): Transaction {
    const tx: Transaction = {
      txId: record.txId,
      clientId: record.clientId,
      idempotencyKey: record.idempotencyKey,
      fingerprint: record.fingerprint,
      payment: record.payment,
      participants: record.participants,
      createdAt: record.createdAt,
      deadlineAt: record.deadlineAt,
      votes: new Map(),
      awaitingAck: new Set(),
      decided: undefined,
      sendAttempts: 0,
      nextSendAt,
      lastError: undefined,
      waiters: [],
    };
    this.#transactions.set(tx.txId, tx);
    this.#byKey.set(keyOf(tx.clientId, tx.idempotencyKey), tx.txId);
    this.#schedule(tx);
    return tx;
  }

  /**
   * Adds an entry at the transaction's current time. Called wherever that time may have moved
   * earlier; a time that moves later needs nothing, since its old entry is found stale.
   */
  #schedule(tx: Transaction): void {
    this.#due.add(dueAt(tx), tx.txId);
  }

  /** Drops the stale entries once they outnumber the transactions: O(1) per entry added. */
  #compactDue(): void {
    if (this.#due.size <= 4 * this.#transactions.size + 1_024) return;
    const entries = [...this.#transactions.values()].map((tx) => ({
      at: dueAt(tx),
      txId: tx.txId,
    }));
    this.#due.rebuild(entries);
  }
}

// ---------------------------------------------------------------------------------------------
// Pure helpers.

/** The earliest time at which a `tick` has something to do for this transaction. */
function dueAt(tx: Transaction): number {
  let due = tx.decided ? tx.nextSendAt : Math.min(tx.nextSendAt, tx.deadlineAt);
  for (const waiter of tx.waiters) {
    if (waiter.until !== undefined) due = Math.min(due, waiter.until);
  }
  return due;
}

function keyOf(clientId: string, idempotencyKey: string): string {
  return `${clientId}\u0000${idempotencyKey}`;
}

function phaseOf(tx: Transaction): TransactionView['phase'] {
  if (!tx.decided) return 'preparing';
  return tx.decided.decision === 'commit' ? 'committing' : 'aborting';
}

/** One message object for all its participants, so the shell encodes it once. */
function prepares(tx: Transaction, to: readonly ParticipantName[]): CoordinatorEffect[] {
  const message = { v: 1, kind: 'prepare', txId: tx.txId, payment: tx.payment } as const;
  return to.map((participant) => ({ kind: 'send', participant, message }));
}

function decisions(tx: Transaction, decision: Decision): CoordinatorEffect[] {
  const message = { v: 1, kind: 'decision', txId: tx.txId, decision } as const;
  return [...tx.awaitingAck].map((participant) => ({ kind: 'send', participant, message }));
}

function outcomeReply(
  tx: Pick<StoredPayment, 'txId' | 'idempotencyKey'>,
  decided: DecisionState,
  replay: boolean,
): OutcomeReply {
  const base = { v: 1, kind: 'outcome', txId: tx.txId, idempotencyKey: tx.idempotencyKey, replay };
  if (decided.decision === 'commit') {
    return { ...base, v: 1, kind: 'outcome', outcome: 'committed', receipt: receiptFor(tx.txId) };
  }
  return {
    ...base,
    v: 1,
    kind: 'outcome',
    outcome: 'aborted',
    ...(decided.abortedBy === undefined ? {} : { abortedBy: decided.abortedBy }),
    ...(decided.reason === undefined ? {} : { reason: decided.reason }),
  };
}

function inProgressReply(now: number, tx: Transaction): InProgressReply {
  // Suggest asking again when the decision is likely: soon, and no later than the deadline.
  const retryAfterMs = Math.max(0, Math.min(inProgressRetryMsMax, tx.deadlineAt - now));
  return {
    v: 1,
    kind: 'in-progress',
    txId: tx.txId,
    idempotencyKey: tx.idempotencyKey,
    retryAfterMs,
  };
}

/** Answers "in progress" to every waiter whose wait is over. */
function expireWaiters(now: number, tx: Transaction): CoordinatorEffect[] {
  const expired = tx.waiters.filter((waiter) => waiter.until !== undefined && now >= waiter.until);
  if (expired.length === 0) return [];
  tx.waiters = tx.waiters.filter((waiter) => !expired.includes(waiter));
  return expired.map((waiter) => replyEffect(waiter.requestRef, inProgressReply(now, tx)));
}

/** The longest retry hint an "in progress" answer gives. */
export const inProgressRetryMsMax = 1_000;

function replyEffect(requestRef: RequestRef, reply: PayReply | StatusReply): CoordinatorEffect {
  return { kind: 'reply', requestRef, reply };
}

function errorOf(code: 'overloaded' | 'key-mismatch', message: string) {
  return { v: 1, kind: 'error', code, message } as const;
}

function mismatch(requestRef: RequestRef, idempotencyKey: string): CoordinatorEffect {
  const message = `idempotency key ${idempotencyKey} was used for a different payment`;
  return { kind: 'reply', requestRef, reply: errorOf('key-mismatch', message) };
}

/** FNV-1a of a string, as a fraction in [0, 1). */
function hashFraction(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) / 2 ** 32;
}
