/**
 * The benchmark's tail attribution (bench/throughput.ts): which payments were in flight while a
 * garbage-collection pause ran. Its figure goes into docs/performance.md, so it is checked here.
 */
import test from 'ava';
import { pauseOverlaps } from '../../bench/throughput.ts';

// [scheduled at, latency], ms after the window's start.
const samples: [number, number][] = [
  [0, 5], // 0..5
  [10, 30], // 10..40: slow, spans the pause at 20
  [50, 5], // 50..55: ends exactly when the pause at 55 starts
  [60, 30], // 60..90: slow, no pause
  [100, 4], // 100..104: inside the pause at 99
];
const pauses = [
  { atMs: 20, ms: 3 },
  { atMs: 55, ms: 2 },
  { atMs: 99, ms: 2 },
];

test('counts the payments a pause overlapped, slow ones and all', (t) => {
  t.deepEqual(pauseOverlaps(samples, 30, pauses), {
    slow: 2,
    slowDuringPause: 1,
    all: 5,
    allDuringPause: 2,
  });
});

test('no pauses, no overlaps; a pause before every payment overlaps none', (t) => {
  t.deepEqual(pauseOverlaps(samples, 30, []), {
    slow: 2,
    slowDuringPause: 0,
    all: 5,
    allDuringPause: 0,
  });
  t.is(pauseOverlaps(samples, 30, [{ atMs: -10, ms: 9 }]).allDuringPause, 0);
  t.is(pauseOverlaps(samples, 30, [{ atMs: -10, ms: 11 }]).allDuringPause, 1);
});
