/**
 * The coordinator's shell: it feeds the pure machine with what arrives from NATS and the clock,
 * and carries out the machine's effects against the journal and NATS.
 *
 * Inputs are queued and handled in batches, one batch per turn of the event loop. A batch's
 * journal records are written in one SQLite transaction (group commit: one fsync for every
 * payment that reached a checkpoint in that turn) before any of the batch's messages or replies
 * leave, so no message ever goes out ahead of the record it depends on. Lookups in the journal
 * happen when an input is handled, not when it arrives, so they see every earlier batch.
 *
 * Decisions for the participants wait for the next batch that sends PREPAREs, or decisionHoldMs:
 * a participant then wakes once for both, and applies both in one transaction.
 */
import { DeadlineTimer, HeldBack, InputBatcher, PendingRequests } from '../common/batching.ts';
import { crashPoint, isArmed } from '../common/crash.ts';
import {
  FencedError,
  JournalBusyError,
  JournalCorruptError,
  ValidationError,
} from '../common/errors.ts';
import { errorText, type Logger } from '../common/log.ts';
import { serveStats } from '../common/stats.ts';
import { createTracer } from '../common/trace.ts';
import { deliverOrStop, type Msg, type NatsConnection, type Subscription } from '../common/nats.ts';
import {
  clientIdOfSubject,
  decodePayRequest,
  decodeStatusRequest,
  encodeMessage,
  errorReply,
  subjects,
  type ParticipantMessage,
  type ParticipantName,
  type ParticipantReply,
} from '../common/protocol.ts';
import {
  ParticipantChannel,
  type Outgoing,
  type ParticipantAnswer,
  type SentMessage,
} from './adapters/participant-channel.ts';
import { purgeChunkMax, type SqliteJournal } from './adapters/sqlite-journal.ts';
import { decisionHoldMs } from './core/decision-hold.ts';
import { CoordinatorMachine, RecoveryRejectedError } from './core/machine.ts';
import type {
  CoordinatorConfig,
  CoordinatorEffect,
  CoordinatorInput,
  JournalRecord,
  StatusQuery,
} from './core/types.ts';

export interface CoordinatorServiceOptions {
  readonly nats: NatsConnection;
  readonly journal: SqliteJournal;
  readonly machine: CoordinatorConfig;
  /** How long one PREPARE or decision waits for its reply before it counts as failed. */
  readonly sendTimeoutMs: number;
  /** How often expired idempotency keys are purged. */
  readonly purgeIntervalMs: number;
  readonly log: Logger;
  readonly now: () => number;
  readonly newTransactionId: () => string;
  /** This term of leadership; stamped on every message to participants and status answer. */
  readonly epoch: number;
  /** Names this coordinator process for operators (the `leader` subject). */
  readonly instance: string;
  /**
   * Called once when the journal refuses this term's write: a newer term has begun
   * (FencedError), or another process kept the write lock past the busy timeout
   * (JournalBusyError). Either way the write did not happen, and this term must end.
   */
  readonly onTermOver: (error: FencedError | JournalBusyError) => void;
}

/**
 * Unforced records (`completed`) wait for the next forced write, which carries them in the same
 * SQLite transaction, or this long at most: under load they never cost a commit of their own.
 */
const unforcedRecordsWaitMs = 50;
/** Unforced records held at most; with more, they are written at once. */
const unforcedRecordsMax = 10_000;

/** A PREPARE or decision to send, encoded. */
interface Send {
  readonly participant: ParticipantName;
  readonly message: ParticipantMessage;
  readonly data: Uint8Array;
}

export class CoordinatorService {
  readonly #options: CoordinatorServiceOptions;
  readonly #machine: CoordinatorMachine;
  /** Inputs waiting for the next batch; each is built when handled, so its lookups are fresh. */
  readonly #batcher = new InputBatcher<CoordinatorInput>((inputs) => this.#flush(inputs));
  readonly #pending = new PendingRequests<Msg>();
  readonly #timer: DeadlineTimer;
  readonly #channel: ParticipantChannel;
  #purgeTimer: NodeJS.Timeout | undefined;
  /** The next chunk of a purge that has not caught up yet. */
  #purgeNext: NodeJS.Immediate | undefined;
  readonly #trace = createTracer('coordinator');
  readonly #subscriptions: Subscription[] = [];
  /** The journal refused this term's write (`#endTerm`): nothing more is written or sent. */
  #termOver = false;
  /** Unforced records not written yet, for the next forced write or unforcedRecordsWaitMs. */
  readonly #unforced = new HeldBack<JournalRecord>(unforcedRecordsWaitMs, () => {
    if (!this.#termOver) this.#writeJournal([]);
  });
  /** Decisions not sent yet, for the next batch with PREPAREs or decisionHoldMs. */
  readonly #decisions = new HeldBack<Send>(decisionHoldMs, () => {
    if (!this.#termOver) this.#sendAll(this.#decisions.take());
  });

  constructor(options: CoordinatorServiceOptions) {
    this.#options = options;
    this.#machine = new CoordinatorMachine(options.machine);
    this.#timer = new DeadlineTimer(options.now, () => {
      this.#batcher.enqueue(() => ({ kind: 'tick', now: options.now() }));
    });
    this.#channel = new ParticipantChannel({
      nats: options.nats,
      timeoutMs: options.sendTimeoutMs,
      now: options.now,
      onAnswer: (answer) => this.#onAnswer(answer),
    });
  }

  /**
   * Recovers from the journal, then starts serving clients and participants. Only the active
   * coordinator subscribes, so a request never reaches a standby. Throws JournalCorruptError on
   * bad records. The promise resolves once the NATS server has the subscriptions: a client that
   * sends before then, on another connection, may be told there are no responders.
   */
  start(): Promise<void> {
    // Recovery re-sends decisions at once: their answers must find the inbox open.
    this.#channel.open();
    this.#recover();
    const { nats, now, epoch, instance } = this.#options;
    const since = now();
    const subscribe = (subject: string, handle: (msg: Msg) => void): void => {
      const callback = deliverOrStop(handle);
      this.#subscriptions.push(nats.subscribe(subject, { queue: 'coordinator', callback }));
    };
    // Clients speak on subjects that end with their client id; NATS permissions decide who may
    // publish where, so the subject is the client's authenticated identity (docs/idempotency.md).
    subscribe(subjects.clientPayAll, (msg) => this.#onPay(msg));
    subscribe(subjects.clientStatusAll, (msg) => this.#onStatus(msg, 'client'));
    subscribe(subjects.status, (msg) => this.#onStatus(msg, 'service'));
    subscribe(subjects.inFlight, (msg) => {
      msg.respond(encodeMessage(this.#machine.inspect(now())));
    });
    subscribe(subjects.leader, (msg) => {
      msg.respond(encodeMessage({ instance, epoch, since, inFlight: this.#machine.inFlightCount }));
    });
    const stats = serveStats(nats, 'coordinator', () => this.#machine.inFlightCount);
    if (stats) this.#subscriptions.push(stats);
    this.#purgeTimer = setInterval(() => this.#purge(), this.#options.purgeIntervalMs);
    this.#purgeTimer.unref();
    return nats.flush();
  }

  /** Ends this term: stops serving and forgets everything in memory. The journal keeps the rest. */
  stop(): void {
    for (const subscription of this.#subscriptions) subscription.unsubscribe();
    this.#subscriptions.length = 0;
    this.#batcher.stop();
    this.#timer.stop();
    this.#channel.close();
    clearInterval(this.#purgeTimer);
    clearImmediate(this.#purgeNext);
    // Held decisions are not sent: the next term re-sends every decision not acknowledged.
    this.#decisions.clear();
    // Write the held unforced records; losing them would only mean re-sending decisions later.
    if (!this.#termOver) this.#writeJournal([]);
  }

  /**
   * Runs a journal operation; false (and the term ended) if the journal refused it: a newer term
   * has begun, or the write lock stayed with another process past the busy timeout.
   */
  #termHolds(operation: () => void): boolean {
    try {
      operation();
      return true;
    } catch (error) {
      if (!(error instanceof FencedError) && !(error instanceof JournalBusyError)) throw error;
      this.#endTerm(error);
      return false;
    }
  }

  /**
   * Stops at once, before anything else leaves this process: what the batch that could not be
   * written would have sent depends on that write. Memory goes with the term; the journal keeps
   * the rest, and the next term (here or in the other process) recovers from it.
   */
  #endTerm(error: FencedError | JournalBusyError): void {
    if (this.#termOver) return;
    this.#termOver = true;
    this.stop();
    this.#options.onTermOver(error);
  }

  /**
   * Purges expired payments, one chunk per turn of the event loop until caught up: at thousands
   * of payments a second, one chunk per interval would fall behind for ever.
   */
  #purge(): void {
    this.#purgeNext = undefined;
    if (this.#termOver) return;
    let purged: number;
    try {
      purged = this.#options.journal.purge(this.#options.now());
    } catch (error) {
      if (error instanceof FencedError) {
        this.#endTerm(error);
        return;
      }
      // Housekeeping: with the lock held elsewhere, the next interval purges instead.
      if (!(error instanceof JournalBusyError)) throw error;
      this.#options.log.warn('purge-deferred', { reason: error.message });
      return;
    }
    if (purged > 0) this.#options.log.info('keys-purged', { purged });
    if (purged >= purgeChunkMax) {
      this.#purgeNext ??= setImmediate(() => this.#purge());
    }
  }

  #recover(): void {
    const { journal, now } = this.#options;
    const records = journal.unfinishedRecords();
    for (const record of records) {
      try {
        this.#machine.step({ kind: 'record-recovered', record });
      } catch (error) {
        if (!(error instanceof RecoveryRejectedError)) throw error;
        throw new JournalCorruptError(journal.file, `transaction ${record.txId}`, error.message);
      }
    }
    const states = new Map(
      this.#machine.inspect(0).map((tx) => [tx.txId, stateOfPhase(tx.phase)] as const),
    );
    journal.checkIndex(states);
    this.#options.log.info('recovered', { records: records.length, inFlight: states.size });
    this.#execute(this.#machine.step({ kind: 'recovery-finished', now: now() }));
  }

  // -------------------------------------------------------------------------------------------
  // Arrivals. Malformed requests are answered at once and never reach the machine or journal.

  #onPay(msg: Msg): void {
    try {
      const clientId = clientIdOfSubject(msg.subject, 'pay');
      const request = decodePayRequest(msg.data);
      checkClientId(request.clientId, clientId);
      const { idempotencyKey } = request;
      this.#trace?.({ step: 'receive', peer: 'client', idempotencyKey, what: 'pay' });
      const requestRef = this.#pending.register(msg);
      const { journal, now, newTransactionId } = this.#options;
      this.#batcher.enqueue(() => ({
        kind: 'pay-requested',
        now: now(),
        requestRef,
        request,
        newTxId: newTransactionId(),
        stored: journal.findByKey(request.clientId, request.idempotencyKey, now()),
      }));
    } catch (error) {
      this.#refuse(msg, error);
    }
  }

  /**
   * A status question on the service subject (any transaction, any client's key) or on a
   * client's own subject (only that client's key and transactions).
   */
  #onStatus(msg: Msg, asker: 'service' | 'client'): void {
    try {
      const clientId = asker === 'client' ? clientIdOfSubject(msg.subject, 'status') : undefined;
      const decoded = decodeStatusRequest(msg.data);
      let query: StatusQuery = decoded;
      if (clientId !== undefined) {
        if ('txId' in decoded) query = { txId: decoded.txId, clientId };
        else checkClientId(decoded.clientId, clientId);
      }
      const requestRef = this.#pending.register(msg);
      const { journal, now } = this.#options;
      this.#batcher.enqueue(() => ({
        kind: 'status-requested',
        now: now(),
        requestRef,
        query,
        stored:
          'txId' in query
            ? journal.findById(query.txId)
            : journal.findByKey(query.clientId, query.idempotencyKey, now()),
      }));
    } catch (error) {
      this.#refuse(msg, error);
    }
  }

  #refuse(msg: Msg, error: unknown): void {
    if (!(error instanceof ValidationError)) throw error;
    msg.respond(encodeMessage(errorReply(error.code, error.message)));
  }

  // -------------------------------------------------------------------------------------------
  // Batches.

  #flush(inputs: readonly (() => CoordinatorInput)[]): void {
    // A paused coordinator that wakes after a takeover must not answer from its stale memory:
    // check the term before handling anything.
    if (!this.#termHolds(() => this.#options.journal.checkTerm())) return;
    const effects: CoordinatorEffect[] = [];
    this.#options.journal.reading(inputs.length, () => {
      for (const makeInput of inputs) {
        const input = makeInput();
        effects.push(...this.#machine.step(input));
        // An acknowledgement that leaves others outstanding: "after some but not all acks".
        // Checked per input, not per batch, so three acks arriving together still reach it.
        if (input.kind === 'ack-received' && this.#machine.isInFlight(input.txId)) {
          crashPoint('coordinator-after-some-acks');
        }
      }
    });
    this.#execute(effects);
  }

  #execute(effects: readonly CoordinatorEffect[]): void {
    // Test-only mutation: see test/sim/mutations.ts. In the machine's order a decision's replies
    // and messages leave (and reach NATS) before its record is written; a crash in between
    // (coordinator-before-decision) loses a decision that others have heard.
    const decided = effects.findIndex((e) => e.kind === 'journal' && e.record.kind === 'decided');
    const late = decided > 0 && effects.slice(0, decided).some((e) => e.kind !== 'journal');
    if (this.#mutated('send-decision-before-forcing') && late) {
      this.#execute(effects.filter((effect) => effect.kind !== 'journal'));
      void this.#options.nats.flush().then(() => {
        this.#execute(effects.filter((effect) => effect.kind === 'journal'));
      });
      return;
    }
    const records: JournalRecord[] = [];
    let forced = false;
    for (const effect of effects) {
      if (effect.kind !== 'journal') continue;
      records.push(effect.record);
      forced ||= effect.forced;
    }
    const decidesCommit = records.some((r) => r.kind === 'decided' && r.decision === 'commit');
    if (decidesCommit) crashPoint('coordinator-before-decision');
    if (!forced) this.#holdUnforced(records);
    else if (!this.#writeJournal(records)) return;
    if (records.some((record) => record.kind === 'begin')) crashPoint('coordinator-after-begin');
    if (records.some((record) => record.kind === 'decided')) {
      crashPoint('coordinator-after-decision');
    }
    for (const effect of effects) {
      if (effect.kind !== 'reply') continue;
      const msg = this.#pending.take(effect.requestRef);
      const { reply } = effect;
      const stamped = reply.kind === 'status' ? { ...reply, epoch: this.#options.epoch } : reply;
      msg?.respond(encodeMessage(stamped));
      this.#traceReply(effect.reply);
    }
    const sends = this.#encodeSends(effects);
    const sentPrepare = sends.some((send) => send.message.kind === 'prepare');
    // The mutation must send its decisions before they are written, so it holds none back.
    if (sentPrepare || this.#mutated('send-decision-before-forcing')) {
      const held = this.#decisions.take();
      this.#sendAll(held.length === 0 ? sends : [...held, ...sends]);
    } else {
      this.#decisions.hold(sends);
    }
    if (sentPrepare && isArmed('coordinator-after-prepares')) {
      // Die only once the PREPAREs have left this process, not while they sit in its buffer.
      void this.#options.nats.flush().then(() => crashPoint('coordinator-after-prepares'));
    }
    this.#armTimer();
  }

  /**
   * The batch's PREPAREs and decisions, each message encoded once: the machine gives the same
   * message object to all the participants it goes to, one after the other.
   */
  #encodeSends(effects: readonly CoordinatorEffect[]): Send[] {
    const sends: Send[] = [];
    let last: { message: ParticipantMessage; data: Uint8Array } | undefined;
    for (const effect of effects) {
      if (effect.kind !== 'send') continue;
      const { participant, message } = effect;
      if (last?.message !== message) {
        last = { message, data: encodeMessage({ ...message, epoch: this.#options.epoch }) };
      }
      sends.push({ participant, message, data: last.data });
    }
    return sends;
  }

  /** Test-only mutation: see test/sim/mutations.ts */
  #mutated(name: string): boolean {
    return this.#options.machine.mutations?.has(name) === true;
  }

  /**
   * Writes records, after every unforced record held so far, in one SQLite transaction: durable
   * when this returns. False (and the term ended) if a newer term has begun.
   */
  #writeJournal(records: readonly JournalRecord[]): boolean {
    const held = this.#unforced.take();
    const all = held.length === 0 ? records : [...held, ...records];
    const { journal, now } = this.#options;
    if (!this.#termHolds(() => journal.append(all, now()))) return false;
    for (const record of all) {
      const what = record.kind === 'decided' ? `${record.decision} forced` : record.kind;
      this.#trace?.({ step: 'journal', txId: record.txId, what });
    }
    return true;
  }

  /** Holds unforced records for the next forced write; writes them after a short wait at most. */
  #holdUnforced(records: readonly JournalRecord[]): void {
    this.#unforced.hold(records);
    if (this.#unforced.size >= unforcedRecordsMax) this.#writeJournal([]);
  }

  #traceReply(reply: Extract<CoordinatorEffect, { kind: 'reply' }>['reply']): void {
    if (reply.kind === 'outcome' || reply.kind === 'in-progress') {
      const what = reply.kind === 'outcome' ? reply.outcome : 'in progress';
      const { txId, idempotencyKey } = reply;
      this.#trace?.({ step: 'reply', peer: 'client', txId, idempotencyKey, what });
    }
  }

  /** Sends in order; what goes to one participant leaves as one batch (ParticipantChannel). */
  #sendAll(sends: readonly Send[]): void {
    const byParticipant = new Map<ParticipantName, Outgoing[]>();
    for (const { participant, message, data } of sends) {
      const { txId } = message;
      const what = message.kind === 'prepare' ? 'prepare' : message.decision;
      this.#trace?.({ step: 'send', peer: participant, txId, what });
      let outgoing = byParticipant.get(participant);
      if (outgoing === undefined) byParticipant.set(participant, (outgoing = []));
      outgoing.push({ sent: { kind: message.kind, txId }, data });
    }
    for (const [participant, outgoing] of byParticipant) {
      this.#channel.send(participant, outgoing, subjects.participant(participant));
    }
  }

  /** A participant's reply, or a send that got none, becomes an input of the next batch. */
  #onAnswer(answer: ParticipantAnswer): void {
    const { participant, sent } = answer;
    if (answer.kind === 'reply') {
      this.#batcher.enqueue(() => this.#answerInput(participant, sent, answer.read));
      return;
    }
    const { txId } = sent;
    const { error } = answer;
    this.#trace?.({ step: 'receive', peer: participant, txId, what: `no answer (${error})` });
    const { now } = this.#options;
    this.#batcher.enqueue(() => ({ kind: 'send-failed', now: now(), txId, participant, error }));
  }

  /** Turns a participant's reply into an input; a reply that breaks the protocol is a failure. */
  #answerInput(
    participant: ParticipantName,
    sent: SentMessage,
    read: () => ParticipantReply,
  ): CoordinatorInput {
    const now = this.#options.now();
    const { txId } = sent;
    let failure: string;
    try {
      const reply = read();
      if (reply.kind === 'error') {
        failure = `${participant} refused: ${reply.code}: ${reply.message}`;
      } else if (reply.txId !== txId || reply.participant !== participant) {
        failure = `${participant} answered for another transaction or participant`;
      } else if (reply.kind === 'vote' && sent.kind === 'prepare') {
        const { vote } = reply;
        this.#trace?.({ step: 'receive', peer: participant, txId, what: `vote ${vote}` });
        if (vote === 'yes') return { kind: 'vote-received', now, txId, participant, vote };
        return { kind: 'vote-received', now, txId, participant, vote, reason: reply.reason };
      } else if (reply.kind === 'ack' && sent.kind === 'decision') {
        this.#trace?.({ step: 'receive', peer: participant, txId, what: `ack ${reply.decision}` });
        return { kind: 'ack-received', now, txId, participant, decision: reply.decision };
      } else {
        failure = `${participant} answered ${sent.kind} with ${reply.kind}`;
      }
    } catch (error) {
      failure = `${participant} sent a malformed reply: ${errorText(error)}`;
    }
    this.#options.log.warn('participant-reply-rejected', { txId, participant, failure });
    return { kind: 'send-failed', now, txId, participant, error: failure };
  }

  /** Keeps one timer, set for the machine's next deadline. */
  #armTimer(): void {
    this.#timer.arm(this.#machine.nextDeadline());
  }
}

/**
 * The body names its client too (the journal and the fingerprint's scope use it); it must be the
 * client the subject names, or one client could act under another's id.
 */
function checkClientId(claimed: string, subjectClientId: string): void {
  if (claimed !== subjectClientId) {
    throw new ValidationError(
      'clientId',
      `${claimed} is not the client of this subject (${subjectClientId})`,
    );
  }
}

function stateOfPhase(phase: 'preparing' | 'committing' | 'aborting') {
  if (phase === 'preparing') return 'preparing';
  return phase === 'committing' ? 'committed' : 'aborted';
}
