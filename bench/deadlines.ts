/**
 * `npm run bench -- deadlines`: what the coordinator machine spends on its timer with many
 * payments in flight, the state a participant outage leaves it in. Each payment is decided ABORT
 * (the bank voted NO) and the vendor and customer never acknowledge, so every payment waits for
 * acknowledgements and is re-sent with backoff. Then the timer fires over and over, as the
 * coordinator's DeadlineTimer does: `nextDeadline()`, then a `tick` at that time. In-process and
 * pure: no NATS, no SQLite, no clock but the one passed in.
 */
import { CoordinatorMachine } from '../coordinator/core/machine.ts';
import type { Payment } from '../common/protocol.ts';

export interface DeadlinesLevel {
  readonly inFlight: number;
  /** One firing of the timer: nextDeadline() and the tick it schedules. */
  readonly firingUs: number;
  readonly nextDeadlineUs: number;
  /** Messages the ticks asked for, per tick: the same work at every size. */
  readonly sendsPerTick: number;
}

const payment: Payment = {
  payer: 'alice',
  payee: 'acme',
  amountMinor: 2_500,
  currency: 'EUR',
  orderId: 'order-1',
  lines: [{ sku: 'book', quantity: 1, unitPriceMinor: 2_500 }],
};

const firings = 20_000;

export function runDeadlines(sizes: readonly number[]): DeadlinesLevel[] {
  return sizes.map((inFlight) => measure(inFlight));
}

function measure(inFlight: number): DeadlinesLevel {
  const machine = new CoordinatorMachine({
    participants: ['bank', 'vendor', 'customer'],
    prepareResendMs: 1_000,
    decisionResendMsMin: 500,
    decisionResendMsMax: 8_000,
    inFlightMax: inFlight,
    waitersPerTransactionMax: 8,
  });
  machine.step({ kind: 'recovery-finished', now: 0 });
  // Payments arrive over ten seconds, so their re-send times spread out as they would.
  let now = 1_700_000_000_000;
  for (let index = 0; index < inFlight; index += 1) {
    const txId = `tx-${String(index).padStart(8, '0')}`;
    const idempotencyKey = `key-${String(index).padStart(16, '0')}`;
    machine.step({
      kind: 'pay-requested',
      now,
      requestRef: index + 1,
      request: { v: 1, kind: 'pay', clientId: 'bench', idempotencyKey, payment, waitMs: 0 },
      newTxId: txId,
      stored: undefined,
    });
    machine.step({ kind: 'vote-received', now, txId, participant: 'bank', vote: 'no' });
    now += 10_000 / inFlight;
  }
  const fire = (): number => {
    const at = machine.nextDeadline();
    if (at === undefined) throw new Error('every payment waits for acknowledgements');
    return machine.step({ kind: 'tick', now: at }).length;
  };
  for (let index = 0; index < firings / 10; index += 1) fire();
  let sends = 0;
  const startedAt = performance.now();
  for (let index = 0; index < firings; index += 1) sends += fire();
  const firingUs = ((performance.now() - startedAt) * 1_000) / firings;
  const queryStartedAt = performance.now();
  for (let index = 0; index < firings; index += 1) machine.nextDeadline();
  const nextDeadlineUs = ((performance.now() - queryStartedAt) * 1_000) / firings;
  return {
    inFlight: machine.inFlightCount,
    firingUs: round(firingUs),
    nextDeadlineUs: round(nextDeadlineUs),
    sendsPerTick: round(sends / firings),
  };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
