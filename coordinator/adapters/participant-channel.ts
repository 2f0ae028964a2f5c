/**
 * How the coordinator sends PREPAREs and decisions and gets the answers: request/reply over core
 * NATS without a request object per message.
 *
 * Every message is published with a reply subject under one inbox this coordinator subscribes to,
 * and the reply subject names what it answers: `<inbox>.<prepare|decision>.<participant>.<txId>`.
 * So any reply, even an error without a transaction id, finds its transaction, and a "no
 * responders" status from the server (a 503 on the reply subject) names the participant that has
 * no subscriber. A send without a reply within the timeout is reported once, as a failure; the
 * machine's own timers decide when to send again. Compared with nats.js `request()`, this saves a
 * promise, a timer, a token and an Error per message (nats.js builds one even for a request that
 * succeeds): about a quarter of the coordinator's time under load.
 */
import { errorText } from '../../common/log.ts';
import { createInbox } from '@nats-io/transport-node';
import type { Msg, NatsConnection, Subscription } from '../../common/nats.ts';
import { participantNames, type ParticipantName } from '../../common/protocol.ts';

/** What a reply answers: the kind of message sent and its transaction. */
export interface SentMessage {
  readonly kind: 'prepare' | 'decision';
  readonly txId: string;
}

export type ParticipantAnswer =
  | {
      readonly kind: 'reply';
      readonly participant: ParticipantName;
      readonly sent: SentMessage;
      readonly data: Uint8Array;
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

const sentKinds: readonly string[] = ['prepare', 'decision'];

export class ParticipantChannel {
  readonly #options: ParticipantChannelOptions;
  readonly #inbox = createInbox();
  /**
   * Sends waiting for a reply, by reply subject, with the time each was sent; in the order sent,
   * since a re-send moves its entry to the end. Bounded by the transactions in flight times the
   * participants.
   */
  readonly #waiting = new Map<string, number>();
  #subscription: Subscription | undefined;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(options: ParticipantChannelOptions) {
    this.#options = options;
  }

  /** Subscribes to the inbox: call before the first send. */
  open(): void {
    const { nats, timeoutMs } = this.#options;
    this.#subscription = nats.subscribe(`${this.#inbox}.>`, {
      callback: (_error, msg) => this.#onReply(msg),
    });
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(10, Math.floor(timeoutMs / 4)));
    this.#sweeper.unref();
  }

  close(): void {
    this.#subscription?.unsubscribe();
    this.#subscription = undefined;
    clearInterval(this.#sweeper);
    this.#waiting.clear();
  }

  send(participant: ParticipantName, sent: SentMessage, data: Uint8Array, subject: string): void {
    const reply = `${this.#inbox}.${sent.kind}.${participant}.${sent.txId}`;
    this.#waiting.delete(reply);
    this.#waiting.set(reply, this.#options.now());
    try {
      this.#options.nats.publish(subject, data, { reply });
    } catch (error) {
      // A closed or draining connection refuses at once; the machine re-sends later.
      this.#waiting.delete(reply);
      this.#options.onAnswer({ kind: 'failed', participant, sent, error: errorText(error) });
    }
  }

  #onReply(msg: Msg): void {
    const parts = msg.subject.slice(this.#inbox.length + 1).split('.');
    const [kind, participant, txId] = parts;
    if (parts.length !== 3 || kind === undefined || participant === undefined) return;
    if (txId === undefined || !sentKinds.includes(kind)) return;
    if (!participantNames.includes(participant as ParticipantName)) return;
    this.#waiting.delete(msg.subject);
    const sent: SentMessage = { kind: kind as SentMessage['kind'], txId };
    const name = participant as ParticipantName;
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      this.#options.onAnswer({ kind: 'failed', participant: name, sent, error: 'no responders' });
      return;
    }
    this.#options.onAnswer({ kind: 'reply', participant: name, sent, data: msg.data });
  }

  /** Reports every send older than the timeout, once. Oldest first, so it stops at a young one. */
  #sweep(): void {
    const { now, timeoutMs, onAnswer } = this.#options;
    const cutoff = now() - timeoutMs;
    for (const [reply, sentAt] of this.#waiting) {
      if (sentAt > cutoff) return;
      this.#waiting.delete(reply);
      const [kind, participant, txId] = reply.slice(this.#inbox.length + 1).split('.');
      if (kind === undefined || participant === undefined || txId === undefined) continue;
      const sent: SentMessage = { kind: kind as SentMessage['kind'], txId };
      const error = `timeout after ${timeoutMs} ms`;
      onAnswer({ kind: 'failed', participant: participant as ParticipantName, sent, error });
    }
  }
}
