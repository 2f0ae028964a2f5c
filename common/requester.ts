/**
 * Request/reply for the client library (and the benchmark's echo load, which must pay what the
 * client pays): what nats.js's `request()` does, with the same errors, on one reply subscription.
 *
 * Why not `request()` itself: it keeps every request in a `Map` of its own, whose churn makes V8
 * promote every request's objects until the next full GC (common/turnover-map.ts says how), and it
 * races two promises and builds a `RequestError` for every request it completes. In a client
 * making a thousand payments a second that meant garbage-collection pauses as long as the
 * coordinator's (docs/performance.md, eighth round).
 *
 * Replies come to `<inbox>.<token>`, under one subscription to `<inbox>.*`, where the inbox is
 * made from the connection's inbox prefix as nats.js makes its own, so the same permissions allow
 * it. Failures are nats.js's: a `TimeoutError` after the timeout; a `RequestError` whose cause is a
 * `NoRespondersError` when nobody subscribes to the subject (the server's 503), or a
 * `PermissionViolationError` when the server refuses the publish (for requests to that subject) or
 * the reply subscription (for every request waiting; the next request subscribes again); a
 * `RequestError` when the connection closes.
 */
import { createInbox, errors, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { isNoRespondersReply, type Subscription } from './nats.ts';
import { TurnoverMap } from './turnover-map.ts';

interface Waiting {
  readonly subject: string;
  readonly resolve: (msg: Msg) => void;
  readonly reject: (error: unknown) => void;
  readonly timer: NodeJS.Timeout;
}

export class Requester {
  readonly #nats: NatsConnection;
  readonly #inboxPrefix: string | undefined;
  readonly #waiting = new TurnoverMap<string, Waiting>();
  #inbox = '';
  #subscription: Subscription | undefined;
  #next = 1;

  /** `inboxPrefix`: the one the connection was made with, if any (`_INBOX` otherwise). */
  constructor(nats: NatsConnection, inboxPrefix?: string) {
    this.#nats = nats;
    this.#inboxPrefix = inboxPrefix;
    void this.#watchPublishRefusals();
    void nats.closed().then(() => {
      this.#failAll(new errors.RequestError('connection closed'));
    });
  }

  /** Publishes `data` to `subject` and resolves with the first reply. */
  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Msg> {
    return new Promise<Msg>((resolve, reject) => {
      const token = String(this.#next++);
      // Throws on a closed connection, which rejects this promise.
      const reply = `${this.#subscribe()}.${token}`;
      const timer = setTimeout(() => {
        this.#settle(token)?.reject(new errors.TimeoutError());
      }, timeoutMs);
      this.#waiting.set(token, { subject, resolve, reject, timer });
      try {
        this.#nats.publish(subject, data, { reply });
      } catch (error) {
        // A closed or draining connection refuses at once.
        this.#settle(token)?.reject(error);
      }
    });
  }

  /** The reply subscription's inbox, subscribing first if there is none. */
  #subscribe(): string {
    if (this.#subscription !== undefined) return this.#inbox;
    const inbox = createInbox(this.#inboxPrefix);
    this.#subscription = this.#nats.subscribe(`${inbox}.*`, {
      callback: (error, msg) => {
        if (error !== null) {
          // The server refused the subscription: nothing will come to it.
          this.#subscription = undefined;
          this.#failAll(new errors.RequestError(error.message, { cause: error }));
          return;
        }
        this.#onReply(inbox, msg);
      },
    });
    this.#inbox = inbox;
    return inbox;
  }

  #onReply(inbox: string, msg: Msg): void {
    const waiting = this.#settle(msg.subject.slice(inbox.length + 1));
    if (waiting === undefined) return;
    if (isNoRespondersReply(msg)) {
      const cause = new errors.NoRespondersError(waiting.subject);
      waiting.reject(new errors.RequestError(cause.message, { cause }));
      return;
    }
    waiting.resolve(msg);
  }

  /** The server reports a refused publish on the connection's status, naming the subject. */
  async #watchPublishRefusals(): Promise<void> {
    for await (const status of this.#nats.status()) {
      if (status.type !== 'error') continue;
      const { error } = status;
      if (!(error instanceof errors.PermissionViolationError)) continue;
      if (error.operation !== 'publish') continue;
      for (const [token, waiting] of [...this.#waiting]) {
        if (waiting.subject !== error.subject) continue;
        this.#settle(token)?.reject(new errors.RequestError(error.message, { cause: error }));
      }
    }
  }

  #settle(token: string): Waiting | undefined {
    const waiting = this.#waiting.get(token);
    if (waiting === undefined) return undefined;
    this.#waiting.delete(token);
    clearTimeout(waiting.timer);
    return waiting;
  }

  #failAll(error: unknown): void {
    for (const [token] of [...this.#waiting]) this.#settle(token)?.reject(error);
  }
}
