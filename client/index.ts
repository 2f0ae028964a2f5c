/**
 * The Continuum client: make a payment and get one definitive answer, whatever happens to the
 * connection in between.
 *
 * A payment intent gets its idempotency key once, before the first attempt (and, with durable
 * intents, is written to disk before it). Every retry re-sends the same request with the same key,
 * so the coordinator executes it at most once and answers every attempt with the same outcome.
 * The client never relies on NATS to re-deliver: core NATS request/reply is at most once, so a lost
 * request or reply is simply a timeout here, and a timeout means "outcome unknown: ask again with
 * the same key". Failures are classified (REFERENCE.md, idempotency rule 14):
 *
 * - no responders: the request reached no coordinator; it was never delivered. Retry.
 * - timeout or disconnect: the outcome is unknown. Retry with the same key.
 * - in progress: the coordinator is deciding. Wait its hint (jittered) and retry.
 * - overloaded: nothing was started. Back off and retry.
 * - invalid request, key mismatch, payload too large: retrying cannot help. Throw.
 * - permission denied by the NATS server (these credentials may not speak for this client id):
 *   retrying cannot help either. Throw NatsPermissionError at once, never wait for the deadline.
 *
 * The client id is not just a field: requests go to `continuum.coordinator.pay.<clientId>` and
 * `continuum.coordinator.status.<clientId>`, replies come back on `_INBOX_<clientId>.…`, and the
 * NATS server's permissions for the connection's user decide whether it may use them.
 */
import {
  connectNats,
  isNoResponders,
  permissionViolationOf,
  type NatsConnection,
  type NatsCredentials,
} from '../common/nats.ts';
import {
  clientDeadlineMsDefault,
  clientIdPattern,
  clientInboxPrefix,
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
import { ValidationError } from '../common/errors.ts';
import { ulidFactory } from '../common/ids.ts';
import { Requester } from '../common/requester.ts';
import { IntentStore } from './intents.ts';

export type { OutcomeReply, Payment, StatusReply } from '../common/protocol.ts';
export type { NatsCredentials } from '../common/nats.ts';

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

/**
 * The NATS server refused this connection's user the subject of the request (or its reply
 * inbox): the credentials do not allow this client id. Nothing reached the coordinator, nothing
 * was journaled, and retrying cannot help, so it is never retried.
 */
export class NatsPermissionError extends Error {
  override readonly name = 'NatsPermissionError';
  readonly clientId: string;
  /** `publish` or `subscription`, as the server reported it. */
  readonly operation: string;
  readonly subject: string;
  constructor(clientId: string, operation: string, subject: string, cause: unknown) {
    super(
      `the NATS server refused ${operation} to ${subject}: these credentials may not act as ` +
        `client ${clientId}`,
      { cause },
    );
    this.clientId = clientId;
    this.operation = operation;
    this.subject = subject;
  }
}

/** No definitive answer before the deadline. Resume later with the same key. */
export class PaymentOutcomeUnknownError extends Error {
  override readonly name = 'PaymentOutcomeUnknownError';
  readonly idempotencyKey: string;
  readonly attempts: number;
  constructor(idempotencyKey: string, attempts: number, cause: unknown) {
    super(`no outcome for ${idempotencyKey} after ${attempts} attempts; resume with this key`, {
      cause,
    });
    this.idempotencyKey = idempotencyKey;
    this.attempts = attempts;
  }
}

/** What happened to one attempt, for progress displays, logs and ladder diagrams. */
export type AttemptEvent =
  | { readonly kind: 'sent'; readonly attempt: number; readonly idempotencyKey: string }
  | { readonly kind: 'answered'; readonly attempt: number; readonly answer: string }
  | {
      readonly kind: 'failed';
      readonly attempt: number;
      /** `never-delivered` (no responders) or `unknown` (timeout, disconnect). */
      readonly failure: 'never-delivered' | 'unknown' | 'in-progress' | 'overloaded';
      readonly detail: string;
    };

export interface ClientOptions {
  readonly servers: readonly string[];
  /**
   * Scopes idempotency keys: the same key from another client is another payment. One NATS
   * subject token (`clientIdPattern`); the server's permissions must allow these credentials to
   * act as this client (docs/operations.md).
   */
  readonly clientId: string;
  /** User and password, or token, for a NATS server that requires them. */
  readonly credentials?: NatsCredentials;
  /** A SQLite file for durable intents; enables `resumePending()` after a restart. */
  readonly intentsFile?: string;
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
  readonly onEvent?: (event: AttemptEvent) => void;
}

const newKey = ulidFactory();

/** Generates an idempotency key: a ULID, unique and sortable by creation time. */
export function newIdempotencyKey(): string {
  return newKey();
}

export class ContinuumClient {
  readonly #nats: NatsConnection;
  readonly #requests: Requester;
  readonly #clientId: string;
  readonly #intents: IntentStore | undefined;

  private constructor(nats: NatsConnection, clientId: string, intents: IntentStore | undefined) {
    this.#nats = nats;
    this.#requests = new Requester(nats, clientInboxPrefix(clientId));
    this.#clientId = clientId;
    this.#intents = intents;
  }

  static async connect(options: ClientOptions): Promise<ContinuumClient> {
    if (!clientIdPattern.test(options.clientId)) {
      throw new ValidationError('clientId', `must match ${String(clientIdPattern)}`);
    }
    const nats = await connectNats({
      servers: options.servers,
      name: `client-${options.clientId}`,
      // Its own inbox prefix, so the server can let this client read its own replies only.
      inboxPrefix: clientInboxPrefix(options.clientId),
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    });
    const intents = options.intentsFile ? new IntentStore(options.intentsFile) : undefined;
    return new ContinuumClient(nats, options.clientId, intents);
  }

  get clientId(): string {
    return this.#clientId;
  }

  /** Makes a payment; resolves with its committed or aborted outcome. */
  async makePayment(payment: Payment, options: PaymentOptions = {}): Promise<OutcomeReply> {
    const idempotencyKey = options.idempotencyKey ?? newKey();
    const checked = readPayment(payment);
    this.#intents?.record(idempotencyKey, checked, Date.now());
    try {
      const outcome = await this.#attempt(idempotencyKey, checked, options);
      this.#intents?.answer(idempotencyKey, outcome, Date.now());
      return outcome;
    } catch (error) {
      if (error instanceof PaymentRefusedError) {
        this.#intents?.answer(idempotencyKey, { refused: error.code }, Date.now());
      }
      throw error;
    }
  }

  /** Finishes every durable intent that has no answer yet, each with its original key. */
  async resumePending(options: Omit<PaymentOptions, 'idempotencyKey'> = {}) {
    if (!this.#intents) throw new Error('resumePending needs the intentsFile option');
    const results: { idempotencyKey: string; outcome?: OutcomeReply; error?: Error }[] = [];
    for (const intent of this.#intents.pending()) {
      const { idempotencyKey } = intent;
      try {
        const outcome = await this.makePayment(intent.payment, { ...options, idempotencyKey });
        results.push({ idempotencyKey, outcome });
      } catch (error) {
        results.push({ idempotencyKey, error: error as Error });
      }
    }
    return results;
  }

  async #attempt(
    idempotencyKey: string,
    payment: Payment,
    options: PaymentOptions,
  ): Promise<OutcomeReply> {
    const deadline = Date.now() + (options.deadlineMs ?? clientDeadlineMsDefault);
    const attemptTimeoutMs = options.attemptTimeoutMs ?? 2_000;
    const emit = options.onEvent ?? ((): void => undefined);
    let attempt = 0;
    let lastError: unknown;
    while (Date.now() < deadline) {
      attempt += 1;
      const timeout = Math.max(1, Math.min(attemptTimeoutMs, deadline - Date.now()));
      // Ask the coordinator to answer "in progress" a little before this attempt times out, so
      // a slow decision is reported as such rather than as an unknown outcome.
      const request: PayRequest = {
        v: 1,
        kind: 'pay',
        clientId: this.#clientId,
        idempotencyKey,
        payment,
        waitMs: Math.max(0, Math.floor(timeout * 0.8)),
        ...(options.paymentTimeoutMs === undefined ? {} : { timeoutMs: options.paymentTimeoutMs }),
      };
      emit({ kind: 'sent', attempt, idempotencyKey });
      let pauseMs = backoffMs(attempt);
      try {
        const subject = subjects.clientPay(this.#clientId);
        const reply = await this.#requests.request(subject, encodeMessage(request), timeout);
        const answer = decodePayReply(reply.data);
        emit({ kind: 'answered', attempt, answer: answer.kind });
        if (answer.kind === 'outcome') return answer;
        if (answer.kind === 'in-progress') {
          pauseMs = jitter(Math.max(20, answer.retryAfterMs));
          lastError = new Error(`payment ${answer.txId} in progress`);
          emit({ kind: 'failed', attempt, failure: 'in-progress', detail: answer.txId });
        } else if (answer.code === 'overloaded') {
          lastError = new Error(answer.message);
          emit({ kind: 'failed', attempt, failure: 'overloaded', detail: answer.message });
        } else {
          throw new PaymentRefusedError(answer.code, answer.message, idempotencyKey);
        }
      } catch (error) {
        if (error instanceof PaymentRefusedError) throw error;
        this.#throwIfForbidden(error);
        lastError = error;
        const failure = isNoResponders(error) ? 'never-delivered' : 'unknown';
        emit({ kind: 'failed', attempt, failure, detail: String(error) });
      }
      const remainingMs = Math.max(0, deadline - Date.now());
      await sleep(Math.min(pauseMs, remainingMs));
      // A pause cut short by the deadline ends the attempts: a timer may wake a millisecond
      // before Date.now() reaches the deadline, and an attempt given that millisecond can only
      // time out, reporting an unknown outcome where every delivery had simply failed.
      if (pauseMs >= remainingMs) break;
    }
    throw new PaymentOutcomeUnknownError(idempotencyKey, attempt, lastError);
  }

  /** Asks the coordinator what became of a payment, by this client's key. */
  async status(idempotencyKey: string, timeoutMs = 2_000): Promise<StatusReply> {
    const query = { v: 1, kind: 'status', clientId: this.#clientId, idempotencyKey };
    const subject = subjects.clientStatus(this.#clientId);
    let reply;
    try {
      reply = await this.#requests.request(subject, encodeMessage(query), timeoutMs);
    } catch (error) {
      this.#throwIfForbidden(error);
      throw error;
    }
    const answer = decodeStatusReply(reply.data);
    if (answer.kind === 'error') {
      throw new PaymentRefusedError(answer.code, answer.message, idempotencyKey);
    }
    return answer;
  }

  /** Sends raw bytes to a subject: for operators' tools and tests of the boundary's validation. */
  async requestRaw(subject: string, data: Uint8Array, timeoutMs = 2_000): Promise<Uint8Array> {
    try {
      return (await this.#requests.request(subject, data, timeoutMs)).data;
    } catch (error) {
      this.#throwIfForbidden(error);
      throw error;
    }
  }

  /** A permission violation is the server's final word on these credentials: never retried. */
  #throwIfForbidden(error: unknown): void {
    const violation = permissionViolationOf(error);
    if (violation === undefined) return;
    throw new NatsPermissionError(this.#clientId, violation.operation, violation.subject, error);
  }

  async close(): Promise<void> {
    await this.#nats.drain();
    this.#intents?.close();
  }
}

/** Jittered exponential backoff: 50 ms doubling to 1 s. */
function backoffMs(attempt: number): number {
  return jitter(Math.min(1_000, 50 * 2 ** Math.min(attempt - 1, 10)));
}

/** A random fraction, half to all, of a delay, so that many clients do not retry in step. */
function jitter(ms: number): number {
  return Math.round(ms * (0.5 + Math.random() * 0.5));
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}
