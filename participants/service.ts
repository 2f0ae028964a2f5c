/**
 * A participant's shell: it feeds the pure participant machine with messages from NATS and the
 * clock, and carries out its effects against the participant's own SQLite database.
 *
 * The barrier lives here. Every local step (a prepare with its vote, a commit, an abort) writes its
 * barrier row and its business change in one SQLite transaction; all the local steps of one batch
 * share a single SQLite transaction and so a single fsync (group commit). Replies leave only after
 * that transaction is durable: a YES vote is never sent before it would survive a crash.
 */
import type { Transaction } from 'better-sqlite3';
import { performance } from 'node:perf_hooks';
import { assert } from '../common/assert.ts';
import { DeadlineTimer, HeldBack, InputBatcher, PendingRequests } from '../common/batching.ts';
import { crashPoint } from '../common/crash.ts';
import { ValidationError } from '../common/errors.ts';
import { ulidTime, ulidTimePrefix } from '../common/ids.ts';
import { errorText, type Logger } from '../common/log.ts';
import { createTracer, type Tracer } from '../common/trace.ts';
import { deliverOrStop, type Msg, type NatsConnection } from '../common/nats.ts';
import {
  decodeParticipantDelivery,
  decodeStatusReply,
  encodeMessage,
  errorReply,
  readParticipantMessage,
  subjects,
  type BatchReplies,
  type Decision,
  type Fenced,
  type ParticipantMessage,
  type ParticipantReply,
  type Payment,
} from '../common/protocol.ts';
import {
  batchReader,
  isBusyError,
  openDatabase,
  type BatchReader,
  type SqliteDatabase,
} from '../common/sqlite.ts';
import { countCommit, serveStats, workCounters } from '../common/stats.ts';
import { TurnoverSet } from '../common/turnover-map.ts';
import { barrierPurgeIntervalMs } from './core/barrier-retention.ts';
import { decisionHoldMs, heldDecisionsMax } from './core/decision-hold.ts';
import {
  ParticipantMachine,
  type ParticipantConfig,
  type ParticipantEffect,
  type ParticipantInput,
  type StoredStatus,
} from './core/machine.ts';
import type { LocalVote, ResourceManager } from './resource-manager.ts';

export interface ParticipantServiceOptions {
  readonly nats: NatsConnection;
  readonly dbFile: string;
  readonly resourceManager: ResourceManager;
  readonly machine: ParticipantConfig;
  readonly statusTimeoutMs: number;
  /**
   * How long a finished transaction's barrier rows are kept (after its decision, or its NO vote).
   * Must exceed any payment deadline by far; days in production.
   */
  readonly barrierRetentionMs: number;
  readonly log: Logger;
  readonly now: () => number;
}

type LocalEffect = Extract<ParticipantEffect, { kind: 'prepare-locally' | 'apply-decision' }>;
type LocalResult = Extract<ParticipantInput, { kind: 'prepared-locally' | 'decision-applied' }>;
type LocalFailure = Extract<ParticipantInput, { kind: 'local-failed' }>;

/** Thrown inside a savepoint to undo whatever a prepare that voted NO may have changed. */
class VotedNo extends Error {
  readonly vote: LocalVote;
  constructor(vote: LocalVote) {
    super('voted no');
    this.vote = vote;
  }
}

const votedYes: StoredStatus = { status: 'voted-yes' };

/** Where a message's answer goes: its own reply subject, or its place in a batch's answers. */
type Respond = (reply: ParticipantReply) => void;

/**
 * The answers to one batch's elements, gathered as they come and sent together by the service's
 * #sendAnswers: those the handling of one batch of inputs produces leave as one message. An
 * element answered later (a decision held for the next PREPARE) leaves in a later message.
 */
class BatchAnswers {
  readonly #msg: Msg;
  readonly #unanswered: TurnoverSet<BatchAnswers>;
  #replies: BatchReplies['replies'][number][] = [];

  constructor(msg: Msg, unanswered: TurnoverSet<BatchAnswers>) {
    this.#msg = msg;
    this.#unanswered = unanswered;
  }

  /**
   * How the element at `index` is answered. Made here rather than written in place as
   * `const respond = (reply) => ...`, which tsx's keepNames would wrap in a call that costs about
   * 0.3 µs per element (docs/performance.md, change 42).
   */
  responder(index: number): Respond {
    return (reply) => this.add(index, reply);
  }

  add(index: number, reply: ParticipantReply): void {
    this.#replies.push({ index, reply });
    this.#unanswered.add(this);
  }

  send(): void {
    if (this.#replies.length === 0) return;
    const message: BatchReplies = { v: 1, kind: 'replies', replies: this.#replies };
    this.#replies = [];
    this.#msg.respond(encodeMessage(message));
  }
}

/** Finished transactions forgotten per purge transaction, so one purge never blocks for long. */
const purgeChunkMax = 1_000;

export class ParticipantService {
  readonly #options: ParticipantServiceOptions;
  readonly #machine: ParticipantMachine;
  readonly #db: SqliteDatabase;
  readonly #barrier;
  readonly #batcher = new InputBatcher<ParticipantInput>((inputs) => this.#flush(inputs));
  readonly #pending = new PendingRequests<Respond>();
  /** Batches with answers gathered and not sent yet; sent before the turn's work ends. */
  readonly #unanswered = new TurnoverSet<BatchAnswers>();
  readonly #timer: DeadlineTimer;
  readonly #trace: Tracer | undefined;
  /** The newest coordinator term seen; durable in the `fence` table. */
  #epoch: number;
  /** Decisions waiting to be applied with the next PREPARE; see decisionHoldMs. */
  readonly #held = new HeldBack<LocalEffect>(decisionHoldMs, () => this.#execute([], true));
  /** Transactions created before this (epoch ms) with no barrier rows were purged; durable. */
  #forgottenBefore: number;
  #purgeTimer: NodeJS.Timeout | undefined;
  /** The next chunk of a purge that has not caught up yet. */
  #purgeNext: NodeJS.Immediate | undefined;
  /**
   * The batch's SQLite transaction and a prepare's savepoint, made once: better-sqlite3 builds
   * four wrapper functions for every `transaction()` call, which cost more than the SQL.
   */
  readonly #inTransaction: Transaction<
    (local: readonly LocalEffect[], now: number) => LocalResult[]
  >;
  readonly #inSavepoint: (txId: string, payment: Payment, now: number) => LocalVote;
  /** A batch's barrier lookups, in one read transaction. */
  readonly #reading: BatchReader;

  constructor(options: ParticipantServiceOptions) {
    this.#options = options;
    this.#trace = createTracer(options.resourceManager.name);
    this.#machine = new ParticipantMachine(options.machine);
    this.#timer = new DeadlineTimer(options.now, () => {
      this.#batcher.enqueue(() => ({ kind: 'tick', now: options.now() }));
    });
    this.#db = openDatabase(options.dbFile, options.resourceManager.name);
    this.#barrier = barrierStatements(this.#db);
    this.#reading = batchReader(this.#db);
    this.#epoch = this.#barrier.epoch.get() as number;
    this.#forgottenBefore = this.#barrier.forgottenBefore.get() as number;
    this.#inTransaction = this.#db.transaction((local: readonly LocalEffect[], now: number) =>
      local.map((effect) => this.#runStep(effect, now)),
    );
    const { resourceManager } = options;
    this.#inSavepoint = this.#db.transaction((txId: string, payment: Payment, now: number) => {
      const local = resourceManager.prepare(this.#db, txId, payment, now);
      if (local.vote === 'no') throw new VotedNo(local);
      return local;
    });
  }

  get database(): SqliteDatabase {
    return this.#db;
  }

  start(): void {
    const inDoubt = this.#barrier.inDoubt.all() as { tx_id: string }[];
    for (const { tx_id: txId } of inDoubt) {
      this.#machine.step({ kind: 'in-doubt-recovered', txId });
    }
    this.#options.log.info('recovered', { inDoubt: inDoubt.length });
    this.#execute(this.#machine.step({ kind: 'recovery-finished', now: this.#options.now() }));
    const subject = subjects.participant(this.#options.resourceManager.name);
    this.#options.nats.subscribe(subject, {
      queue: subject,
      callback: deliverOrStop((msg) => this.#onMessage(msg)),
    });
    const { name } = this.#options.resourceManager;
    serveStats(this.#options.nats, name, () => this.#machine.inDoubtCount);
    const { barrierRetentionMs } = this.#options;
    this.#purgeTimer = setInterval(() => this.#purge(), barrierPurgeIntervalMs(barrierRetentionMs));
    this.#purgeTimer.unref();
  }

  async stop(): Promise<void> {
    this.#batcher.stop();
    this.#timer.stop();
    // Held decisions are simply not acknowledged: the coordinator sends them again.
    this.#held.clear();
    clearInterval(this.#purgeTimer);
    clearImmediate(this.#purgeNext);
    await this.#options.nats.drain();
    this.#db.close();
  }

  /**
   * Accepts a coordinator term no older than the newest seen, recording a newer one durably
   * before acting on its message (one write per failover, not per message). `unavailable`: the
   * newer term could not be recorded, as another process kept the write lock past the busy
   * timeout; its message is refused and comes again.
   */
  #admitEpoch(epoch: number): 'admitted' | 'stale' | 'unavailable' {
    // Test-only mutation: see test/sim/mutations.ts
    if (epoch < this.#epoch && !this.#mutated('ignore-epoch')) return 'stale';
    if (epoch > this.#epoch) {
      try {
        this.#barrier.raiseEpoch.run(epoch, epoch);
      } catch (error) {
        if (!isBusyError(error)) throw error;
        this.#options.log.warn('new-term-unrecorded', { epoch, error: errorText(error) });
        return 'unavailable';
      }
      workCounters.sqliteCommits += 1;
      this.#epoch = epoch;
      this.#options.log.info('new-coordinator-term', { epoch });
    }
    return 'admitted';
  }

  /**
   * A PREPARE or decision, alone or a batch of them. A batch's elements are checked one by one, so
   * a bad element is answered with its error and the others go ahead.
   */
  #onMessage(msg: Msg): void {
    let delivery;
    try {
      delivery = decodeParticipantDelivery(msg.data);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      msg.respond(encodeMessage(errorReply(error.code, error.message)));
      return;
    }
    if (delivery.kind === 'single') {
      this.#receive(delivery.message, (reply) => msg.respond(encodeMessage(reply)));
      return;
    }
    const answers = new BatchAnswers(msg, this.#unanswered);
    delivery.elements.forEach((element, index) => {
      const respond = answers.responder(index);
      let message;
      try {
        message = readParticipantMessage(element);
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        respond(errorReply(error.code, error.message));
        return;
      }
      this.#receive(message, respond);
    });
    this.#sendAnswers();
  }

  #receive(message: ParticipantMessage & Fenced, respond: Respond): void {
    const what = message.kind === 'prepare' ? 'prepare' : message.decision;
    this.#trace?.({ step: 'receive', peer: 'coordinator', txId: message.txId, what });
    const admission = this.#admitEpoch(message.epoch);
    if (admission !== 'admitted') {
      const reply =
        admission === 'stale'
          ? errorReply(
              'stale-epoch',
              `term ${message.epoch} is over; term ${this.#epoch} is current`,
            )
          : errorReply('unavailable', this.#lockedText);
      this.#trace?.({ step: 'reply', peer: 'coordinator', txId: message.txId, what: reply.code });
      respond(reply);
      return;
    }
    const requestRef = this.#pending.register(respond);
    this.#batcher.enqueue(() => ({
      kind: 'message-received',
      now: this.#options.now(),
      requestRef,
      message,
      // The usual decision is for a transaction the machine holds in doubt: its barrier is
      // known without reading it (one SELECT less per decision).
      stored:
        message.kind === 'decision' && this.#machine.isInDoubt(message.txId)
          ? votedYes
          : this.#storedStatus(message.txId),
    }));
  }

  /** Publishes the batches' answers gathered so far, one message per batch. */
  #sendAnswers(): void {
    for (const answers of this.#unanswered) answers.send();
    this.#unanswered.clear();
  }

  #flush(inputs: readonly (() => ParticipantInput)[]): void {
    const effects: ParticipantEffect[] = [];
    this.#reading(inputs.length, () => {
      for (const makeInput of inputs) effects.push(...this.#machine.step(makeInput()));
    });
    this.#execute(effects);
  }

  #execute(effects: readonly ParticipantEffect[], applyHeld = false): void {
    // Test-only mutation: see test/sim/mutations.ts. In the machine's order a YES leaves (and
    // reaches NATS) before its prepare is written; a crash in between loses a promised vote.
    const early = effects.some((e) => e.kind === 'reply' && e.reply.kind === 'vote');
    const preparing = effects.some((e) => e.kind === 'prepare-locally');
    if (this.#mutated('reply-yes-before-durable') && early && preparing && !applyHeld) {
      const isLocal = (e: ParticipantEffect): boolean =>
        e.kind === 'prepare-locally' || e.kind === 'apply-decision';
      this.#execute(effects.filter((effect) => !isLocal(effect)));
      void this.#options.nats.flush().then(() => {
        crashPoint('participant-after-vote');
        this.#execute(effects.filter(isLocal));
      });
      return;
    }
    const local = this.#localStepsToRun(effects, applyHeld);
    const results = local.length === 0 ? [] : this.#runLocally(local);
    for (const effect of effects) {
      if (effect.kind === 'reply') {
        this.#pending.take(effect.requestRef)?.(effect.reply);
        const { reply } = effect;
        if (reply.kind !== 'error') {
          const what = reply.kind === 'vote' ? `vote ${reply.vote}` : `ack ${reply.decision}`;
          this.#trace?.({ step: 'reply', peer: 'coordinator', txId: reply.txId, what });
        }
      } else if (effect.kind === 'query-status') {
        this.#trace?.({ step: 'send', peer: 'coordinator', txId: effect.txId, what: 'status?' });
        this.#queryStatus(effect.txId);
      }
    }
    const followUps: ParticipantEffect[] = [];
    for (const result of results) followUps.push(...this.#machine.step(result));
    if (followUps.length > 0) this.#execute(followUps);
    // After the follow-ups, so that a batch's answers from both leave in one message.
    this.#sendAnswers();
    this.#armTimer();
  }

  /** Why a message that needs a write is refused while another process holds the lock. */
  get #lockedText(): string {
    return `${this.#options.resourceManager.name}'s database stayed locked by another process past the busy timeout`;
  }

  /** Test-only mutation: see test/sim/mutations.ts */
  #mutated(name: string): boolean {
    return this.#options.machine.mutations?.has(name) === true;
  }

  /**
   * The local steps to run now: with a PREPARE among them (or when asked), every held decision
   * too; otherwise none, and the decisions are held for the next PREPARE or decisionHoldMs.
   */
  #localStepsToRun(effects: readonly ParticipantEffect[], applyHeld: boolean): LocalEffect[] {
    const local = effects.filter(
      (effect): effect is LocalEffect =>
        effect.kind === 'prepare-locally' || effect.kind === 'apply-decision',
    );
    const preparing = local.some((effect) => effect.kind === 'prepare-locally');
    if (!preparing && !applyHeld && this.#held.size + local.length < heldDecisionsMax) {
      this.#held.hold(local);
      return [];
    }
    const held = this.#held.take();
    return held.length === 0 ? local : [...held, ...local];
  }

  /**
   * Runs every local step of a batch in one SQLite transaction, then passes the crash points.
   *
   * The transaction takes the write lock first (`BEGIN IMMEDIATE`): this database is the party's
   * own, which other processes write too (the vendor's order system adds orders), and a deferred
   * transaction that has read and then writes while another process holds the lock fails at
   * once, with no busy wait. So the batch waits for the lock, up to the busy timeout; past it,
   * nothing was written and each step is `local-failed`.
   */
  #runLocally(local: readonly LocalEffect[]): (LocalResult | LocalFailure)[] {
    const startedAt = performance.now();
    const now = this.#options.now();
    let results: LocalResult[];
    try {
      results = this.#inTransaction.immediate(local, now);
    } catch (error) {
      if (!isBusyError(error)) throw error;
      this.#options.log.warn('local-write-failed', {
        steps: local.length,
        error: errorText(error),
      });
      const failure = this.#lockedText;
      const failed = ({ requestRef, txId }: LocalEffect): LocalFailure => {
        return { kind: 'local-failed', now, requestRef, txId, error: failure };
      };
      return local.map(failed);
    }
    countCommit(startedAt);
    for (const result of results) {
      const what =
        result.kind === 'prepared-locally'
          ? `${result.vote} durable`
          : `${result.decision} applied`;
      this.#trace?.({ step: 'local', txId: result.txId, what });
      if (result.kind === 'prepared-locally' && result.vote === 'yes') {
        crashPoint('participant-after-vote');
      } else if (result.kind === 'decision-applied') {
        crashPoint(
          result.decision === 'commit' ? 'participant-after-commit' : 'participant-after-abort',
        );
      }
    }
    return results;
  }

  /** One local step, inside the batch's SQLite transaction. */
  #runStep(effect: LocalEffect, now: number): LocalResult {
    if (effect.kind === 'prepare-locally') {
      const vote = this.#prepare(effect.txId, effect.payment, now);
      const { requestRef, txId } = effect;
      if (vote.vote === 'yes')
        return { kind: 'prepared-locally', now, requestRef, txId, vote: 'yes' };
      return { kind: 'prepared-locally', now, requestRef, txId, vote: 'no', reason: vote.reason };
    }
    this.#applyDecision(effect.txId, effect.decision, now);
    const { requestRef, txId, decision } = effect;
    return { kind: 'decision-applied', now, requestRef, txId, decision };
  }

  #prepare(txId: string, payment: Payment, now: number): LocalVote {
    let vote: LocalVote;
    try {
      vote = this.#inSavepoint(txId, payment, now);
    } catch (error) {
      if (!(error instanceof VotedNo)) throw error;
      vote = error.vote;
    }
    // A NO vote finishes the transaction here: the coordinator sends no ABORT after it.
    const [reason, decidedAt] = vote.vote === 'no' ? [vote.reason, now] : [null, null];
    this.#barrier.vote.run(txId, vote.vote, reason, JSON.stringify(payment), now, decidedAt);
    return vote;
  }

  #applyDecision(txId: string, decision: Decision, now: number): void {
    const { resourceManager } = this.#options;
    const barrier = this.#barrier;
    if (decision === 'commit') {
      // Takes the vote out of doubt, and is the check that there was a YES to commit.
      if (barrier.commit.run(now, txId).changes === 1) {
        resourceManager.commit(this.#db, txId, now);
        return;
      }
      // A COMMIT sent again finds its decision applied and changes nothing.
      const row = barrier.row.get(txId) as BarrierRow | undefined;
      assert(row?.decision === 'commit', `commit of ${txId}, which did not vote yes here`);
      return;
    }
    // An ABORT that finds no PREPARE leaves a tombstone, so that PREPARE, if it ever comes,
    // finds its row and votes NO instead of holding resources for a decided transaction.
    if (barrier.tombstone.run(txId, now, now).changes === 1) return;
    const undecided = barrier.abort.get(now, txId) as Pick<BarrierRow, 'vote'> | undefined;
    if (undecided === undefined) {
      // An ABORT sent again finds its decision applied and changes nothing.
      const row = barrier.row.get(txId) as BarrierRow;
      assert(row.decision === 'abort', `abort of ${txId}, which committed here`);
      return;
    }
    if (undecided.vote === 'yes') resourceManager.abort(this.#db, txId, now);
  }

  /**
   * Forgets the barrier rows of transactions finished, and made, longer than the retention ago
   * (finishedBeforeSql), one chunk per turn of the event loop until caught up, and moves the
   * durable watermark with them. Runs between batches, never inside one; only finished
   * transactions are touched, so nothing in doubt or being executed is. Takes the write lock
   * before it reads, as a batch does (`#runLocally`); past the busy timeout it leaves its turn to
   * the next interval.
   */
  #purge(): void {
    this.#purgeNext = undefined;
    const cutoff = this.#options.now() - this.#options.barrierRetentionMs;
    const barrier = this.#barrier;
    let purged: number;
    try {
      purged = this.#db
        .transaction(() => {
          const txIds = barrier.finishedBefore.all(cutoff, ulidTimePrefix(cutoff)) as string[];
          for (const txId of txIds) barrier.forget.run(txId);
          barrier.raiseForgottenBefore.run(cutoff, cutoff);
          return txIds.length;
        })
        .immediate();
    } catch (error) {
      if (!isBusyError(error)) throw error;
      // Housekeeping: with the lock held elsewhere, the next interval purges instead.
      this.#options.log.warn('barrier-purge-deferred', { reason: errorText(error) });
      return;
    }
    workCounters.sqliteCommits += 1;
    this.#forgottenBefore = Math.max(this.#forgottenBefore, cutoff);
    if (purged > 0) this.#options.log.info('barrier-purged', { purged });
    if (purged >= purgeChunkMax) this.#purgeNext ??= setImmediate(() => this.#purge());
  }

  #storedStatus(txId: string): StoredStatus | undefined {
    const row = this.#barrier.row.get(txId) as BarrierRow | undefined;
    if (row === undefined) {
      // Transaction ids are ULIDs, which carry their creation time.
      if (ulidTime(txId) >= this.#forgottenBefore) return undefined;
      // Rare by nature (a message later than the retention), so worth a line each.
      this.#options.log.info('forgotten-transaction', { txId });
      return { status: 'forgotten' };
    }
    if (row.decision === 'commit') return { status: 'committed' };
    if (row.decision === 'abort') return { status: 'aborted' };
    if (row.vote === 'yes') return votedYes;
    assert(row.vote === 'no', `barrier of ${txId}: a tombstone always has its abort`);
    return { status: 'voted-no', reason: row.reason ?? 'refused' };
  }

  #queryStatus(txId: string): void {
    const { nats, statusTimeoutMs, now, log } = this.#options;
    const query = encodeMessage({ v: 1, kind: 'status', txId });
    nats.request(subjects.status, query, { timeout: statusTimeoutMs }).then(
      (reply) => {
        let status;
        try {
          status = decodeStatusReply(reply.data);
        } catch (error) {
          // A reply we cannot read is a failed query, never a crash: ask again later.
          log.warn('status-reply-malformed', { txId, error: errorText(error) });
          this.#batcher.enqueue(() => ({ kind: 'status-failed', now: now(), txId }));
          return;
        }
        // An answer from an ended term may come from a paused old coordinator's stale memory.
        if (
          status.kind === 'error' ||
          status.txId !== txId ||
          this.#admitEpoch(status.epoch) !== 'admitted'
        ) {
          log.warn('status-query-refused', { txId, reply: status });
          this.#batcher.enqueue(() => ({ kind: 'status-failed', now: now(), txId }));
          return;
        }
        const { state } = status;
        this.#trace?.({ step: 'receive', peer: 'coordinator', txId, what: `status ${state}` });
        this.#batcher.enqueue(() => ({ kind: 'status-received', now: now(), txId, state }));
      },
      (error: unknown) => {
        log.warn('status-query-failed', { txId, error: errorText(error) });
        this.#batcher.enqueue(() => ({ kind: 'status-failed', now: now(), txId }));
      },
    );
  }

  #armTimer(): void {
    this.#timer.arm(this.#machine.nextDeadline());
  }
}

/**
 * Finished transactions older than a cutoff, oldest first. Older twice over: finished before it
 * by this host's clock (`decided_at`), and made before it by the coordinator's, which the id
 * carries (a ULID below the cutoff's ten-character time prefix). The second test keeps everything
 * forgotten under the watermark, which `#storedStatus` compares with the id's time. Without it, a
 * coordinator clock running ahead of this host's let the purge forget a transaction the watermark
 * did not cover yet, and a late PREPARE for it found nothing and was executed as new (the
 * simulator found it; docs/decisions.md).
 *
 * The ORDER BY is what makes SQLite use the `barrier_finished` index: without it, DISTINCT alone
 * made the planner scan the whole table in primary-key order, which blocked the participant for a
 * quarter of a second every purge interval once the table held a few million rows
 * (test/unit/barrier-plans.test.ts).
 */
export const finishedBeforeSql = `SELECT tx_id FROM barrier
  WHERE decided_at IS NOT NULL AND decided_at < ? AND tx_id < ?
  ORDER BY decided_at LIMIT ${purgeChunkMax}`;

/** YES votes without a decision, through the `barrier_in_doubt` index: what a start recovers. */
export const inDoubtSql = `SELECT tx_id FROM barrier WHERE vote = 'yes' AND decided_at IS NULL`;

/** A transaction's row in the barrier (migrations/bank/0005-barrier-one-row.sql). */
interface BarrierRow {
  readonly vote: 'yes' | 'no' | 'tombstone';
  readonly reason: string | null;
  readonly decision: Decision | null;
}

function barrierStatements(db: SqliteDatabase) {
  return {
    vote: db.prepare(
      `INSERT INTO barrier (tx_id, vote, reason, payment, created_at, decided_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    // Setting decided_at takes a YES vote out of the barrier_in_doubt index.
    commit: db.prepare(
      `UPDATE barrier SET decision = 'commit', decided_at = ?
       WHERE tx_id = ? AND vote = 'yes' AND decision IS NULL`,
    ),
    tombstone: db.prepare(
      `INSERT OR IGNORE INTO barrier (tx_id, vote, decision, created_at, decided_at)
       VALUES (?, 'tombstone', 'abort', ?, ?)`,
    ),
    // A NO vote finished the transaction already: its decided_at stays the earlier time.
    abort: db.prepare(
      `UPDATE barrier SET decision = 'abort', decided_at = coalesce(decided_at, ?)
       WHERE tx_id = ? AND decision IS NULL RETURNING vote`,
    ),
    row: db.prepare('SELECT vote, reason, decision FROM barrier WHERE tx_id = ?'),
    epoch: db.prepare('SELECT epoch FROM fence WHERE id = 1').pluck(),
    raiseEpoch: db.prepare('UPDATE fence SET epoch = ? WHERE id = 1 AND epoch < ?'),
    forgottenBefore: db.prepare('SELECT forgotten_before FROM barrier_retention').pluck(),
    raiseForgottenBefore: db.prepare(
      'UPDATE barrier_retention SET forgotten_before = ? WHERE forgotten_before < ?',
    ),
    finishedBefore: db.prepare(finishedBeforeSql).pluck(),
    forget: db.prepare('DELETE FROM barrier WHERE tx_id = ?'),
    inDoubt: db.prepare(inDoubtSql),
  };
}
