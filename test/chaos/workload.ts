/**
 * The clients of a chaos run. Each makes payments one after another with idempotency keys, through
 * the real client library, and records every attempt in the history:
 *
 * - most payments are fresh: a new key for an order from the world's pools;
 * - about a fifth re-send an earlier key of the same client with the same request, which must get
 *   the same answer (or, if that key's outcome was unknown, its one outcome);
 * - a few re-send an earlier key with a changed request, which must be refused as a mismatch;
 * - a few pay an order that was paid before with a fresh key, which the vendor must refuse.
 *
 * A committed payment is `ok`; an aborted one `fail` (it certainly had no effect); a request the
 * coordinator refused (key mismatch) `fail` with the code; anything else `info` (unknown), after
 * which the client continues under a new process number. Retry storms (many concurrent requests
 * with one key) are started by the nemesis through `storm`.
 */
import { errorText } from '../../common/log.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ContinuumClient,
  PaymentRefusedError,
  type OutcomeReply,
  type Payment,
} from '../../client/index.ts';
import { paymentFingerprint } from '../../common/protocol.ts';
import type { HistoryWriter } from './history.ts';
import type { Rng } from './random.ts';
import { changedPayment, type OrderPool } from './world.ts';

export type Variant = 'fresh' | 'pay-again' | 'resend' | 'changed' | 'storm';

export interface WorkloadOptions {
  readonly clients: number;
  readonly natsUrls: readonly string[];
  readonly history: HistoryWriter;
  readonly rng: Rng;
  readonly pool: OrderPool;
  readonly seed: number;
}

/** Per attempt and per payment; a payment that outlives its deadline is recorded `info`. */
export const attemptTimeoutMs = 1_000;
export const paymentDeadlineMs = 6_000;
/** The coordinator's deadline for collecting votes, shorter than its default to keep things moving. */
export const paymentTimeoutMs = 2_000;
const resendProbability = 0.2;
const changedProbability = 0.03;
/** Keys each client remembers for re-sending. */
const rememberedKeysMax = 256;
const thinkTimeMsMax = 15;

interface KeyedRequest {
  readonly key: string;
  readonly payment: Payment;
}

/** A client id and key, as the final reads need them. */
export interface KeyRef {
  readonly clientId: string;
  readonly key: string;
}

export class Workload {
  readonly #options: WorkloadOptions;
  readonly #clients: ContinuumClient[];
  readonly #storm: ContinuumClient;
  readonly #keys = new Map<string, KeyRef>();
  readonly #running: Promise<void>[] = [];
  readonly #storms = new Set<Promise<void>>();
  #nextProcess: number;
  #stormCount = 0;
  #stopping = false;

  private constructor(
    options: WorkloadOptions,
    clients: ContinuumClient[],
    storm: ContinuumClient,
  ) {
    this.#options = options;
    this.#clients = clients;
    this.#storm = storm;
    this.#nextProcess = options.clients;
  }

  static async connect(options: WorkloadOptions): Promise<Workload> {
    const connect = (clientId: string): Promise<ContinuumClient> =>
      ContinuumClient.connect({ servers: options.natsUrls, clientId });
    const clients: ContinuumClient[] = [];
    for (let index = 0; index < options.clients; index += 1) {
      clients.push(await connect(clientIdOf(index)));
    }
    return new Workload(options, clients, await connect('chaos-storm'));
  }

  /** Every key any client used, for the final reads. */
  get keys(): readonly KeyRef[] {
    return [...this.#keys.values()];
  }

  start(): void {
    this.#clients.forEach((client, index) => {
      this.#running.push(this.#client(client, index));
    });
  }

  /** No new payments; waits (bounded by the payment deadline) for those in flight. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all([...this.#running, ...this.#storms]);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#clients, this.#storm].map((client) => client.close()));
  }

  /** `size` concurrent requests with one new key and one request; resolves when all ended. */
  storm(size: number, rng: Rng): { key: string; done: Promise<void> } {
    this.#stormCount += 1;
    const key = `storm-s${this.#options.seed}-n${String(this.#stormCount).padStart(6, '0')}`;
    const { payment } = this.#options.pool.takeFrom('steady', rng);
    const request = { key, payment };
    const attempts = Array.from({ length: size }, () =>
      this.#pay(this.#storm, this.#newProcess(), request, 'storm'),
    );
    const done = Promise.all(attempts).then(() => undefined);
    this.#storms.add(done);
    void done.finally(() => this.#storms.delete(done));
    return { key, done };
  }

  #newProcess(): number {
    const process = this.#nextProcess;
    this.#nextProcess += 1;
    return process;
  }

  async #client(client: ContinuumClient, index: number): Promise<void> {
    const rng = this.#options.rng.fork(`client-${index}`);
    const remembered: KeyedRequest[] = [];
    let process = index;
    let made = 0;
    while (!this.#stopping) {
      const roll = rng.next();
      let request: KeyedRequest;
      let variant: Variant;
      if (remembered.length > 0 && roll < resendProbability) {
        request = rng.pick(remembered);
        variant = 'resend';
      } else if (remembered.length > 0 && roll < resendProbability + changedProbability) {
        const earlier = rng.pick(remembered);
        request = { key: earlier.key, payment: changedPayment(earlier.payment) };
        variant = 'changed';
      } else {
        made += 1;
        const { payment, payAgain } = this.#options.pool.take(rng);
        request = { key: keyOf(this.#options.seed, index, made), payment };
        variant = payAgain ? 'pay-again' : 'fresh';
        remembered.push(request);
        if (remembered.length > rememberedKeysMax) remembered.shift();
      }
      const ended = await this.#pay(client, process, request, variant);
      if (ended === 'info') process = this.#newProcess();
      await sleep(rng.int(0, thinkTimeMsMax));
    }
  }

  async #pay(
    client: ContinuumClient,
    process: number,
    request: KeyedRequest,
    variant: Variant,
  ): Promise<'ok' | 'fail' | 'info'> {
    const { history } = this.#options;
    const { key, payment } = request;
    this.#keys.set(`${client.clientId}\u0000${key}`, { clientId: client.clientId, key });
    const value = {
      key,
      client: client.clientId,
      variant,
      orderId: payment.orderId,
      fingerprint: paymentFingerprint(payment),
      // Wall-clock time, comparable with the coordinator's transaction ids (ULIDs): with a short
      // key retention the checker asks whether the key's payment existed when this was sent.
      sentAt: Date.now(),
    };
    history.append('invoke', 'pay', process, value);
    try {
      const outcome = await client.makePayment(payment, {
        idempotencyKey: key,
        attemptTimeoutMs,
        deadlineMs: paymentDeadlineMs,
        paymentTimeoutMs,
      });
      return recordOutcome(history, process, value, outcome);
    } catch (error) {
      if (error instanceof PaymentRefusedError) {
        history.append('fail', 'pay', process, { ...value, refused: error.code }, error.message);
        return 'fail';
      }
      history.append('info', 'pay', process, value, errorText(error));
      return 'info';
    }
  }
}

function recordOutcome(
  history: HistoryWriter,
  process: number,
  value: Readonly<Record<string, unknown>>,
  outcome: OutcomeReply,
): 'ok' | 'fail' {
  const { txId, replay } = outcome;
  if (outcome.outcome === 'committed') {
    history.append('ok', 'pay', process, { ...value, txId, outcome: 'committed', replay });
    return 'ok';
  }
  const abortedBy = outcome.abortedBy ?? 'coordinator';
  const reason = outcome.reason ?? '';
  const result = { ...value, txId, outcome: 'aborted', abortedBy, reason, replay };
  history.append('fail', 'pay', process, result, `aborted by ${abortedBy}: ${reason}`);
  return 'fail';
}

export function clientIdOf(index: number): string {
  return `chaos-c${String(index).padStart(3, '0')}`;
}

/** A readable key that names its run, client and payment: `chaos-s42-c003-n000017`. */
export function keyOf(seed: number, client: number, payment: number): string {
  const c = String(client).padStart(3, '0');
  return `chaos-s${seed}-c${c}-n${String(payment).padStart(6, '0')}`;
}
