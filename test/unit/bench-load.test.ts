/**
 * The benchmark's load loops (bench/load.ts) end on time whatever the payments do. A level at
 * concurrency 1,024 once made more than the orders the benchmark had made for it: every worker's
 * next payment then failed at once, without I/O, and the workers chased each other through
 * microtasks, so the window's timer never fired and the run spun for ever.
 */
import test from 'ava';
import type { ContinuumClient } from '../../client/index.ts';
import type { Payment } from '../../common/protocol.ts';
import { closedLoop, openLoop } from '../../bench/load.ts';

class OrdersGone extends Error {
  override readonly name = 'OrdersGone';
}

const payment = { orderId: 'order-1' } as unknown as Payment;

/** A client whose every payment commits, or fails, at once. */
function clientThat(outcome: 'commits' | 'fails'): ContinuumClient {
  const makePayment = (): Promise<{ outcome: 'committed' }> =>
    outcome === 'commits'
      ? Promise.resolve({ outcome: 'committed' })
      : Promise.reject(new Error('refused'));
  return { makePayment } as unknown as ContinuumClient;
}

/** Payments for the first `count` calls, then the supply's error. */
function supplyOf(count: number): () => Payment {
  let made = 0;
  return () => {
    made += 1;
    if (made > count) throw new OrdersGone(`no order left after ${count}`);
    return payment;
  };
}

const timing = { warmupMs: 20, measureMs: 50, onWindow: () => Promise.resolve() };

test('a closed loop whose orders run out ends with the supply error', async (t) => {
  const loop = closedLoop({
    ...timing,
    client: clientThat('commits'),
    nextPayment: supplyOf(100),
    concurrency: 64,
  });
  await t.throwsAsync(loop, { instanceOf: OrdersGone });
});

test('a closed loop whose payments all fail at once still ends its window', async (t) => {
  const window = await closedLoop({
    ...timing,
    client: clientThat('fails'),
    nextPayment: supplyOf(Number.POSITIVE_INFINITY),
    concurrency: 64,
  });
  t.true(window.failed > 0);
  t.is(window.committed, 0);
  // The window's timer may fire up to a millisecond early by performance.now(): libuv's timers
  // run on a clock read once per loop turn and kept in whole milliseconds.
  t.true(window.seconds >= 0.048, `window of ${window.seconds} s`);
});

test('an open loop whose orders run out ends with the supply error', async (t) => {
  const loop = openLoop({
    ...timing,
    client: clientThat('commits'),
    nextPayment: supplyOf(5),
    ratePerSecond: 1_000,
  });
  await t.throwsAsync(loop, { instanceOf: OrdersGone });
});
