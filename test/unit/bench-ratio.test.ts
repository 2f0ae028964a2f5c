/**
 * The benchmark's ratio to the messaging bound (bench/throughput-report.ts): the peak over the
 * all-commit closed levels against the best echo level, and the ratio at each concurrency on both
 * sides. Its figures go into docs/performance.md, so they are checked here.
 */
import test from 'ava';
import {
  boundRatio,
  checkTargets,
  messageRatio,
  ratiosByConcurrency,
} from '../../bench/throughput-report.ts';
import { levelName, type LevelSpec, type ThroughputResult } from '../../bench/throughput.ts';

function level(spec: LevelSpec, committedPerSecond: number, inMsgs = 14) {
  const latency = { p50Ms: 1, p95Ms: 1, p99Ms: 1, maxMs: 1 };
  const natsPerPayment = { inMsgs, outMsgs: inMsgs, bytes: 0 };
  return {
    ...spec,
    name: levelName(spec),
    committedPerSecond,
    window: { latency },
    natsPerPayment,
  };
}

function echo(concurrency: number, requestRepliesPerSecond: number) {
  return { concurrency, requestRepliesPerSecond };
}

/** Only the fields the ratio reads; the rest of a result does not matter to it. */
function result(): ThroughputResult {
  const partial = {
    bounds: {
      messaging: {
        levels: [echo(64, 42_000), echo(256, 56_000), echo(1_024, 70_000)],
        requestRepliesPerSecond: 70_000,
        paymentsPerSecond: 10_000,
      },
    },
    levels: [
      level({ loop: 'closed', variant: 'all-commit', load: 64 }, 3_000),
      level({ loop: 'closed', variant: 'all-commit', load: 256 }, 4_800),
      level({ loop: 'closed', variant: 'all-commit', load: 1_024 }, 6_100, 2.5),
      // Neither the NO variant nor an open loop is the peak, however fast.
      level({ loop: 'closed', variant: 'no-10pct', load: 1_024 }, 9_000),
      level({ loop: 'open', variant: 'all-commit', load: 1_000 }, 9_500),
    ],
  };
  return partial as unknown as ThroughputResult;
}

test('the ratio is the all-commit peak over the best echo level', (t) => {
  t.is(boundRatio(result()), 0.61);
  const check = checkTargets(result()).find((c) => c.target.startsWith('ratio'));
  t.truthy(check);
  t.true(check?.met);
  t.regex(check?.measured ?? '', /peak 6,100\/s at c=1024 ÷ 10,000\/s/);
});

test('the ratio at each concurrency divides by the echo at the same concurrency', (t) => {
  t.deepEqual(ratiosByConcurrency(result()), [
    { concurrency: 64, ratio: 0.5 }, // 3,000 ÷ (42,000 ÷ 7)
    { concurrency: 256, ratio: 0.6 }, // 4,800 ÷ (56,000 ÷ 7)
    { concurrency: 1_024, ratio: 0.61 }, // 6,100 ÷ (70,000 ÷ 7)
  ]);
});

test('an echo level with no payment level beside it gives no ratio', (t) => {
  const partial = result();
  const levels = partial.levels.filter((l) => l.load !== 256);
  t.deepEqual(
    ratiosByConcurrency({ ...partial, levels }).map((r) => r.concurrency),
    [64, 1_024],
  );
});

test('the ratio is not checked unless payments ran at every concurrency the echo ran at', (t) => {
  const partial = result();
  const levels = partial.levels.filter((l) => l.load !== 1_024);
  const targets = checkTargets({ ...partial, levels }).map((c) => c.target);
  t.false(targets.some((target) => target.startsWith('ratio')));
  t.true(targets.includes('≥ 2,500 committed/s at c=64'));
});

test("by messages, the echo's messages are divided by the peak's messages per payment", (t) => {
  // 70,000 request/replies/s are 140,000 messages into the server; at 2.5 a payment, 56,000/s.
  t.deepEqual(messageRatio(result()), { inMsgs: 2.5, paymentsPerSecond: 56_000, ratio: 0.11 });
  const partial = result();
  const unbatched = partial.levels.map((l) => ({
    ...l,
    natsPerPayment: { ...l.natsPerPayment, inMsgs: 14 },
  }));
  // One message per request/reply: the same as the ratio by request/replies.
  t.is(messageRatio({ ...partial, levels: unbatched })?.ratio, boundRatio(partial));
});
