/**
 * The properties every run must keep, checked as the run goes (at every step that could break
 * one) and, for liveness, once at the end.
 *
 * Safety, at every step:
 * - Atomicity: no transaction is committed at one participant and aborted at another, or applied
 *   against the coordinator's durable decision.
 * - A YES voter never decides alone: it applies only a decision the coordinator issued, in a
 *   decision message or a status answer (where `unknown` is the presumed ABORT).
 * - Write-ahead: a YES vote is durable before the coordinator hears it, and a decision is durable
 *   in the journal before a participant or a client hears it.
 * - Idempotency: a (client, key) is claimed again only by a payment begun more than the key
 *   retention after the key's last payment durably completed (never, without a retention), so
 *   within the retention at most one transaction per key reaches a participant; every answer
 *   naming one transaction is the same; a request whose payment differs from the key's payment is
 *   never answered with that payment's outcome (it gets `key-mismatch`).
 * - Money: at every participant the balances sum to the opening total, and no account holds more
 *   than its balance or less than nothing.
 *
 * Liveness, after healing and the quiet period: every payment is decided and completed, every
 * participant applied the decision (nothing in doubt, no hold left), every client intent answered.
 */
import type { Decision, OutcomeReply, ParticipantName, PayReply } from '../../common/protocol.ts';
import type { JournalRecord, StatusQuery } from '../../coordinator/core/types.ts';
import type { StatusReply } from '../../common/protocol.ts';
import { keyOf, type SimJournal } from './journal.ts';
import type { SimBarrier, SimLedger } from './storage.ts';
import type { ViolationKind } from './world.ts';

/** The part of the world the checker reads. */
export interface CheckedWorld {
  readonly journal: SimJournal;
  barrierOf(participant: ParticipantName): SimBarrier;
  fail(kind: ViolationKind, message: string): void;
}

/** A client's request as the checker needs to judge its answer. */
export interface AskedPayment {
  readonly clientId: string;
  readonly idempotencyKey: string;
  readonly fingerprint: string;
}

interface BeginFacts {
  readonly key: string;
  readonly fingerprint: string;
}

export interface LivenessView {
  readonly coordinatorInFlight: number | undefined;
  readonly participants: readonly {
    readonly name: ParticipantName;
    readonly inDoubt: number | undefined;
    readonly barrier: SimBarrier;
    readonly ledger: SimLedger;
  }[];
  readonly unanswered: readonly string[];
}

export class Checker {
  readonly #world: CheckedWorld;
  readonly #begins = new Map<string, BeginFacts>();
  /** Every transaction that durably claimed a key, oldest first: more than one once it expired. */
  readonly #claims = new Map<string, string[]>();
  readonly #completedAt = new Map<string, number>();
  /** The latest transaction of each key that reached a participant. */
  readonly #executedByKey = new Map<string, string>();
  readonly #decided = new Map<string, Decision>();
  readonly #applied = new Map<string, { participant: ParticipantName; decision: Decision }>();
  readonly #issued = new Set<string>();
  /** The first outcome answered for each transaction. */
  readonly #answers = new Map<string, string>();

  constructor(world: CheckedWorld) {
    this.#world = world;
  }

  /** A journal record became durable (SimJournal tells, in log order). */
  onRecordDurable(record: JournalRecord): void {
    if (record.kind === 'begin') this.onBeginDurable(record);
    else if (record.kind === 'decided') this.onDecisionDurable(record.txId, record.decision);
    else this.onCompletedDurable(record);
  }

  /**
   * A begin record is durable: its key is claimed for this transaction. A key already claimed
   * may be claimed again only once its last payment expired: completed durably, more than the
   * retention before this one began.
   */
  onBeginDurable(record: Extract<JournalRecord, { kind: 'begin' }>): void {
    const key = keyOf(record.clientId, record.idempotencyKey);
    this.#begins.set(record.txId, { key, fingerprint: record.fingerprint });
    const claims = this.#claims.get(key);
    if (claims === undefined) {
      this.#claims.set(key, [record.txId]);
      return;
    }
    const last = claims.at(-1) as string;
    claims.push(record.txId);
    const completedAt = this.#completedAt.get(last);
    const { retentionMs } = this.#world.journal;
    if (
      completedAt === undefined ||
      retentionMs === undefined ||
      record.createdAt - completedAt <= retentionMs
    ) {
      const completed = completedAt === undefined ? 'not completed' : `completed at ${completedAt}`;
      this.#fail(
        'key-executed-twice',
        `key ${key} claimed by ${record.txId} at ${record.createdAt}, ` +
          `but ${last} had it (${completed}, retention ${retentionMs ?? 'none'})`,
      );
    }
  }

  onCompletedDurable(record: Extract<JournalRecord, { kind: 'completed' }>): void {
    if (!this.#completedAt.has(record.txId)) this.#completedAt.set(record.txId, record.completedAt);
  }

  onDecisionDurable(txId: string, decision: Decision): void {
    this.#decided.set(txId, decision);
    const applied = this.#applied.get(txId);
    if (applied !== undefined && applied.decision !== decision) {
      this.#fail(
        'atomicity',
        `${txId}: ${applied.participant} applied ${applied.decision}, ` +
          `the coordinator durably decided ${decision}`,
      );
    }
  }

  /** The coordinator told someone the decision (`unknown` status answers count as ABORT). */
  onDecisionIssued(txId: string, decision: Decision): void {
    this.#issued.add(`${txId}:${decision}`);
  }

  /**
   * A participant sends a vote: a YES only with its `prepare/yes` row durable, a NO with a
   * prepare row (or a forgotten transaction, which the watermark answers without one).
   */
  onVoteSent(participant: ParticipantName, txId: string, vote: 'yes' | 'no'): void {
    this.#checkVote(`${participant} sent`, participant, txId, vote);
  }

  /**
   * The coordinator hears a vote: the same check, against the voter's barrier now. A finished
   * transaction may have been forgotten since its vote left (barrier expiry); `onVoteSent` checked
   * that vote when it was sent.
   */
  onVoteHeard(participant: ParticipantName, txId: string, vote: 'yes' | 'no'): void {
    if (this.#world.barrierOf(participant).status(txId)?.status === 'forgotten') return;
    this.#checkVote(`the coordinator heard ${participant}`, participant, txId, vote);
  }

  #checkVote(who: string, participant: ParticipantName, txId: string, vote: 'yes' | 'no'): void {
    const barrier = this.#world.barrierOf(participant);
    const stored = barrier.prepareOutcome(txId);
    const forgotten = barrier.status(txId)?.status === 'forgotten';
    if (vote === 'yes' ? stored !== 'yes' : stored === undefined && !forgotten) {
      this.#fail(
        'not-durable',
        `${who} vote ${vote} on ${txId}, but its barrier holds ${stored ?? 'no prepare row'}`,
      );
    }
  }

  onDecisionHeard(listener: string, txId: string, decision: Decision): void {
    const durable = this.#world.journal.durableDecision(txId);
    if (durable !== decision) {
      this.#fail(
        'not-durable',
        `${listener} heard ${decision} for ${txId}, ` +
          `but the journal's durable decision is ${durable ?? 'none'}`,
      );
    }
  }

  onPrepareExecuted(participant: ParticipantName, txId: string): void {
    const begin = this.#begins.get(txId);
    if (begin === undefined) {
      this.#fail('not-durable', `${participant} prepared ${txId}, which has no durable begin`);
      return;
    }
    const latest = this.#executedByKey.get(begin.key);
    if (latest === undefined || latest === txId) {
      this.#executedByKey.set(begin.key, txId);
      return;
    }
    // Another transaction of the key: only a later claim, made once the key expired.
    const claims = this.#claims.get(begin.key) ?? [];
    if (claims.indexOf(txId) > claims.indexOf(latest)) {
      this.#executedByKey.set(begin.key, txId);
      return;
    }
    this.#fail(
      'key-executed-twice',
      `key ${begin.key} reached ${participant} as ${latest} and again as ${txId}`,
    );
  }

  onDecisionApplied(
    participant: ParticipantName,
    txId: string,
    decision: Decision,
    votedYes: boolean,
  ): void {
    if (votedYes && !this.#issued.has(`${txId}:${decision}`)) {
      this.#fail(
        'decided-alone',
        `${participant} voted YES on ${txId} and applied ${decision}, ` +
          `which the coordinator never issued`,
      );
    }
    const decided = this.#decided.get(txId);
    if (decided !== undefined && decided !== decision) {
      this.#fail(
        'atomicity',
        `${participant} applied ${decision} to ${txId}, ` +
          `the coordinator durably decided ${decided}`,
      );
    }
    const applied = this.#applied.get(txId);
    if (applied === undefined) this.#applied.set(txId, { participant, decision });
    else if (applied.decision !== decision) {
      this.#fail(
        'atomicity',
        `${txId}: ${applied.participant} applied ${applied.decision}, ` +
          `${participant} applied ${decision}`,
      );
    }
  }

  onLedgerChanged(participant: ParticipantName, ledger: SimLedger): void {
    const problem = ledger.conservationProblem();
    if (problem !== undefined) this.#fail('money', `${participant}: ${problem}`);
  }

  /**
   * Judges a client's answer. Returns whether it settles the intent: an outcome, or a key
   * mismatch (the key belongs to another payment); anything else means "retry".
   */
  onPayAnswer(asked: AskedPayment, reply: PayReply): boolean {
    const key = keyOf(asked.clientId, asked.idempotencyKey);
    if (reply.kind === 'error') return this.#onPayError(asked, key, reply.code);
    if (!this.#answerNamesKey(asked, key, reply.txId)) return false;
    if (reply.kind === 'in-progress') return false;
    this.onDecisionHeard(`client ${asked.clientId}`, reply.txId, decisionOf(reply));
    this.#sameAnswer(reply.txId, summaryOf(reply));
    return true;
  }

  onStatusAnswer(asker: string, query: StatusQuery, reply: StatusReply): void {
    if (reply.state === 'unknown' || reply.state === 'preparing' || reply.txId === null) return;
    const decision = reply.state === 'committed' ? 'commit' : 'abort';
    this.onDecisionHeard(asker, reply.txId, decision);
    if ('txId' in query) return;
    const key = keyOf(query.clientId, query.idempotencyKey);
    const begin = this.#begins.get(reply.txId);
    if (begin?.key !== key) {
      this.#fail('wrong-answer', `status of key ${key} named ${reply.txId} of another key`);
      return;
    }
    const answer = this.#answers.get(reply.txId);
    if (answer !== undefined && !answer.startsWith(`${reply.txId} ${reply.state} `)) {
      this.#fail(
        'wrong-answer',
        `key ${key}: status ${reply.txId} ${reply.state}, but the outcome was ${answer}`,
      );
    }
  }

  checkLiveness(view: LivenessView): void {
    if (view.coordinatorInFlight !== 0) {
      const inFlight = view.coordinatorInFlight ?? 'the coordinator is down';
      this.#fail('liveness', `after the quiet period: in flight at the coordinator: ${inFlight}`);
      return;
    }
    for (const entry of this.#world.journal.transactions()) {
      if (entry.decided === undefined || !entry.completed) {
        const state = entry.decided === undefined ? 'undecided' : 'not completed';
        this.#fail('liveness', `${entry.begin.txId} is ${state} after the quiet period`);
        return;
      }
    }
    for (const participant of view.participants) {
      if (!this.#participantSettled(participant)) return;
    }
    if (view.unanswered.length > 0) {
      this.#fail('liveness', `intents never answered: ${view.unanswered.join('; ')}`);
    }
  }

  #participantSettled(participant: LivenessView['participants'][number]): boolean {
    const { name, barrier, ledger } = participant;
    if (participant.inDoubt !== 0) {
      this.#fail('liveness', `${name} is down or in doubt: ${participant.inDoubt ?? 'down'}`);
      return false;
    }
    for (const [txId, rows] of barrier.entries()) {
      const decided = this.#world.journal.durableDecision(txId);
      const inDoubt = rows.prepare?.outcome === 'yes' && !rows.commit && !rows.abort;
      if (inDoubt || (decided === 'commit' && !rows.commit)) {
        this.#fail('liveness', `${name} never applied ${decided ?? 'a decision'} to ${txId}`);
        return false;
      }
    }
    if (ledger.heldMinor() !== 0) {
      this.#fail('liveness', `${name} still holds ${ledger.heldMinor()} after the quiet period`);
      return false;
    }
    return true;
  }

  #onPayError(asked: AskedPayment, key: string, code: string): boolean {
    if (code === 'overloaded') return false;
    // The key's payment when the answer was made: a claim that may have expired since.
    const claims = (this.#claims.get(key) ?? []).map((txId) => ({
      txId,
      fingerprint: this.#begins.get(txId)?.fingerprint,
    }));
    if (code === 'key-mismatch' && claims.some((c) => c.fingerprint !== asked.fingerprint)) {
      return true;
    }
    const claimed =
      claims.length === 0 ? 'missing' : claims.map((c) => `${c.txId} with ${c.fingerprint}`);
    this.#fail('wrong-answer', `key ${key} was answered ${code}; its claims: ${String(claimed)}`);
    return false;
  }

  /** The answer must name a transaction of this key started for this very payment. */
  #answerNamesKey(asked: AskedPayment, key: string, txId: string): boolean {
    const begin = this.#begins.get(txId);
    if (begin?.key !== key) {
      this.#fail('wrong-answer', `key ${key} was answered with ${txId} of ${begin?.key ?? 'none'}`);
      return false;
    }
    if (begin.fingerprint !== asked.fingerprint) {
      this.#fail(
        'mismatch-executed',
        `key ${key} was reused for ${asked.fingerprint} and ` +
          `answered with ${txId}, the transaction of ${begin.fingerprint}`,
      );
      return false;
    }
    return true;
  }

  #sameAnswer(txId: string, summary: string): void {
    const first = this.#answers.get(txId);
    if (first === undefined) this.#answers.set(txId, summary);
    else if (first !== summary) {
      this.#fail('wrong-answer', `${txId} answered ${first}, later ${summary}`);
    }
  }

  #fail(kind: ViolationKind, message: string): void {
    this.#world.fail(kind, message);
  }
}

function decisionOf(reply: OutcomeReply): Decision {
  return reply.outcome === 'committed' ? 'commit' : 'abort';
}

/** Everything an outcome says except `replay`, which is meant to differ between answers. */
function summaryOf(reply: OutcomeReply): string {
  const { txId, outcome, abortedBy, reason, receipt } = reply;
  return `${txId} ${outcome} ${abortedBy ?? '-'} ${receipt ?? '-'} ${reason ?? '-'}`;
}
