/**
 * A participant's shell, simulated: the real `ParticipantMachine` fed with what the simulated
 * network delivers, its local effects carried out against an in-memory barrier and ledger. It
 * mirrors `participants/service.ts`: the stored status is read from the barrier when the message
 * is handled; a group of local effects runs as one local transaction that is durable only when its
 * write completes, and its results go back into the machine as inputs; the barrier rows and
 * their order of checks are the real `#prepare` and `#applyDecision`. Recovery is the real one:
 * `in-doubt-recovered` for every transaction voted YES and undecided, then `recovery-finished`.
 * When the run's parameters set a barrier retention, the barrier is purged every interval the
 * real shell would use, as its own local transaction, from the start of each incarnation.
 *
 * Another process may hold the database's write lock (`databaseLockedUntil`, the fault
 * `participant-locked`): a write waits for it, as the real `BEGIN IMMEDIATE` does, or past the
 * busy timeout fails, writes nothing and turns each of its steps into `local-failed`; a new
 * term's record is refused (`unavailable`) past the timeout and, short of it, made at once (the
 * real one waits, blocking the process: not modelled); a purge skips its turn while it is held.
 */
import { assert } from '../../common/assert.ts';
import { errorReply, type ParticipantName, type StatusReply } from '../../common/protocol.ts';
import { busyTimeoutMs } from '../../common/sqlite.ts';
import {
  ParticipantMachine,
  type ParticipantConfig,
  type ParticipantEffect,
  type ParticipantInput,
  type RequestRef,
} from '../../participants/core/machine.ts';
import { barrierPurgeIntervalMs } from '../../participants/core/barrier-retention.ts';
import { decisionHoldMs, heldDecisionsMax } from '../../participants/core/decision-hold.ts';
import { SimProcess } from './process.ts';
import { SimBarrier, SimLedger } from './storage.ts';
import type { NodeName, Packet, ProcessContext } from './world.ts';

type LocalEffect = Extract<ParticipantEffect, { kind: 'prepare-locally' | 'apply-decision' }>;

export class SimParticipant extends SimProcess<ParticipantInput, ParticipantEffect> {
  override readonly name: ParticipantName;
  readonly barrier: SimBarrier;
  readonly ledger: SimLedger;
  readonly #config: ParticipantConfig;
  #machine: ParticipantMachine | undefined;
  readonly #requests = new Map<RequestRef, { requestId: number; from: NodeName }>();
  #nextRequestRef = 1;
  /** Status queries awaiting an answer: request id to transaction id. */
  readonly #queries = new Map<number, string>();
  #write: { readonly effects: readonly LocalEffect[]; readonly now: number } | undefined;
  /** Until when another process holds the database's write lock; not volatile: its own. */
  databaseLockedUntil = 0;
  /** Decisions held back for the next PREPARE's write, or until `decisionHoldMs` passes. */
  #held: LocalEffect[] = [];
  /** When the hold of `#held` ends; a timer for an earlier hold is stale, as if cleared. */
  #heldDueAt = Number.NaN;
  /** The held decisions are being written on their own: hold nothing back now. */
  #applyingHeld = false;

  constructor(ctx: ProcessContext, config: ParticipantConfig, ledger: SimLedger) {
    super(config.name, ctx);
    this.name = config.name;
    this.#config = config;
    this.ledger = ledger;
    const skew = ctx.params.barrier?.clockSkewMs[config.name] ?? 0;
    this.barrier = new SimBarrier((txId) => ctx.txCreatedAt(txId), skew);
  }

  get inDoubtCount(): number | undefined {
    return this.up ? this.#machine?.inDoubtCount : undefined;
  }

  /**
   * The real `#admitEpoch`: a term older than the newest seen is refused; a newer one is recorded
   * durably (its own small write, at once) before anything of it is handled, or refused as
   * `unavailable` when another process keeps the write lock past the busy timeout.
   */
  #admitEpoch(epoch: number): 'admitted' | 'stale' | 'unavailable' {
    // Test-only mutation: see test/sim/mutations.ts
    if (epoch < this.barrier.epoch && !this.ctx.mutations.has('ignore-epoch')) {
      this.ctx.count('stale-epoch');
      return 'stale';
    }
    if (epoch > this.barrier.epoch) {
      if (this.databaseLockedUntil - this.ctx.now > busyTimeoutMs) {
        this.ctx.count('participant-busy');
        return 'unavailable';
      }
      this.barrier.epoch = epoch;
    }
    return 'admitted';
  }

  /** PREPARE or a decision from the coordinator. */
  onRequest(packet: Extract<Packet, { type: 'request' }>): void {
    const { body } = packet;
    if (body.kind !== 'participant') return;
    const { message } = body;
    if (message.kind === 'decision') {
      this.ctx.checker.onDecisionHeard(this.name, message.txId, message.decision);
    }
    const admission = this.#admitEpoch(body.epoch);
    if (admission !== 'admitted') {
      const reply =
        admission === 'stale'
          ? errorReply(
              'stale-epoch',
              `term ${body.epoch} is over; term ${this.barrier.epoch} is current`,
            )
          : errorReply('unavailable', `${this.name}'s database is locked by another process`);
      const { requestId, from } = packet;
      this.ctx.send({
        type: 'reply',
        requestId,
        from: this.name,
        to: from,
        body: { kind: 'participant', reply },
      });
      return;
    }
    const requestRef = this.#nextRequestRef;
    this.#nextRequestRef += 1;
    this.#requests.set(requestRef, { requestId: packet.requestId, from: packet.from });
    const { ctx, barrier } = this;
    this.enqueue(() => {
      const stored = barrier.status(message.txId);
      if (stored?.status === 'forgotten') ctx.count('message-for-forgotten');
      return { kind: 'message-received', now: ctx.now, requestRef, message, stored };
    });
  }

  /** The coordinator's answer to a status query, or NATS saying nobody listens. */
  onReply(packet: Extract<Packet, { type: 'reply' }>): void {
    const txId = this.#queries.get(packet.requestId);
    if (txId === undefined) return;
    this.#queries.delete(packet.requestId);
    const { body } = packet;
    const { ctx } = this;
    if (body.kind !== 'status') {
      this.enqueue(() => ({ kind: 'status-failed', now: ctx.now, txId }));
      return;
    }
    const reply: StatusReply = body.reply;
    ctx.checker.onStatusAnswer(this.name, { txId }, reply);
    if (reply.txId !== txId || this.#admitEpoch(body.epoch) !== 'admitted') {
      this.enqueue(() => ({ kind: 'status-failed', now: ctx.now, txId }));
      return;
    }
    const { state } = reply;
    this.enqueue(() => ({ kind: 'status-received', now: ctx.now, txId, state }));
  }

  onRequestTimeout(requestId: number): void {
    const txId = this.#queries.get(requestId);
    if (txId === undefined) return;
    this.#queries.delete(requestId);
    const { ctx } = this;
    this.enqueue(() => ({ kind: 'status-failed', now: ctx.now, txId }));
  }

  /** The purge timer of the real shell fired: forget what finished before the retention. */
  onPurge(): void {
    const retention = this.ctx.params.barrier;
    if (!this.up || retention === undefined) return;
    if (this.databaseLockedUntil > this.ctx.now) {
      // The real purge waits for the lock too, or at the busy timeout skips its turn.
      this.ctx.trace(this.name, 'purge', 'deferred: the database is locked');
    } else {
      const purged = this.barrier.purge(this.ctx.now, retention.retentionMs);
      if (purged > 0) this.ctx.trace(this.name, 'purge', `${purged} forgotten`);
    }
    this.#schedulePurge();
  }

  #schedulePurge(): void {
    const retention = this.ctx.params.barrier;
    if (retention === undefined) return;
    const at = this.ctx.now + barrierPurgeIntervalMs(retention.retentionMs);
    this.ctx.schedule(at, { kind: 'purge', node: this.name, incarnation: this.incarnation });
  }

  protected recover(): ParticipantEffect[] {
    this.#schedulePurge();
    const machine = new ParticipantMachine(this.#config);
    this.#machine = machine;
    for (const txId of this.barrier.inDoubt()) machine.step({ kind: 'in-doubt-recovered', txId });
    return machine.step({ kind: 'recovery-finished', now: this.ctx.now });
  }

  protected stepMachine(input: ParticipantInput): ParticipantEffect[] {
    return (this.#machine as ParticipantMachine).step(input);
  }

  protected nextDeadline(): number | undefined {
    return this.#machine?.nextDeadline();
  }

  protected tickInput(): ParticipantInput {
    return { kind: 'tick', now: this.ctx.now };
  }

  protected isWrite(effect: ParticipantEffect): boolean {
    return effect.kind === 'prepare-locally' || effect.kind === 'apply-decision';
  }

  /**
   * The real `#localStepsToRun`: a group of writes with no PREPARE is held back, up to
   * `heldDecisionsMax` decisions and `decisionHoldMs`, so that it shares the next PREPARE's local
   * transaction; its results, and so its acknowledgements, come only when that write is durable.
   */
  protected holdWrite(group: readonly ParticipantEffect[]): boolean {
    if (this.#applyingHeld) return false;
    if (group.some((effect) => effect.kind === 'prepare-locally')) return false;
    if (this.#held.length + group.length >= heldDecisionsMax) return false;
    if (this.#held.length === 0) {
      const due = this.ctx.now + decisionHoldMs;
      this.#heldDueAt = due;
      const { name, incarnation } = this;
      this.ctx.schedule(due, { kind: 'held-due', node: name, incarnation, due });
    }
    this.#held.push(...group.filter((effect): effect is LocalEffect => this.isWrite(effect)));
    this.ctx.count('decisions-held');
    this.ctx.trace(this.name, 'hold', this.#held.length);
    return true;
  }

  /** Whether a batch holds its decisions back depends on its writes alone (`holdWrite`). */
  protected onAgenda(): void {}

  /** The hold timer of the real shell: the held decisions are written on their own. */
  onHeldDue(due: number): void {
    if (!this.up || this.#held.length === 0 || due !== this.#heldDueAt) return;
    const held = this.#held;
    this.#held = [];
    this.#applyingHeld = true;
    this.runBetweenBatches(held);
  }

  protected startWrite(group: readonly ParticipantEffect[]): boolean {
    // Held decisions go first, as in the real shell: a PREPARE after them finds what they freed.
    const local = group.filter((effect): effect is LocalEffect => this.isWrite(effect));
    const effects = [...this.#held, ...local];
    this.#held = [];
    this.#applyingHeld = false;
    this.#write = { effects, now: this.ctx.now };
    this.ctx.trace(this.name, 'write', effects);
    // Another process holds the write lock: the write waits for it, or fails at the busy timeout.
    this.waitForLock(this.databaseLockedUntil, busyTimeoutMs);
    return true;
  }

  protected commitWrite(): ParticipantInput[] {
    const write = this.#write;
    if (write === undefined) return [];
    this.#write = undefined;
    if (this.writeFailedBusy) {
      // The real `#runLocally`: nothing was written; every step is answered `unavailable`.
      this.ctx.count('participant-busy');
      const error = 'locked by another process past the busy timeout';
      return write.effects.map(({ requestRef, txId }) => {
        const failed: ParticipantInput = {
          kind: 'local-failed',
          now: write.now,
          requestRef,
          txId,
          error,
        };
        return failed;
      });
    }
    return write.effects.map((effect) =>
      effect.kind === 'prepare-locally'
        ? this.#prepareLocally(effect, write.now)
        : this.#applyDecision(effect, write.now),
    );
  }

  protected perform(effect: ParticipantEffect): void {
    if (effect.kind === 'reply') {
      const { reply } = effect;
      if (reply.kind === 'vote') this.ctx.checker.onVoteSent(this.name, reply.txId, reply.vote);
      const pending = this.#requests.get(effect.requestRef);
      if (pending === undefined) return;
      this.#requests.delete(effect.requestRef);
      const body = { kind: 'participant', reply: effect.reply } as const;
      const { requestId, from } = pending;
      this.ctx.send({ type: 'reply', requestId, from: this.name, to: from, body });
    } else if (effect.kind === 'query-status') {
      this.#queryStatus(effect.txId);
    }
  }

  /** A participant has no term of its own: its writes are never fenced. */
  protected isFenced(): boolean {
    return false;
  }

  protected loseVolatileState(): void {
    this.#machine = undefined;
    this.#requests.clear();
    this.#queries.clear();
    this.#write = undefined;
    this.#held = [];
    this.#applyingHeld = false;
  }

  #queryStatus(txId: string): void {
    const { ctx } = this;
    const requestId = ctx.nextRequestId();
    this.#queries.set(requestId, txId);
    const body = { kind: 'status', query: { txId } } as const;
    ctx.send({ type: 'request', requestId, from: this.name, to: 'coordinator', body });
    const timeoutAt = ctx.now + ctx.params.participant.statusTimeoutMs;
    ctx.schedule(timeoutAt, { kind: 'request-timeout', node: this.name, requestId });
  }

  /** The real shell's `#prepare`: business checks, hold and barrier row in one transaction. */
  #prepareLocally(
    effect: Extract<LocalEffect, { kind: 'prepare-locally' }>,
    now: number,
  ): ParticipantInput {
    const { txId, requestRef } = effect;
    // Checked first so that a refused insert leaves the ledger as it was (SQLite rolls back).
    this.barrier.checkPrepareAbsent(txId);
    const vote = this.ledger.prepare(txId, effect.payment);
    const reason = vote.vote === 'no' ? vote.reason : undefined;
    this.barrier.insertPrepare(txId, vote.vote, reason, now);
    this.ctx.checker.onPrepareExecuted(this.name, txId);
    this.ctx.checker.onLedgerChanged(this.name, this.ledger);
    if (vote.vote === 'yes')
      return { kind: 'prepared-locally', now, requestRef, txId, vote: 'yes' };
    return { kind: 'prepared-locally', now, requestRef, txId, vote: 'no', reason: vote.reason };
  }

  /** The real shell's `#applyDecision`, barrier row by barrier row. */
  #applyDecision(
    effect: Extract<LocalEffect, { kind: 'apply-decision' }>,
    now: number,
  ): ParticipantInput {
    const { txId, decision, requestRef } = effect;
    const { barrier, ledger, ctx } = this;
    const applied: ParticipantInput = { kind: 'decision-applied', now, requestRef, txId, decision };
    const votedYes = barrier.prepareOutcome(txId) === 'yes';
    if (decision === 'commit') {
      assert(votedYes, `commit of ${txId}, which did not vote yes here`);
      if (!barrier.insertIfAbsent(txId, 'commit', now)) return applied;
      ctx.checker.onDecisionApplied(this.name, txId, decision, votedYes);
      ledger.commit(txId);
      ctx.checker.onLedgerChanged(this.name, ledger);
      return applied;
    }
    const tombstone = barrier.insertIfAbsent(txId, 'prepare', now);
    if (!barrier.insertIfAbsent(txId, 'abort', now)) return applied;
    ctx.checker.onDecisionApplied(this.name, txId, decision, votedYes);
    if (tombstone) return applied;
    if (votedYes) ledger.abort(txId);
    ctx.checker.onLedgerChanged(this.name, ledger);
    return applied;
  }
}
