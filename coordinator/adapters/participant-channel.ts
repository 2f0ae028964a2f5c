/**
 * How the coordinator sends PREPAREs and decisions and gets the answers: request/reply over core
 * NATS without a request object per message, and with one message per participant for all that
 * one batch sends it.
 *
 * Every message is published with a reply subject under one inbox this coordinator subscribes to.
 * A message alone is sent as it is, and its reply subject names what it answers:
 * `<inbox>.<prepare|decision>.<participant>.<txId>`, so any reply, even an error without a
 * transaction id, finds its transaction, and a "no responders" status from the server (a 503 on
 * the reply subject) names the participant that has no subscriber. Several messages for one
 * participant travel as one `batch` (common/protocol.ts) with the reply subject
 * `<inbox>.batch.<participant>.<n>`; the participant answers its elements by index, in one or more
 * `replies` messages, and the channel remembers what each batch held until every element is
 * answered or timed out.
 *
 * A send without a reply within the timeout is reported once, as a failure; the machine's own
 * timers decide when to send again. Compared with nats.js `request()`, this saves a promise, a
 * timer, a token and an Error per message (nats.js builds one even for a request that succeeds):
 * about a quarter of the coordinator's time under load. Batches save most of the rest of the
 * per-message work, here, in nats-server and in the participants.
 */
import { errorText } from '../../common/log.ts';
import { TurnoverMap } from '../../common/turnover-map.ts';
import { createInbox } from '@nats-io/transport-node';
import {
  deliverOrStop,
  isNoRespondersReply,
  type Msg,
  type NatsConnection,
  type Subscription,
} from '../../common/nats.ts';
import {
  batchMessagesMax,
  decodeParticipantReplies,
  decodeParticipantReply,
  encodeBatch,
  messageBytesMax,
  participantNames,
  readParticipantReply,
  type ParticipantName,
  type ParticipantReply,
} from '../../common/protocol.ts';

/** What a reply answers: the kind of message sent and its transaction. */
export interface SentMessage {
  readonly kind: 'prepare' | 'decision';
  readonly txId: string;
}

/** A message to send, encoded. */
export interface Outgoing {
  readonly sent: SentMessage;
  readonly data: Uint8Array;
}

export type ParticipantAnswer =
  | {
      readonly kind: 'reply';
      readonly participant: ParticipantName;
      readonly sent: SentMessage;
      /** The reply, checked when called: throws ValidationError if it is malformed. */
      readonly read: () => ParticipantReply;
    }
  | {
      readonly kind: 'failed';
      readonly participant: ParticipantName;
      readonly sent: SentMessage;
      readonly error: string;
    };

export interface ParticipantChannelOptions {
  readonly nats: NatsConnection;
  /** How long a send waits for its reply before it is reported as failed. */
  readonly timeoutMs: number;
  readonly now: () => number;
  readonly onAnswer: (answer: ParticipantAnswer) => void;
}

/** A batch sent and not fully answered: what its indexes stand for. */
interface Batch {
  readonly id: string;
  readonly participant: ParticipantName;
  readonly elements: readonly SentMessage[];
  /** Elements still waiting for their reply under this batch. */
  open: number;
}

/**
 * Sends to one participant waiting for their reply, by transaction id: one map per participant
 * and kind, so the key is the transaction id string the machine made, hashed once, instead of a
 * `<kind>.<participant>.<txId>` string built and hashed twice per message: 2.6 of the 31 KB the
 * coordinator allocated per payment at the peak (docs/performance.md, eleventh round).
 */
type Waits = Readonly<Record<SentMessage['kind'], TurnoverMap<string, Waiting>>>;

function waits(): Waits {
  return { prepare: new TurnoverMap(), decision: new TurnoverMap() };
}

/** A send waiting for its reply. */
interface Waiting {
  readonly sentAt: number;
  readonly sent: SentMessage;
  readonly batch: Batch | undefined;
}

const sentKinds: readonly string[] = ['prepare', 'decision'];

/*
 * A reply's reader is made here, not written in place as `read: () => ...`: tsx compiles with
 * esbuild's keepNames, which wraps every function given a name by where it is written (an object
 * property, a variable) in a call that defines its `name`. That call costs about 0.3 µs and a
 * property store per closure, and these are made for every reply (docs/performance.md, change 42).
 */

/** A lone message's reply, decoded and checked when read. */
function messageReader(data: Uint8Array): () => ParticipantReply {
  return () => decodeParticipantReply(data);
}

/** A batch element's reply, checked when read. */
function elementReader(element: unknown): () => ParticipantReply {
  return () => readParticipantReply(element);
}

/**
 * A batch's elements stay under half the protocol's byte cap: room for the batch's own fields, and
 * the participant's answers to them must fit in one message too.
 */
const batchBytesMax = messageBytesMax / 2;

export class ParticipantChannel {
  readonly #options: ParticipantChannelOptions;
  readonly #inbox = createInbox();
  /**
   * Sends waiting for a reply, by participant, kind and transaction; each map in the order sent,
   * since a re-send moves its entry to the end. Bounded by the transactions in flight times the
   * participants.
   */
  readonly #waiting: Readonly<Record<ParticipantName, Waits>> = {
    bank: waits(),
    vendor: waits(),
    customer: waits(),
  };
  /** Batches with elements still waiting, by id. */
  readonly #batches = new TurnoverMap<string, Batch>();
  #nextBatch = 1;
  #subscription: Subscription | undefined;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(options: ParticipantChannelOptions) {
    this.#options = options;
  }

  /** Subscribes to the inbox: call before the first send. */
  open(): void {
    const { nats, timeoutMs } = this.#options;
    this.#subscription = nats.subscribe(`${this.#inbox}.>`, {
      callback: deliverOrStop((msg) => this.#onReply(msg)),
    });
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(10, Math.floor(timeoutMs / 4)));
    this.#sweeper.unref();
  }

  close(): void {
    this.#subscription?.unsubscribe();
    this.#subscription = undefined;
    clearInterval(this.#sweeper);
    for (const [, waits] of this.#waitMaps()) waits.clear();
    this.#batches.clear();
  }

  /**
   * Sends messages to one participant, in this order: alone if there is one, else in batches of
   * at most batchMessagesMax elements and batchBytesMax bytes.
   */
  send(participant: ParticipantName, messages: readonly Outgoing[], subject: string): void {
    let chunk: Outgoing[] = [];
    let bytes = 0;
    for (const message of messages) {
      const size = message.data.length + 1; // and its comma
      const full = chunk.length === batchMessagesMax;
      if (full || (chunk.length > 0 && bytes + size > batchBytesMax)) {
        this.#publish(participant, chunk, subject);
        chunk = [];
        bytes = 0;
      }
      chunk.push(message);
      bytes += size;
    }
    if (chunk.length > 0) this.#publish(participant, chunk, subject);
  }

  #publish(participant: ParticipantName, chunk: readonly Outgoing[], subject: string): void {
    const [only] = chunk;
    let reply: string;
    let data: Uint8Array;
    let batch: Batch | undefined;
    if (chunk.length === 1 && only !== undefined) {
      reply = `${this.#inbox}.${only.sent.kind}.${participant}.${only.sent.txId}`;
      data = only.data;
    } else {
      const id = String(this.#nextBatch++);
      const elements = chunk.map((outgoing) => outgoing.sent);
      batch = { id, participant, elements, open: elements.length };
      this.#batches.set(id, batch);
      reply = `${this.#inbox}.batch.${participant}.${id}`;
      data = encodeBatch(chunk.map((outgoing) => outgoing.data));
    }
    const sentAt = this.#options.now();
    for (const { sent } of chunk) {
      this.#settle(participant, sent);
      this.#waiting[participant][sent.kind].set(sent.txId, { sentAt, sent, batch });
    }
    try {
      this.#options.nats.publish(subject, data, { reply });
    } catch (error) {
      // A closed or draining connection refuses at once; the machine re-sends later.
      for (const { sent } of chunk) {
        this.#settle(participant, sent);
        this.#options.onAnswer({ kind: 'failed', participant, sent, error: errorText(error) });
      }
    }
  }

  /** Stops waiting for a send's reply, and forgets its batch once nothing in it waits. */
  #settle(participant: ParticipantName, sent: SentMessage): void {
    const waits = this.#waiting[participant][sent.kind];
    const waiting = waits.get(sent.txId);
    if (waiting === undefined) return;
    waits.delete(sent.txId);
    const { batch } = waiting;
    if (batch === undefined) return;
    batch.open -= 1;
    if (batch.open === 0) this.#batches.delete(batch.id);
  }

  #onReply(msg: Msg): void {
    const parts = msg.subject.slice(this.#inbox.length + 1).split('.');
    const [kind, participant, id] = parts;
    if (parts.length !== 3 || kind === undefined || id === undefined) return;
    if (!participantNames.includes(participant as ParticipantName)) return;
    const name = participant as ParticipantName;
    const noResponders = isNoRespondersReply(msg);
    if (kind === 'batch') {
      this.#onBatchReply(name, id, msg.data, noResponders);
      return;
    }
    if (!sentKinds.includes(kind)) return;
    const sent: SentMessage = { kind: kind as SentMessage['kind'], txId: id };
    this.#settle(name, sent);
    if (noResponders) {
      this.#options.onAnswer({ kind: 'failed', participant: name, sent, error: 'no responders' });
      return;
    }
    const { data } = msg;
    this.#options.onAnswer({
      kind: 'reply',
      participant: name,
      sent,
      read: messageReader(data),
    });
  }

  /**
   * Answers to a batch's elements. An answer for an element no longer waiting (answered, or
   * timed out) is still passed on while the batch is remembered, as a lone send's late reply is;
   * once every element has settled the batch is forgotten and its late answers are dropped.
   */
  #onBatchReply(
    participant: ParticipantName,
    id: string,
    data: Uint8Array,
    noResponders: boolean,
  ): void {
    const batch = this.#batches.get(id);
    if (batch === undefined || batch.participant !== participant) return;
    const { onAnswer } = this.#options;
    if (noResponders) {
      this.#answerOpen(batch, (sent) => ({
        kind: 'failed',
        participant,
        sent,
        error: 'no responders',
      }));
      return;
    }
    let decoded;
    try {
      decoded = decodeParticipantReplies(data);
    } catch (error) {
      // Unreadable as a whole: every element still waiting gets the error as its reply.
      const read = (): never => {
        throw error;
      };
      this.#answerOpen(batch, (sent) => ({ kind: 'reply', participant, sent, read }));
      return;
    }
    if (decoded.kind === 'error') {
      const { error } = decoded;
      this.#answerOpen(batch, (sent) => ({ kind: 'reply', participant, sent, read: () => error }));
      return;
    }
    for (const { index, reply } of decoded.replies) {
      const sent = batch.elements[index];
      if (sent === undefined) continue;
      this.#settle(participant, sent);
      onAnswer({ kind: 'reply', participant, sent, read: elementReader(reply) });
    }
  }

  /** Settles every element of the batch still waiting under it, with the answer made for it. */
  #answerOpen(batch: Batch, answerFor: (sent: SentMessage) => ParticipantAnswer): void {
    for (const sent of this.#openElements(batch)) {
      this.#settle(batch.participant, sent);
      this.#options.onAnswer(answerFor(sent));
    }
  }

  /** The batch's elements still waiting under it (not re-sent since in another message). */
  #openElements(batch: Batch): SentMessage[] {
    const waits = this.#waiting[batch.participant];
    return batch.elements.filter((sent) => waits[sent.kind].get(sent.txId)?.batch === batch);
  }

  /**
   * Reports every send older than the timeout, once. Each map oldest first, so it stops at a
   * young one.
   */
  #sweep(): void {
    const { now, timeoutMs, onAnswer } = this.#options;
    const cutoff = now() - timeoutMs;
    const error = `timeout after ${timeoutMs} ms`;
    for (const [participant, waits] of this.#waitMaps()) {
      for (const { sentAt, sent } of waits.values()) {
        if (sentAt > cutoff) break;
        this.#settle(participant, sent);
        onAnswer({ kind: 'failed', participant, sent, error });
      }
    }
  }

  /** Every map of waiting sends, with the participant it is for. */
  *#waitMaps(): Generator<[ParticipantName, TurnoverMap<string, Waiting>]> {
    for (const participant of participantNames) {
      for (const waits of Object.values(this.#waiting[participant])) yield [participant, waits];
    }
  }
}
