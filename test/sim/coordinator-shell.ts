/**
 * The coordinator's shell, simulated: the real `CoordinatorMachine` fed with what the simulated
 * network delivers, its effects carried out against an in-memory journal with the real journal's
 * crash semantics. It mirrors `coordinator/service.ts`: lookups by key or id come from the journal
 * when the input is handled; PREPARE and decision requests carry a timeout and turn into
 * `send-failed` when it passes or when NATS answers "no responders"; a participant's reply is
 * checked as `#answerInput` checks it. Recovery is the real one: `record-recovered` for every
 * record of every unfinished transaction, in order, then `recovery-finished`. With a key
 * retention, the real purge timer runs at the interval the real shell computes, from each start.
 */
import type {
  ParticipantMessage,
  ParticipantName,
  ParticipantReply,
} from '../../common/protocol.ts';
import { keyPurgeIntervalMs } from '../../coordinator/core/key-retention.ts';
import { CoordinatorMachine } from '../../coordinator/core/machine.ts';
import type {
  CoordinatorConfig,
  CoordinatorEffect,
  CoordinatorInput,
  JournalRecord,
  RequestRef,
} from '../../coordinator/core/types.ts';
import { SimJournal } from './journal.ts';
import { SimProcess } from './process.ts';
import type { NodeName, Packet, ProcessContext } from './world.ts';

export class SimCoordinator extends SimProcess<CoordinatorInput, CoordinatorEffect> {
  readonly journal: SimJournal;
  readonly #config: CoordinatorConfig;
  #machine: CoordinatorMachine | undefined;
  readonly #requests = new Map<RequestRef, { requestId: number; from: NodeName }>();
  #nextRequestRef = 1;
  /** Requests to participants awaiting a reply, by request id. */
  readonly #outstanding = new Map<
    number,
    { readonly participant: ParticipantName; readonly message: ParticipantMessage }
  >();
  #write: { records: JournalRecord[]; durableCount: number } | undefined;

  constructor(ctx: ProcessContext, config: CoordinatorConfig) {
    super('coordinator', ctx);
    this.#config = config;
    // Test-only mutation: see test/sim/mutations.ts
    const purgeRule = ctx.mutations.has('purge-by-age') ? 'begun-before-cutoff' : undefined;
    this.journal = new SimJournal(ctx.params.keys?.retentionMs, purgeRule);
  }

  get inFlightCount(): number | undefined {
    return this.up ? this.#machine?.inFlightCount : undefined;
  }

  /** A request from a client or a participant: `pay` or `status`. */
  onRequest(packet: Extract<Packet, { type: 'request' }>): void {
    const { body } = packet;
    if (body.kind === 'participant') return;
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

  /** The purge timer of the real shell fired: forget what completed before the retention. */
  onPurge(): void {
    if (!this.up || this.journal.retentionMs === undefined) return;
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

  protected recover(): CoordinatorEffect[] {
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
    return durableCount > 0;
  }

  protected commitWrite(): CoordinatorInput[] {
    const write = this.#write;
    if (write === undefined) return [];
    this.#write = undefined;
    const durableBefore = this.journal.durableLength;
    const released = this.journal.append(write.records, write.durableCount, this.ctx.now);
    for (let index = 0; index < released; index += 1) this.ctx.count('expired-key-released');
    this.#reportDurable(durableBefore);
    return [];
  }

  protected perform(effect: CoordinatorEffect): void {
    if (effect.kind === 'send') {
      this.#sendToParticipant(effect.participant, effect.message);
    } else if (effect.kind === 'reply') {
      this.#reply(effect.requestRef, effect.reply);
    }
  }

  protected loseVolatileState(): void {
    this.#machine = undefined;
    this.#requests.clear();
    this.#outstanding.clear();
    this.#write = undefined;
    const lost = this.journal.crash(this.ctx.rng);
    for (let index = 0; index < lost; index += 1) this.ctx.count('journal-records-lost');
  }

  /** Tells the checker about every record that became durable with the last write. */
  #reportDurable(from: number): void {
    const { checker } = this.ctx;
    for (let index = from; index < this.journal.durableLength; index += 1) {
      const record = this.journal.recordAt(index);
      if (record?.kind === 'begin') checker.onBeginDurable(record);
      else if (record?.kind === 'decided') checker.onDecisionDurable(record.txId, record.decision);
      else if (record?.kind === 'completed') checker.onCompletedDurable(record);
    }
  }

  #sendToParticipant(participant: ParticipantName, message: ParticipantMessage): void {
    const { ctx } = this;
    const requestId = ctx.nextRequestId();
    this.#outstanding.set(requestId, { participant, message });
    if (message.kind === 'decision') ctx.checker.onDecisionIssued(message.txId, message.decision);
    const body = { kind: 'participant', message } as const;
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
        ? ({ kind: 'status', reply } as const)
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
