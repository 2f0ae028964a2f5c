import test from 'ava';
import { DueQueue, type DueEntry } from '../../coordinator/core/due-queue.ts';

/** A small deterministic generator, so a failure names a sequence that can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    return state / 2 ** 32;
  };
}

test('DueQueue gives entries earliest first, equal times in the order added', (t) => {
  for (let seed = 1; seed <= 50; seed += 1) {
    const next = random(seed);
    const queue = new DueQueue();
    const model: { at: number; txId: string; seq: number }[] = [];
    let seq = 0;
    for (let step = 0; step < 400; step += 1) {
      if (next() < 0.6 || model.length === 0) {
        // Few distinct times, so that ties are common.
        const at = Math.floor(next() * 20);
        const txId = `tx-${seq}`;
        queue.add(at, txId);
        model.push({ at, txId, seq });
        seq += 1;
      } else {
        model.sort((a, b) => a.at - b.at || a.seq - b.seq);
        const expected = model.shift();
        const peeked = queue.peek();
        t.deepEqual(
          peeked && { at: peeked.at, txId: peeked.txId },
          expected && { at: expected.at, txId: expected.txId },
        );
        const taken = queue.take();
        t.is(taken?.txId, expected?.txId, `seed ${seed}, step ${step}`);
      }
      t.is(queue.size, model.length);
    }
  }
});

test('DueQueue is empty after its last entry is taken, and rebuild replaces every entry', (t) => {
  const queue = new DueQueue();
  t.is(queue.take(), undefined);
  queue.add(5, 'a');
  const only = queue.take();
  t.deepEqual([only?.at, only?.txId], [5, 'a']);
  t.is(queue.peek(), undefined);
  for (let i = 0; i < 10; i += 1) queue.add(100 - i, `old-${i}`);
  const fresh: DueEntry[] = [
    { at: 3, txId: 'c' },
    { at: 1, txId: 'a' },
    { at: 2, txId: 'b' },
  ];
  queue.rebuild(fresh);
  t.is(queue.size, 3);
  t.deepEqual(
    [queue.take(), queue.take(), queue.take(), queue.take()].map((entry) => entry?.txId),
    ['a', 'b', 'c', undefined],
  );
});
