/**
 * The work counters (common/stats.ts): every write transaction is counted with its time, and the
 * slow ones (2 ms or more) are remembered with when they began, for the benchmark's tail analysis.
 */
import test from 'ava';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  countCommit,
  gcCounters,
  heapAllocatedBytes,
  slowCommits,
  watchGc,
  workCounters,
} from '../../common/stats.ts';

// Serial: both tests watch the same process-wide counters.
test.serial('counts every commit and remembers the slow ones with their start', (t) => {
  const commitsBefore = workCounters.sqliteCommits;
  const slowBefore = slowCommits.length;
  countCommit(performance.now());
  t.is(workCounters.sqliteCommits, commitsBefore + 1);
  t.is(slowCommits.length, slowBefore, 'a commit under 2 ms is not remembered');

  const startedAt = performance.now() - 5;
  const msBefore = workCounters.sqliteMs;
  countCommit(startedAt);
  t.is(workCounters.sqliteCommits, commitsBefore + 2);
  t.true(workCounters.sqliteMs - msBefore >= 5);
  t.is(slowCommits.length, slowBefore + 1);
  const [atMs, durationMs] = slowCommits.at(-1) ?? [0, 0];
  t.true(Math.abs(atMs - (performance.timeOrigin + startedAt)) < 0.001, 'begins at its start');
  t.true(durationMs >= 5 && durationMs < 1_000);
});

test.serial('keeps the most recent 4,096 slow commits', (t) => {
  const startedAt = performance.now() - 3;
  // Each next commit began 1 µs earlier, so the order kept shows which ones were kept.
  for (let i = 0; i < 5_000; i += 1) countCommit(startedAt - i * 0.001);
  t.is(slowCommits.length, 4_096);
  const began = (i: number): number => performance.timeOrigin + startedAt - i * 0.001;
  t.true(Math.abs((slowCommits[0]?.[0] ?? 0) - began(5_000 - 4_096)) < 0.0005, 'oldest kept');
  t.true(Math.abs((slowCommits.at(-1)?.[0] ?? 0) - began(4_999)) < 0.0005, 'newest kept');
});

test.serial('counts heap bytes allocated, the garbage already collected included', (t) => {
  watchGc();
  const start = heapAllocatedBytes();
  // 400,000 short-lived objects of a 32-character string each: about 40 MB, far more than the
  // young generation holds, so most are collected before the count is read.
  let length = 0;
  for (let i = 0; i < 400_000; i += 1) {
    const item = { index: i, text: `${i}`.padStart(32, '-') };
    length += item.text.length;
  }
  const allocated = heapAllocatedBytes() - start;
  t.is(length, 400_000 * 32);
  t.true(allocated > 25_000_000, `counted ${allocated} bytes`);
  t.true(allocated < 200_000_000, `counted ${allocated} bytes`);

  const idleStart = heapAllocatedBytes();
  const idle = heapAllocatedBytes() - idleStart;
  t.true(idle < 1_000_000, `reading the count allocated ${idle} bytes`);
});

test.serial('drains the GC profiler after every collection, so no record spans many', async (t) => {
  watchGc();
  heapAllocatedBytes();
  const countBefore = gcCounters.count;
  // Each round allocates more than the young generation holds, then yields, so the collections
  // it causes are observed before the next round. Drained only now and then, one record would
  // hold them all; and a stopped profiler keeps recording until it is collected (stats.ts).
  for (let round = 0; round < 40; round += 1) {
    let sink = 0;
    for (let i = 0; i < 100_000; i += 1) sink += { text: `${i}`.padStart(64, '-') }.text.length;
    t.true(sink > 0);
    await nextTurn();
    await nextTurn();
  }
  t.true(gcCounters.count - countBefore >= 20, `${gcCounters.count - countBefore} collections`);
  heapAllocatedBytes();
  t.true(
    gcCounters.collectionsInLastDrain <= 4,
    `the last record held ${gcCounters.collectionsInLastDrain} collections`,
  );
});
