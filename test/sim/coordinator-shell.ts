/**
 * The coordinator's shell, simulated: the real `CoordinatorMachine` fed with what the simulated
 * network delivers, its effects carried out against an in-memory journal with the real journal's
 * crash semantics. It mirrors `coordinator/service.ts`: lookups by key or id come from the journal
 * when the input is handled; PREPARE and decision requests carry a timeout and turn into
 * `send-failed` when it passes or when NATS answers "no responders"; a participant's reply is
 * checked as `#answerInput` checks it. A batch that sends no PREPARE holds its decisions back as
 * the real `#execute` does, for the next batch with PREPAREs or `decisionHoldMs`. Recovery is the
 * real one: `record-recovered` for every record of every unfinished transaction, in order, then
 * `recovery-finished`. With a key retention, the real purge timer runs at the interval the real
 * shell computes, from each start.
 *
 * Leadership is `coordinator/leadership.ts`'s: every term begins with a new epoch in the journal;
 * with a lease (two coordinators), a process waits as a standby until it takes the lease. The term
 * is checked before every batch and inside every write; a coordinator whose term is over forgets
 * everything in memory and waits as a standby again. Its messages carry its epoch.
 */
import type {
  ParticipantMessage,
  ParticipantName,
  ParticipantReply,
} from '../../common/protocol.ts';
import { decisionHoldMs } from '../../coordinator/core/decision-hold.ts';
import { keyPurgeIntervalMs } from '../../coordinator/core/key-retention.ts';
import { leaseBusyWaitMs } from '../../coordinator/core/lease-timing.ts';
import { CoordinatorMachine } from '../../coordinator/core/machine.ts';
import type {
  CoordinatorConfig,
  CoordinatorEffect,
  CoordinatorInput,
  JournalRecord,
  RequestRef,
} from '../../coordinator/core/types.ts';
import { JournalBusyError, JournalFencedError, type SimJournal } from './journal.ts';
import { busyTimeoutMs } from '../../common/sqlite.ts';
import { SimProcess } from './process.ts';
import type { CoordinatorName, NodeName, Packet, ProcessContext } from './world.ts';

/**
 * How long a request to the lease's servers waits for an answer: @nats-io/kv's default bucket
 * timeout, which the real coordinator keeps.
 */
export const leaseRequestTimeoutMs = 2_000;

/**
 * The lease two coordinators contend for: in JetStream KV on the NATS servers, out of reach of a
 * coordinator a partition or a server crash cuts off from them and of everyone while JetStream is
 * down (`ProcessContext.reachesLease`); or in the journal's SQLite file, which both always reach.
 * It says who may try to lead; what keeps two leaders apart is the journal's epoch.
 */
export class SimLease {
  #holder: CoordinatorName | undefined;
  #expiresAt = 0;

  /**
   * Takes the lease if it is free or expired; true when the caller holds it now. Not while its
   * own earlier value stands either: KV's `create` and the journal's `expires_at <= now` refuse
   * that too, so a coordinator that restarted, or lost its term, waits for the TTL like anyone.
   */
  tryAcquire(who: CoordinatorName, now: number, ttlMs: number): boolean {
    if (this.#holder !== undefined && this.#expiresAt > now) return false;
    this.#holder = who;
    this.#expiresAt = now + ttlMs;
    return true;
  }

  /** Gives it up at once, as `Leadership` does after a busy journal; only its holder can. */
  release(who: CoordinatorName): void {
    if (this.#holder === who) this.#expiresAt = 0;
  }

  /** Keeps it: fails once another has taken it, even if the caller's had not expired. */
  renew(who: CoordinatorName, now: number, ttlMs: number): boolean {
    if (this.#holder !== who) return false;
    this.#expiresAt = now + ttlMs;
    return true;
  }
}

export interface LeaseOptions {
  readonly lease: SimLease;
  readonly store: 'nats' | 'journal';
  readonly ttlMs: number;
  /** From the TTL, as the real coordinator computes them (`leaseTimings`). */
  readonly standbyPollMs: number;
  readonly renewMs: number;
}

export class SimCoordinator extends SimProcess<CoordinatorInput, CoordinatorEffect> {
  override readonly name: CoordinatorName;
  readonly journal: SimJournal;
  readonly #config: CoordinatorConfig;
  readonly #lease: LeaseOptions | undefined;
  #machine: CoordinatorMachine | undefined;
  /** This incarnation's term once it leads; undefined while it is a standby. */
  #epoch: number | undefined;
  /** The lease was just taken: the next start leads instead of waiting as a standby. */
  #leadOnStart = false;
  /** The term ended on a busy journal: the next start stands by a poll before contending. */
  #standbyPollFirst = false;
  /**
   * The lease is ours and `beginTerm` waits for the journal's write lock (`busy_timeout`): the
   * term starts when the lock is free, or the process gives up at the timeout (`to-give-up`).
   */
  #termWaits: 'to-start' | 'to-give-up' | undefined;
  /** The write failed on the busy timeout: the term ends and the lease goes back. */
  #endedBusy = false;
  /** How long a write waits for the lock before it fails as busy, as the real one computes it. */
  readonly #busyWaitMs: number;
  readonly #requests = new Map<RequestRef, { requestId: number; from: NodeName }>();
  #nextRequestRef = 1;
  /** Requests to participants awaiting a reply, by request id. */
  readonly #outstanding = new Map<
    number,
    { readonly participant: ParticipantName; readonly message: ParticipantMessage }
  >();
  #write: { records: JournalRecord[]; durableCount: number } | undefined;
  /** The batch being carried out sends PREPAREs: its decisions, and those held, go with them. */
  #batchSendsPrepare = false;
  /** Decisions held back for the next batch with PREPAREs, or until `decisionHoldMs` passes. */
  #held: { readonly participant: ParticipantName; readonly message: ParticipantMessage }[] = [];
  /** When the hold of `#held` ends; a timer for an earlier hold is stale, as if cleared. */
  #heldDueAt = Number.NaN;

  constructor(
    name: CoordinatorName,
    ctx: ProcessContext,
    config: CoordinatorConfig,
    journal: SimJournal,
    lease: LeaseOptions | undefined,
  ) {
    super(name, ctx);
    this.name = name;
    this.#config = config;
    this.journal = journal;
    this.#lease = lease;
    this.#busyWaitMs = leaseBusyWaitMs(lease?.ttlMs, busyTimeoutMs);
  }

  /** Leading (subscribed to the coordinators' subjects): up, with a term of its own. */
  get active(): boolean {
    return this.up && this.#machine !== undefined;
  }

  /** Leading in the current term: the one whose writes the journal accepts. */
  get leader(): boolean {
    return this.active && this.#epoch === this.journal.epoch;
  }

  get inFlightCount(): number | undefined {
    return this.active ? this.#machine?.inFlightCount : undefined;
  }

  /** A request from a client or a participant: `pay` or `status`. */
  onRequest(packet: Extract<Packet, { type: 'request' }>): void {
    const { body } = packet;
    if (body.kind === 'participant' || !this.active) return;
    const requestRef = this.#nextRequestRef;
    this.#nextRequestRef += 1;
    this.#requests.set(requestRef, { requestId: packet.requestId, from: packet.from });
    const { ctx, journal } = this;
    if (body.kind === 'pay') {
      const { request } = body;
      this.enqueue(() => ({
        kind: 'pay-requested',
        now: ctx.now,
        requestRef,
        request,
        newTxId: ctx.nextTxId(),
        stored: journal.findByKey(request.clientId, request.idempotencyKey, ctx.now),
      }));
      return;
    }
    const { query } = body;
    this.enqueue(() => ({
      kind: 'status-requested',
      now: ctx.now,
      requestRef,
      query,
      stored:
        'txId' in query
          ? journal.findById(query.txId)
          : journal.findByKey(query.clientId, query.idempotencyKey, ctx.now),
    }));
  }

  /** A participant's reply to a PREPARE or a decision, or NATS saying nobody listens. */
  onReply(packet: Extract<Packet, { type: 'reply' }>): void {
    const outstanding = this.#outstanding.get(packet.requestId);
    if (outstanding === undefined) return;
    this.#outstanding.delete(packet.requestId);
    const { participant, message } = outstanding;
    const { body } = packet;
    if (body.kind !== 'participant') {
      this.#enqueueFailure(participant, message.txId, 'no responders');
      return;
    }
    const { reply } = body;
    if (reply.kind === 'vote' && reply.txId === message.txId) {
      this.ctx.checker.onVoteHeard(participant, reply.txId, reply.vote);
    }
    this.enqueue(() => this.#answerInput(participant, message, reply));
  }

  onRequestTimeout(requestId: number): void {
    const outstanding = this.#outstanding.get(requestId);
    if (outstanding === undefined) return;
    this.#outstanding.delete(requestId);
    this.#enqueueFailure(outstanding.participant, outstanding.message.txId, 'timeout');
  }

  /**
   * The lease timer of `coordinator/leadership.ts`: a standby tries to take the lease every tenth
   * of its TTL and, when it does, starts a term; a leader renews it every fifth and, once it is
   * lost, ends its term and waits as a standby. Either change restarts the process's memory.
   * With the lease on the NATS servers (JetStream KV), a request to them is answered a round
   * trip later, and the process goes on working meanwhile (a leader that wakes from a pause
   * writes before it learns that its lease is gone, and its journal fences it). A process cut off
   * from the servers cannot take the lease, and its renewal fails when the request times out, so
   * a leader cut off keeps working on its memory until then while the standby takes over. A
   * request the servers applied can lose its answer as any message can (the seed's loss rate):
   * the lease is then taken or renewed, and the coordinator does not know it, waits out the
   * request's timeout and, as a standby, finds its own value in the way until the TTL runs out.
   * With the lease in the journal's file, the answer is a local write's, and no network fault
   * keeps a running process from it: a leader cut off from NATS keeps its lease.
   */
  onLease(renewing: 'answered' | 'failed' | undefined): void {
    const lease = this.#lease;
    if (!this.up || lease === undefined) return;
    const { now } = this.ctx;
    const inJournal = lease.store === 'journal';
    const reachable = inJournal || this.ctx.reachesLease(this.name);
    if (this.#machine === undefined) {
      this.#standBy(lease, inJournal, reachable);
    } else if (renewing === undefined) {
      if (!this.#termHolds()) {
        // `Leadership` checks the journal before each renewal: a newer term ends this one.
        this.ctx.count('fenced');
        this.ctx.trace(this.name, 'fenced', `term ${this.#epoch} is over before a renewal`);
        this.onFenced();
        return;
      }
      const { params, rng } = this.ctx;
      const { delayMsMin, delayMsMax } = params.network;
      let answerAt = now + leaseRequestTimeoutMs;
      let answer: 'answered' | 'failed' = 'failed';
      if (reachable && this.#answerLost(inJournal)) {
        lease.lease.renew(this.name, now, lease.ttlMs);
      } else if (reachable) {
        answer = 'answered';
        answerAt = inJournal
          ? now + rng.int(0, params.fsyncMsMax)
          : now + 2 * rng.int(delayMsMin, delayMsMax);
      }
      const { name, incarnation } = this;
      this.ctx.schedule(answerAt, { kind: 'lease', node: name, incarnation, renewing: answer });
    } else if (renewing === 'answered' && lease.lease.renew(this.name, now, lease.ttlMs)) {
      this.#scheduleLease(lease.renewMs);
    } else {
      if (renewing === 'failed') this.ctx.count('lease-unreachable');
      this.ctx.trace(this.name, 'lease', `lost (${renewing}): the term ends`);
      this.#restartMemory();
    }
  }

  /** The lease timer of a process without a term: it contends, or its term start waits. */
  #standBy(lease: LeaseOptions, inJournal: boolean, reachable: boolean): void {
    const waiting = this.#termWaits;
    this.#termWaits = undefined;
    if (waiting === 'to-start') {
      this.#restartMemory({ lead: true });
      return;
    }
    if (waiting === 'to-give-up') {
      // `Leadership` after `term-not-started`: the lease goes back, then a standby's poll.
      this.#giveLeaseBack();
      this.#scheduleLease(lease.standbyPollMs);
      return;
    }
    if (!reachable) {
      this.#scheduleLease(leaseRequestTimeoutMs + lease.standbyPollMs);
      return;
    }
    const taken = lease.lease.tryAcquire(this.name, this.ctx.now, lease.ttlMs);
    if (this.#answerLost(inJournal)) {
      this.#scheduleLease(leaseRequestTimeoutMs + lease.standbyPollMs);
      return;
    }
    if (!taken) {
      this.#scheduleLease(lease.standbyPollMs);
      return;
    }
    this.ctx.count('lease-taken');
    this.ctx.trace(this.name, 'lease', 'taken');
    this.#restartMemory({ lead: true });
  }

  /**
   * What `Leadership` does when a term begins or ends: everything in memory goes (unwritten
   * records included, settled by the next term), and the process starts over from the journal,
   * leading or as a standby. Not a crash of the process, but in the simulation the same steps.
   */
  #restartMemory(next: { lead?: boolean; standbyPollFirst?: boolean } = {}): void {
    this.crash();
    this.#leadOnStart = next.lead ?? false;
    this.#standbyPollFirst = next.standbyPollFirst ?? false;
    this.start();
  }

  /**
   * Whether the answer to a lease request the servers applied is lost: never in the journal, and
   * only while the network loses messages (until the chaos ends).
   */
  #answerLost(inJournal: boolean): boolean {
    const { lossRate } = this.ctx.params.network;
    if (inJournal || !this.ctx.chaos || lossRate === 0) return false;
    if (!this.ctx.rng.chance(lossRate)) return false;
    this.ctx.count('lease-answer-lost');
    this.ctx.trace(this.name, 'lease', 'applied, its answer lost');
    return true;
  }

  #scheduleLease(afterMs: number): void {
    const at = this.ctx.now + afterMs;
    this.ctx.schedule(at, { kind: 'lease', node: this.name, incarnation: this.incarnation });
  }

  /** The purge timer of the real shell fired: forget what completed before the retention. */
  onPurge(): void {
    if (!this.active || this.journal.retentionMs === undefined) return;
    if (!this.#termHolds()) {
      // The real purge checks the term in its transaction, as every write of a term does.
      this.ctx.count('fenced');
      this.ctx.trace(this.name, 'fenced', `term ${this.#epoch} is over before a purge`);
      this.onFenced();
      return;
    }
    if (this.journal.lockedUntil > this.ctx.now) {
      // The real purge waits for the lock too, or at the busy timeout skips its turn.
      this.ctx.trace(this.name, 'purge', 'deferred: the journal is locked');
      this.#schedulePurge();
      return;
    }
    const purged = this.journal.purge(this.ctx.now);
    if (purged > 0) this.ctx.trace(this.name, 'purge', `${purged} forgotten`);
    for (let index = 0; index < purged; index += 1) this.ctx.count('key-purged');
    this.#schedulePurge();
  }

  #schedulePurge(): void {
    const { retentionMs } = this.journal;
    if (retentionMs === undefined) return;
    const at = this.ctx.now + keyPurgeIntervalMs(retentionMs);
    this.ctx.schedule(at, { kind: 'purge', node: this.name, incarnation: this.incarnation });
  }

  /**
   * A start: with a lease, as a standby until the lease is taken; then, or without a lease at
   * once, a new term (`beginTerm`) and recovery from the journal.
   */
  protected recover(): CoordinatorEffect[] {
    const lease = this.#lease;
    if (lease !== undefined && !this.#leadOnStart) {
      this.ctx.trace(this.name, 'standby');
      this.#scheduleLease(this.#standbyPollFirst ? lease.standbyPollMs : 0);
      return [];
    }
    this.#leadOnStart = false;
    const lockedMs = this.journal.lockedUntil - this.ctx.now;
    if (lease !== undefined && lockedMs > 0) {
      // The real `beginTerm` blocks on the write lock: the term starts once it is free, or does
      // not start at the busy timeout (`term-not-started`). No term, so no requests meanwhile.
      const busy = lockedMs > this.#busyWaitMs;
      if (busy) this.ctx.count('journal-busy');
      this.ctx.trace(this.name, 'term', busy ? 'not started: journal busy' : 'waits for the lock');
      this.#termWaits = busy ? 'to-give-up' : 'to-start';
      this.#scheduleLease(busy ? this.#busyWaitMs : lockedMs);
      return [];
    }
    const { epoch, lost } = this.journal.beginTerm(this.ctx.rng);
    for (let index = 0; index < lost; index += 1) this.ctx.count('journal-records-lost');
    this.#epoch = epoch;
    this.ctx.trace(this.name, 'term', `epoch ${epoch}`);
    if (this.#lease !== undefined) this.#scheduleLease(this.#lease.renewMs);
    this.#schedulePurge();
    const machine = new CoordinatorMachine(this.#config);
    this.#machine = machine;
    for (const record of this.journal.unfinishedRecords()) {
      machine.step({ kind: 'record-recovered', record });
    }
    return machine.step({ kind: 'recovery-finished', now: this.ctx.now });
  }

  protected stepMachine(input: CoordinatorInput): CoordinatorEffect[] {
    return (this.#machine as CoordinatorMachine).step(input);
  }

  protected nextDeadline(): number | undefined {
    return this.#machine?.nextDeadline();
  }

  protected tickInput(): CoordinatorInput {
    return { kind: 'tick', now: this.ctx.now };
  }

  /** Every group is written when it comes; unforced records wait in the journal's volatile tail. */
  protected holdWrite(): boolean {
    return false;
  }

  protected isWrite(effect: CoordinatorEffect): boolean {
    return effect.kind === 'journal';
  }

  protected startWrite(group: readonly CoordinatorEffect[]): boolean {
    const records: JournalRecord[] = [];
    let durableCount = 0;
    for (const effect of group) {
      if (effect.kind !== 'journal') continue;
      records.push(effect.record);
      if (effect.forced) durableCount = records.length;
    }
    this.#write = { records, durableCount };
    this.ctx.trace(this.name, 'write', records);
    // Another process holds the write lock: the write waits for it, or fails at the busy timeout.
    const { lockedUntil } = this.journal;
    this.waitForLock(lockedUntil, this.#busyWaitMs);
    return durableCount > 0 || lockedUntil > this.ctx.now;
  }

  protected commitWrite(): CoordinatorInput[] {
    const write = this.#write;
    if (write === undefined) return [];
    this.#write = undefined;
    if (this.writeFailedBusy) {
      throw new JournalBusyError('another process kept the write lock past the busy timeout');
    }
    const released = this.journal.append(
      write.records,
      write.durableCount,
      this.ctx.now,
      // Test-only mutation: see test/sim/mutations.ts
      this.ctx.mutations.has('ignore-epoch') ? undefined : this.#epoch,
    );
    for (let index = 0; index < released; index += 1) this.ctx.count('expired-key-released');
    return [];
  }

  protected onAgenda(effects: readonly CoordinatorEffect[]): void {
    this.#batchSendsPrepare = effects.some(
      (effect) => effect.kind === 'send' && effect.message.kind === 'prepare',
    );
  }

  protected perform(effect: CoordinatorEffect): void {
    if (effect.kind === 'send') {
      this.#send(effect.participant, effect.message);
    } else if (effect.kind === 'reply') {
      this.#reply(effect.requestRef, effect.reply);
    }
  }

  /**
   * The real `#execute`: a batch that sends PREPAREs sends every held decision first, then its
   * own messages; a batch that sends none holds its decisions back (the hold's timer starts with
   * the first), so that they reach the participants with the next PREPAREs. The mutation that
   * sends decisions before they are forced holds nothing back, as the real one does.
   */
  #send(participant: ParticipantName, message: ParticipantMessage): void {
    if (this.#batchSendsPrepare || this.ctx.mutations.has('send-decision-before-forcing')) {
      this.#sendHeld();
      this.#sendToParticipant(participant, message);
      return;
    }
    if (this.#held.length === 0) {
      const due = this.ctx.now + decisionHoldMs;
      this.#heldDueAt = due;
      const { name, incarnation } = this;
      this.ctx.schedule(due, { kind: 'held-due', node: name, incarnation, due });
    }
    this.#held.push({ participant, message });
    this.ctx.count('decisions-held-to-send');
  }

  #sendHeld(): void {
    const held = this.#held;
    this.#held = [];
    this.#heldDueAt = Number.NaN;
    for (const { participant, message } of held) this.#sendToParticipant(participant, message);
  }

  /** The hold timer of the real shell: the held decisions are sent on their own. */
  onHeldDue(due: number): void {
    if (!this.active || due !== this.#heldDueAt) return;
    this.ctx.trace(this.name, 'send held', this.#held.length);
    this.#sendHeld();
  }

  /**
   * The real `#flush` checks the term before it handles a batch: a coordinator that wakes after a
   * takeover must not answer from its stale memory.
   */
  protected override admitBatch(): boolean {
    if (this.#termHolds()) return true;
    this.ctx.count('fenced');
    this.ctx.trace(this.name, 'fenced', `term ${this.#epoch} is over before a batch`);
    return false;
  }

  /** Whether the journal still shows this process's term (the real `checkTerm`). */
  #termHolds(): boolean {
    // Test-only mutation: see test/sim/mutations.ts
    return this.#epoch === this.journal.epoch || this.ctx.mutations.has('ignore-epoch');
  }

  /**
   * The term check inside the write (the real adapter's, in the same SQLite transaction), and a
   * write that never began for the busy journal, which ends the term too (the real service's
   * `onTermOver`).
   */
  protected override isFenced(error: unknown): boolean {
    if (error instanceof JournalBusyError) {
      this.ctx.count('journal-busy');
      this.ctx.trace(this.name, 'term ends', error.message);
      this.#endedBusy = true;
      return true;
    }
    if (!(error instanceof JournalFencedError)) return false;
    this.ctx.count('fenced');
    this.ctx.trace(this.name, 'fenced', error.message);
    return true;
  }

  /**
   * A newer term began: the write is refused and nothing after it leaves. The real service stops
   * at once and waits as a standby (without a lease it exits, but one coordinator is never fenced).
   */
  protected override onFenced(): void {
    // After a busy journal `Leadership` gives the lease back and lets a standby's poll pass
    // before contending again; after a newer term it keeps its hands off the lease.
    const busy = this.#endedBusy;
    this.#endedBusy = false;
    if (busy) this.#giveLeaseBack();
    this.#restartMemory({ standbyPollFirst: busy });
  }

  /** `Lease.release()`: it reaches the lease's store or fails quietly (the TTL then frees it). */
  #giveLeaseBack(): void {
    const lease = this.#lease;
    if (lease === undefined) return;
    if (lease.store === 'journal' || this.ctx.reachesLease(this.name))
      lease.lease.release(this.name);
  }

  protected loseVolatileState(): void {
    // Unforced records not written yet are this process's only while its term is current; a
    // newer term has settled what became of them (SimJournal.beginTerm).
    const ownsTail = this.#epoch !== undefined && this.#epoch === this.journal.epoch;
    this.#machine = undefined;
    this.#epoch = undefined;
    this.#requests.clear();
    this.#outstanding.clear();
    this.#write = undefined;
    this.#endedBusy = false;
    this.#termWaits = undefined;
    this.#leadOnStart = false;
    this.#standbyPollFirst = false;
    // The real shell's stop() clears them: a later term sends its own.
    this.#held = [];
    this.#heldDueAt = Number.NaN;
    this.#batchSendsPrepare = false;
    if (!ownsTail) return;
    const lost = this.journal.crash(this.ctx.rng);
    for (let index = 0; index < lost; index += 1) this.ctx.count('journal-records-lost');
  }

  #sendToParticipant(participant: ParticipantName, message: ParticipantMessage): void {
    const { ctx } = this;
    const requestId = ctx.nextRequestId();
    this.#outstanding.set(requestId, { participant, message });
    if (message.kind === 'decision') ctx.checker.onDecisionIssued(message.txId, message.decision);
    const body = { kind: 'participant', message, epoch: this.#epoch ?? 0 } as const;
    ctx.send({ type: 'request', requestId, from: this.name, to: participant, body });
    const timeoutAt = ctx.now + ctx.params.coordinator.sendTimeoutMs;
    ctx.schedule(timeoutAt, { kind: 'request-timeout', node: this.name, requestId });
  }

  #reply(requestRef: RequestRef, reply: Extract<CoordinatorEffect, { kind: 'reply' }>['reply']) {
    const pending = this.#requests.get(requestRef);
    if (pending === undefined) return;
    this.#requests.delete(requestRef);
    if (reply.kind === 'status' && reply.txId !== null && reply.state !== 'preparing') {
      // Presumed abort: `unknown` tells a participant to abort, as `aborted` does.
      const decision = reply.state === 'committed' ? 'commit' : 'abort';
      this.ctx.checker.onDecisionIssued(reply.txId, decision);
    }
    const body =
      reply.kind === 'status'
        ? ({ kind: 'status', reply, epoch: this.#epoch ?? 0 } as const)
        : ({ kind: 'pay', reply } as const);
    const { requestId, from } = pending;
    this.ctx.send({ type: 'reply', requestId, from: this.name, to: from, body });
  }

  #enqueueFailure(participant: ParticipantName, txId: string, error: string): void {
    const { ctx } = this;
    this.enqueue(() => ({ kind: 'send-failed', now: ctx.now, txId, participant, error }));
  }

  /** The real shell's `#answerInput`: a reply that breaks the protocol is a failed send. */
  #answerInput(
    participant: ParticipantName,
    sent: ParticipantMessage,
    reply: ParticipantReply,
  ): CoordinatorInput {
    const now = this.ctx.now;
    const { txId } = sent;
    let error: string;
    if (reply.kind === 'error') {
      error = `${participant} refused: ${reply.code}: ${reply.message}`;
    } else if (reply.txId !== txId || reply.participant !== participant) {
      error = `${participant} answered for another transaction or participant`;
    } else if (reply.kind === 'vote' && sent.kind === 'prepare') {
      if (reply.vote === 'yes')
        return { kind: 'vote-received', now, txId, participant, vote: 'yes' };
      const { reason } = reply;
      return { kind: 'vote-received', now, txId, participant, vote: 'no', reason };
    } else if (reply.kind === 'ack' && sent.kind === 'decision') {
      return { kind: 'ack-received', now, txId, participant, decision: reply.decision };
    } else {
      error = `${participant} answered ${sent.kind} with ${reply.kind}`;
    }
    return { kind: 'send-failed', now, txId, participant, error };
  }
}
