/**
 * The simulated clients: concurrent payment intents, each with its idempotency key made once,
 * before the first attempt, and retried with that key until it has a definitive answer, as
 * `client/index.ts` does (REFERENCE.md, idempotency rules 13-15).
 *
 * The workload mixes what real clients do to a coordinator: duplicate submissions (two copies of
 * one attempt at once), retries after a timeout or an "in progress" answer, a status query by key
 * now and then, the same key reused for a different payment (which must get `key-mismatch`), and
 * another client's key (which must be another payment: keys are scoped to their client). Every
 * answer, even one that arrives after the intent is settled, goes to the checker.
 */
import {
  paymentFingerprint,
  type Payment,
  type PayReply,
  type PayRequest,
} from '../../common/protocol.ts';
import type { StatusQuery } from '../../coordinator/core/types.ts';
import type { AskedPayment, Checker } from './invariants.ts';
import type { Random } from './random.ts';
import type { WorkloadParameters } from './swarm.ts';
import type { ClientName, Packet, SimEvent } from './world.ts';

/** The part of the world the clients need. */
export interface ClientWorld {
  readonly now: number;
  readonly checker: Checker;
  schedule(at: number, event: SimEvent): void;
  send(packet: Packet): void;
  trace(node: string, what: string, detail?: unknown): void;
  nextRequestId(): number;
}

interface Intent {
  readonly id: number;
  readonly client: ClientName;
  readonly asked: AskedPayment;
  readonly request: PayRequest;
  readonly startAt: number;
  settled: boolean;
  retryScheduled: boolean;
}

type Pending =
  | { readonly kind: 'pay'; readonly intent: Intent }
  | { readonly kind: 'status'; readonly intent: Intent; readonly query: StatusQuery };

export class SimClients {
  readonly #world: ClientWorld;
  readonly #rng: Random;
  readonly #workload: WorkloadParameters;
  readonly #intents: Intent[] = [];
  readonly #pending = new Map<number, Pending>();
  #keyMismatches = 0;

  constructor(world: ClientWorld, rng: Random, workload: WorkloadParameters) {
    this.#world = world;
    this.#rng = rng;
    this.#workload = workload;
    for (let id = 0; id < workload.intents; id += 1) this.#intents.push(this.#newIntent(id));
  }

  get keyMismatches(): number {
    return this.#keyMismatches;
  }

  /** Schedules every intent's first attempt. */
  start(): void {
    for (const intent of this.#intents) {
      this.#world.schedule(intent.startAt, { kind: 'client-attempt', intent: intent.id });
    }
  }

  onAttempt(id: number): void {
    const intent = this.#intents[id];
    if (intent === undefined) return;
    intent.retryScheduled = false;
    if (intent.settled) return;
    this.#sendPay(intent);
    if (this.#rng.chance(this.#workload.duplicateSubmitRate)) this.#sendPay(intent);
  }

  onPacket(packet: Packet): void {
    if (packet.type !== 'reply') return;
    const pending = this.#pending.get(packet.requestId);
    if (pending === undefined) return;
    this.#pending.delete(packet.requestId);
    const { intent } = pending;
    const { body } = packet;
    if (body.kind === 'status' && pending.kind === 'status') {
      this.#world.checker.onStatusAnswer(intent.client, pending.query, body.reply);
    } else if (body.kind === 'pay') {
      this.#onPayReply(intent, body.reply);
    } else if (pending.kind === 'pay') {
      this.#retry(intent, this.#rng.int(1, this.#workload.retryMsMax));
    }
  }

  onRequestTimeout(requestId: number): void {
    const pending = this.#pending.get(requestId);
    if (pending === undefined) return;
    this.#pending.delete(requestId);
    if (pending.kind === 'status') return;
    const { intent } = pending;
    // The outcome is unknown: sometimes ask for it by key, always try again with the same key.
    if (!intent.settled && this.#rng.chance(this.#workload.statusQueryRate)) {
      this.#sendStatus(intent);
    }
    this.#retry(intent, this.#rng.int(1, this.#workload.retryMsMax));
  }

  /** Intents without a definitive answer, described for a liveness report. */
  unanswered(): string[] {
    return this.#intents
      .filter((intent) => !intent.settled)
      .map((intent) => `${intent.client} key ${intent.asked.idempotencyKey}`);
  }

  #onPayReply(intent: Intent, reply: PayReply): void {
    const settles = this.#world.checker.onPayAnswer(intent.asked, reply);
    if (intent.settled) return;
    if (settles) {
      intent.settled = true;
      if (reply.kind === 'error') this.#keyMismatches += 1;
      return;
    }
    const hintMs = reply.kind === 'in-progress' ? reply.retryAfterMs : this.#workload.retryMsMax;
    // Jittered to 50-100 % of the hint, as the real client does, and never zero.
    this.#retry(intent, Math.max(1, Math.round(hintMs * (0.5 + this.#rng.float() / 2))));
  }

  #retry(intent: Intent, delayMs: number): void {
    if (intent.settled || intent.retryScheduled) return;
    intent.retryScheduled = true;
    const at = this.#world.now + delayMs;
    this.#world.schedule(at, { kind: 'client-attempt', intent: intent.id });
  }

  #sendPay(intent: Intent): void {
    const body = { kind: 'pay', request: intent.request } as const;
    this.#request(intent, body, { kind: 'pay', intent });
  }

  #sendStatus(intent: Intent): void {
    const { clientId, idempotencyKey } = intent.asked;
    const query: StatusQuery = { clientId, idempotencyKey };
    this.#request(intent, { kind: 'status', query }, { kind: 'status', intent, query });
  }

  #request(
    intent: Intent,
    body: Extract<Packet, { type: 'request' }>['body'],
    pending: Pending,
  ): void {
    const world = this.#world;
    const requestId = world.nextRequestId();
    this.#pending.set(requestId, pending);
    world.send({ type: 'request', requestId, from: intent.client, to: 'coordinator', body });
    const at = world.now + this.#workload.requestTimeoutMs;
    world.schedule(at, { kind: 'request-timeout', node: intent.client, requestId });
  }

  #newIntent(id: number): Intent {
    const rng = this.#rng;
    const workload = this.#workload;
    const earlier = id > 0 ? this.#intents[rng.int(0, id - 1)] : undefined;
    let clientIndex = rng.int(0, workload.clients - 1);
    let key = `key-${String(id).padStart(12, '0')}`;
    let payment = this.#newPayment(id);
    if (earlier !== undefined && rng.chance(workload.rogueRate)) {
      // The same key from the same client for another payment: must be refused, never executed.
      clientIndex = Number(earlier.client.slice('client-'.length));
      key = earlier.asked.idempotencyKey;
      payment = {
        ...earlier.request.payment,
        amountMinor: earlier.request.payment.amountMinor + 1,
      };
    } else if (earlier !== undefined && rng.chance(workload.crossClientRate)) {
      // Another client's key: a payment of its own, since keys are scoped to their client.
      key = earlier.asked.idempotencyKey;
    }
    const client: ClientName = `client-${clientIndex}`;
    const clientId = `shop-${clientIndex}`;
    const timeoutMs = rng.int(100, workload.paymentTimeoutMsMax);
    const waitMs = workload.waitMsMax === undefined ? undefined : rng.int(0, workload.waitMsMax);
    const request: PayRequest = {
      v: 1,
      kind: 'pay',
      clientId,
      idempotencyKey: key,
      payment,
      timeoutMs,
      ...(waitMs === undefined ? {} : { waitMs }),
    };
    const fingerprint = paymentFingerprint(payment);
    const asked = { clientId, idempotencyKey: key, fingerprint };
    const startAt = this.#world.now + rng.int(0, workload.startWindowMs);
    return { id, client, asked, request, startAt, settled: false, retryScheduled: false };
  }

  #newPayment(id: number): Payment {
    const rng = this.#rng;
    const { owners, amountMax } = this.#workload;
    const payer = rng.pick(owners);
    // Now and then a payment to oneself, which every participant refuses.
    const payee = rng.chance(0.05) ? payer : rng.pick(owners.filter((owner) => owner !== payer));
    const amountMinor = rng.int(1, amountMax);
    const lines = [{ sku: 'item', quantity: 1, unitPriceMinor: amountMinor }];
    return { payer, payee, amountMinor, currency: 'EUR', orderId: `order-${id}`, lines };
  }
}
