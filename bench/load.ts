/**
 * Load for the throughput benchmark: closed-loop clients (each makes one payment after another)
 * and an open loop (payments start at a fixed rate whatever the answers do).
 *
 * Open-loop arrivals are scheduled on a fixed timetable, and each payment's latency is measured
 * from its scheduled time, not from when the generator got round to sending it. A stall anywhere,
 * including in this process, then shows up in the latencies instead of silently lowering the
 * offered rate (no coordinated omission).
 *
 * Both loops run a warm-up, then a measured window. A payment counts in the window when it
 * completes inside it (closed loop) or is scheduled inside it (open loop); `onWindow` is called at
 * the window's start and end, so the caller can read its counters at the same moments.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ContinuumClient } from '../client/index.ts';
import type { Payment } from '../common/protocol.ts';
import { percentile } from './report.ts';

export interface LatencySummary {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Milliseconds to two decimals, as every latency in the results is given. */
function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

export function summarize(latenciesMs: readonly number[]): LatencySummary {
  const sorted = Float64Array.from(latenciesMs).sort();
  const list = Array.from(sorted);
  const sum = list.reduce((total, ms) => total + ms, 0);
  return {
    count: list.length,
    meanMs: round(list.length === 0 ? Number.NaN : sum / list.length),
    p50Ms: round(percentile(list, 0.5)),
    p95Ms: round(percentile(list, 0.95)),
    p99Ms: round(percentile(list, 0.99)),
    maxMs: round(list.at(-1) ?? Number.NaN),
  };
}

export interface WindowResult {
  /** Length of the measured window, in seconds. */
  readonly seconds: number;
  readonly committed: number;
  readonly aborted: number;
  /** Payments that ended without an outcome (an error or the client's deadline). */
  readonly failed: number;
  /** Latency of every payment counted in the window, whatever its outcome. */
  readonly latency: LatencySummary;
  /** Open loop only: arrivals the generator could not start because too many were in flight. */
  readonly dropped: number;
  /** When the window began, in epoch ms (to set other processes' events against it). */
  readonly startedAtEpochMs: number;
  /**
   * Open loop only: every counted payment as [scheduled time after the window's start, latency],
   * both in ms, in the order they were scheduled: latency over time.
   */
  readonly samples?: readonly (readonly [number, number])[];
}

export interface LoopOptions {
  readonly client: ContinuumClient;
  readonly nextPayment: () => Payment;
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Called at the window's start and end; the window is timed after the start call returns. */
  readonly onWindow: (edge: 'start' | 'end') => Promise<void>;
}

interface Tally {
  committed: number;
  aborted: number;
  failed: number;
  readonly latenciesMs: number[];
}

const paymentOptions = { attemptTimeoutMs: 5_000, deadlineMs: 60_000 } as const;

async function pay(client: ContinuumClient, payment: Payment): Promise<'committed' | 'aborted'> {
  const outcome = await client.makePayment(payment, paymentOptions);
  return outcome.outcome;
}

function record(tally: Tally, result: 'committed' | 'aborted' | 'failed', ms: number): void {
  tally[result] += 1;
  tally.latenciesMs.push(ms);
}

function windowResult(
  tally: Tally,
  seconds: number,
  dropped: number,
  windowStart: number,
): WindowResult {
  const { committed, aborted, failed } = tally;
  const latency = summarize(tally.latenciesMs);
  const startedAtEpochMs = performance.timeOrigin + windowStart;
  return { seconds, committed, aborted, failed, latency, dropped, startedAtEpochMs };
}

/** `concurrency` clients, each paying one order after another, until the window ends. */
export async function closedLoop(
  options: LoopOptions & { readonly concurrency: number },
): Promise<WindowResult> {
  const { client, nextPayment } = options;
  const tally: Tally = { committed: 0, aborted: 0, failed: 0, latenciesMs: [] };
  let measuring = false;
  let stopped = false;
  // What stopped the loop early: no payment to make (the orders ran out).
  let supplyFailure: { readonly error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (!stopped) {
      const startedAt = performance.now();
      let payment: Payment;
      try {
        payment = nextPayment();
      } catch (error) {
        supplyFailure ??= { error };
        stopped = true;
        return;
      }
      let result: 'committed' | 'aborted' | 'failed';
      try {
        result = await pay(client, payment);
      } catch {
        result = 'failed';
        // A payment that fails at once settles without I/O: without a turn of the event loop
        // here, the workers would chase each other through microtasks and no timer would fire.
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (measuring) record(tally, result, performance.now() - startedAt);
    }
  };
  const workers = Promise.all(Array.from({ length: options.concurrency }, worker));
  await sleep(options.warmupMs);
  await options.onWindow('start');
  const windowStart = performance.now();
  measuring = true;
  await sleep(options.measureMs);
  measuring = false;
  const seconds = (performance.now() - windowStart) / 1_000;
  await options.onWindow('end');
  stopped = true;
  await workers;
  if (supplyFailure !== undefined) throw supplyFailure.error;
  return windowResult(tally, seconds, 0, windowStart);
}

/** In-flight payments the open loop allows before it counts new arrivals as dropped. */
export const openLoopInFlightMax = 20_000;

/**
 * Payments started at `ratePerSecond` on a fixed timetable. Each payment scheduled inside the
 * window counts, with its latency from its scheduled time; the loop waits for all of them.
 */
export async function openLoop(
  options: LoopOptions & {
    readonly ratePerSecond: number;
    /** Keep every payment's latency with its time (`samples`); off for long runs. */
    readonly keepSamples?: boolean;
  },
): Promise<WindowResult> {
  const { client, nextPayment, warmupMs, measureMs } = options;
  const intervalMs = 1_000 / options.ratePerSecond;
  const tally: Tally = { committed: 0, aborted: 0, failed: 0, latenciesMs: [] };
  const inFlight = new Set<Promise<void>>();
  const samples: (readonly [number, number])[] = [];
  let dropped = 0;
  let windowStart = Number.POSITIVE_INFINITY;
  let windowEnd = Number.POSITIVE_INFINITY;
  let stopAt = Number.POSITIVE_INFINITY;
  let supplyFailure: { readonly error: unknown } | undefined;
  const launch = (scheduledAt: number): void => {
    const counted = scheduledAt >= windowStart && scheduledAt < windowEnd;
    if (inFlight.size >= openLoopInFlightMax) {
      if (counted) dropped += 1;
      return;
    }
    const settle = (result: 'committed' | 'aborted' | 'failed'): void => {
      if (!counted) return;
      const latencyMs = performance.now() - scheduledAt;
      record(tally, result, latencyMs);
      if (options.keepSamples === true) {
        samples.push([round(scheduledAt - windowStart), round(latencyMs)]);
      }
    };
    let payment: Payment;
    try {
      payment = nextPayment();
    } catch (error) {
      // No payment to make (the orders ran out): schedule nothing more, and say why at the end.
      supplyFailure ??= { error };
      stopAt = Math.min(stopAt, scheduledAt);
      return;
    }
    const done = pay(client, payment).then(settle, () => settle('failed'));
    const tracked = done.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };
  const startedAt = performance.now();
  let nextAt = startedAt;
  const scheduler = (async (): Promise<void> => {
    while (nextAt < stopAt) {
      const now = performance.now();
      while (nextAt <= now && nextAt < stopAt) {
        launch(nextAt);
        nextAt += intervalMs;
      }
      await sleep(Math.max(0, Math.min(nextAt, stopAt) - performance.now()));
    }
  })();
  await sleep(warmupMs);
  await options.onWindow('start');
  windowStart = performance.now();
  windowEnd = windowStart + measureMs;
  stopAt = Math.min(stopAt, windowEnd);
  await scheduler;
  await Promise.all(inFlight);
  await options.onWindow('end');
  if (supplyFailure !== undefined) throw supplyFailure.error;
  const result = windowResult(tally, measureMs / 1_000, dropped, windowStart);
  if (options.keepSamples !== true) return result;
  samples.sort((a, b) => a[0] - b[0]);
  return { ...result, samples };
}
