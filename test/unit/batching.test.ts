import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { HeldBack } from '../../common/batching.ts';
import { until } from '../helpers/wait.ts';

test('HeldBack hands its items, oldest first, to whoever takes them, and stops its timer', async (t) => {
  let due = 0;
  const held = new HeldBack<number>(20, () => (due += 1));
  held.hold([1, 2]);
  held.hold([]);
  held.hold([3]);
  t.is(held.size, 3);
  t.deepEqual(held.take(), [1, 2, 3]);
  t.is(held.size, 0);
  t.deepEqual(held.take(), []);
  await sleep(60);
  t.is(due, 0, 'taken items are not due again');
});

test('HeldBack calls onDue once when the oldest item has waited its time', async (t) => {
  // A wait long enough that a busy machine's stalls cannot fire it between the two holds.
  const waitMs = 200;
  const taken: number[][] = [];
  const startedAt = performance.now();
  let dueAfterMs = 0;
  const held = new HeldBack<number>(waitMs, () => {
    dueAfterMs = performance.now() - startedAt;
    taken.push(held.take());
  });
  held.hold([1]);
  await sleep(5);
  held.hold([2]);
  t.true(await until(() => taken.length === 1, 5_000), 'due once');
  t.deepEqual(taken, [[1, 2]], 'one call for both items');
  t.true(dueAfterMs >= waitMs - 1, `due after ${dueAfterMs.toFixed(1)} ms`);
  held.hold([3]);
  t.true(await until(() => taken.length === 2, 5_000), 'due again');
  t.deepEqual(taken, [[1, 2], [3]], 'a new item after a take starts a new wait');
});

test('HeldBack forgets what it held when cleared, without calling onDue', async (t) => {
  let due = 0;
  const held = new HeldBack<string>(10, () => (due += 1));
  held.hold(['a']);
  held.clear();
  t.is(held.size, 0);
  await sleep(40);
  t.is(due, 0);
});
