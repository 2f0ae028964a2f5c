/**
 * The Continuum client: make a payment and get one definitive answer, whatever happens to the
 * connection in between.
 *
 * A payment intent gets its idempotency key once, before the first attempt. Every retry re-sends
 * the same request with the same key, so the coordinator executes it at most once and answers
 * every attempt with the same outcome. The client never relies on NATS to re-deliver anything:
 * core NATS request/reply is at most once, so a lost request or reply is simply a timeout here,
 * and a timeout means "outcome unknown: ask again with the same key".
 */
import { monotonicFactory } from 'ulid';
import { connectNats, isNoResponders, type NatsConnection } from '../common/nats.ts';
import {
  decodePayReply,
  decodeStatusReply,
  encodeMessage,
  readPayment,
  subjects,
  type OutcomeReply,
  type Payment,
  type PayRequest,
  type StatusReply,
} from '../common/protocol.ts';

export type { OutcomeReply, Payment, StatusReply } from '../common/protocol.ts';

/** The coordinator refused the request itself (invalid, or the key reused for another payment). */
export class PaymentRefusedError extends Error {
  override readonly name = 'PaymentRefusedError';
  readonly code: string;
  readonly idempotencyKey: string;
  constructor(code: string, message: string, idempotencyKey: string) {
    super(`${code}: ${message}`);
    this.code = code;
    this.idempotencyKey = idempotencyKey;
  }
}

/** No definitive answer before the deadline. Resume later with the same key. */
export class PaymentOutcomeUnknownError extends Error {
  override readonly name = 'PaymentOutcomeUnknownError';
  readonly idempotencyKey: string;
  readonly attempts: number;
  constructor(idempotencyKey: string, attempts: number, cause: unknown) {
    super(`no outcome for ${idempotencyKey} after ${attempts} attempts`, { cause });
    this.idempotencyKey = idempotencyKey;
    this.attempts = attempts;
  }
}

export interface ClientOptions {
  readonly servers: readonly string[];
  /** Scopes idempotency keys: the same key from another client is another payment. */
  readonly clientId: string;
}

export interface PaymentOptions {
  /** Reuse to resume an intent; a new key means a new payment. Generated when omitted. */
  readonly idempotencyKey?: string;
  /** Give up (with PaymentOutcomeUnknownError) after this long. Default 30 s. */
  readonly deadlineMs?: number;
  /** How long one attempt waits for its reply. Default 2 s. */
  readonly attemptTimeoutMs?: number;
  /** The coordinator's deadline for collecting votes. */
  readonly paymentTimeoutMs?: number;
  /** Called before every attempt; for progress displays and ladder diagrams. */
  readonly onAttempt?: (attempt: number, idempotencyKey: string) => void;
}

const newKey = monotonicFactory();

export class ContinuumClient {
  readonly #nats: NatsConnection;
  readonly #clientId: string;

  private constructor(nats: NatsConnection, clientId: string) {
    this.#nats = nats;
    this.#clientId = clientId;
  }

  static async connect(options: ClientOptions): Promise<ContinuumClient> {
    const nats = await connectNats({
      servers: options.servers,
      name: `client-${options.clientId}`,
    });
    return new ContinuumClient(nats, options.clientId);
  }

  get clientId(): string {
    return this.#clientId;
  }

  /** Makes a payment; resolves with its committed or aborted outcome. */
  async makePayment(payment: Payment, options: PaymentOptions = {}): Promise<OutcomeReply> {
    const idempotencyKey = options.idempotencyKey ?? newKey();
    const request: PayRequest = {
      v: 1,
      kind: 'pay',
      clientId: this.#clientId,
      idempotencyKey,
      payment: readPayment(payment),
      ...(options.paymentTimeoutMs === undefined ? {} : { timeoutMs: options.paymentTimeoutMs }),
    };
    const deadline = Date.now() + (options.deadlineMs ?? 30_000);
    const attemptTimeoutMs = options.attemptTimeoutMs ?? 2_000;
    let attempt = 0;
    let lastError: unknown;
    while (Date.now() < deadline) {
      attempt += 1;
      options.onAttempt?.(attempt, idempotencyKey);
      const timeout = Math.max(1, Math.min(attemptTimeoutMs, deadline - Date.now()));
      try {
        const reply = await this.#nats.request(subjects.pay, encodeMessage(request), { timeout });
        const answer = decodePayReply(reply.data);
        if (answer.kind === 'outcome') return answer;
        if (answer.code !== 'overloaded') {
          throw new PaymentRefusedError(answer.code, answer.message, idempotencyKey);
        }
        lastError = new Error(answer.message);
      } catch (error) {
        if (error instanceof PaymentRefusedError) throw error;
        // No responders: never delivered. Timeout or disconnect: outcome unknown. Either way the
        // same key makes a retry safe.
        lastError = error;
      }
      await sleep(Math.min(backoffMs(attempt), Math.max(0, deadline - Date.now())));
    }
    throw new PaymentOutcomeUnknownError(idempotencyKey, attempt, lastError);
  }

  /** Asks the coordinator what became of a payment, by this client's key. */
  async status(idempotencyKey: string, timeoutMs = 2_000): Promise<StatusReply> {
    const query = { v: 1, kind: 'status', clientId: this.#clientId, idempotencyKey };
    const reply = await this.#nats.request(subjects.status, encodeMessage(query), {
      timeout: timeoutMs,
    });
    const answer = decodeStatusReply(reply.data);
    if (answer.kind === 'error') {
      throw new PaymentRefusedError(answer.code, answer.message, idempotencyKey);
    }
    return answer;
  }

  /** Sends raw bytes to a coordinator subject: for tests of the boundary's validation. */
  async requestRaw(subject: string, data: Uint8Array, timeoutMs = 2_000): Promise<Uint8Array> {
    return (await this.#nats.request(subject, data, { timeout: timeoutMs })).data;
  }

  async close(): Promise<void> {
    await this.#nats.drain();
  }
}

/** Jittered exponential backoff: 50 ms doubling to 1 s, each a random fraction of half to full. */
function backoffMs(attempt: number): number {
  const ceiling = Math.min(1_000, 50 * 2 ** Math.min(attempt - 1, 10));
  return Math.round(ceiling * (0.5 + Math.random() * 0.5));
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

export { isNoResponders };
