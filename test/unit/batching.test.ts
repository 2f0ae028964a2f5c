import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { HeldBack } from '../../common/batching.ts';

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
  const taken: number[][] = [];
  const startedAt = performance.now();
  let dueAfterMs = 0;
  const held = new HeldBack<number>(20, () => {
    dueAfterMs = performance.now() - startedAt;
    taken.push(held.take());
  });
  held.hold([1]);
  await sleep(5);
  held.hold([2]);
  await sleep(80);
  t.deepEqual(taken, [[1, 2]], 'one call for both: the later item does not restart the wait');
  t.true(dueAfterMs >= 15, `due after ${dueAfterMs.toFixed(1)} ms`);
  held.hold([3]);
  await sleep(60);
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
