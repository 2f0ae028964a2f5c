import test from 'ava';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { TurnoverMap, TurnoverSet } from '../../common/turnover-map.ts';
import { Random } from '../sim/random.ts';

test('TurnoverMap answers as a Map does, in the same order, through many renewals', (t) => {
  for (let seed = 1; seed <= 40; seed += 1) {
    const random = new Random(seed);
    const map = new TurnoverMap<number, number>();
    const model = new Map<number, number>();
    const keysMax = random.int(5, 300);
    for (let step = 0; step < 5_000; step += 1) {
      const key = random.int(0, keysMax);
      const draw = random.float();
      if (draw < 0.45) {
        t.is(map.set(key, step), map);
        model.set(key, step);
      } else if (draw < 0.9) {
        t.is(map.delete(key), model.delete(key), `seed ${seed} step ${step}: delete ${key}`);
      } else if (draw < 0.999) {
        t.is(map.get(key), model.get(key));
        t.is(map.has(key), model.has(key));
      } else {
        map.clear();
        model.clear();
      }
      t.is(map.size, model.size);
    }
    t.deepEqual([...map], [...model], `seed ${seed}: entries in insertion order`);
    t.deepEqual([...map.keys()], [...model.keys()]);
    t.deepEqual([...map.values()], [...model.values()]);
  }
});

test('TurnoverSet answers as a Set does, in the same order, through many renewals', (t) => {
  for (let seed = 1; seed <= 40; seed += 1) {
    const random = new Random(seed);
    const set = new TurnoverSet<string>();
    const model = new Set<string>();
    for (let step = 0; step < 5_000; step += 1) {
      const value = `tx-${random.int(0, 200)}`;
      const draw = random.float();
      if (draw < 0.5) {
        t.is(set.add(value), set);
        model.add(value);
      } else if (draw < 0.999) {
        t.is(set.delete(value), model.delete(value), `seed ${seed} step ${step}: delete ${value}`);
      } else {
        set.clear();
        model.clear();
      }
      t.is(set.has(value), model.has(value));
      t.is(set.size, model.size);
    }
    t.deepEqual([...set], [...model], `seed ${seed}: values in insertion order`);
  }
});

test('deleting while iterating visits each entry once, as with a Map, even past a renewal', (t) => {
  // The participant channel's sweep: walk in order, settle (delete) each, stop at a young one.
  const map = new TurnoverMap<number, string>();
  for (let key = 0; key < 1_000; key += 1) map.set(key, `v${key}`);
  const visited: number[] = [];
  for (const [key] of map) {
    visited.push(key);
    map.delete(key);
    if (key % 3 === 0) map.delete(key + 1); // not visited: deleted before its turn
    if (key === 900) break;
  }
  const expected = [];
  for (let key = 0; key <= 900; key += 1) if (key % 3 !== 1) expected.push(key);
  t.deepEqual(visited, expected);
  t.deepEqual(
    [...map.keys()],
    Array.from({ length: 99 }, (_, i) => 901 + i).filter((key) => key !== 901),
  );
  // The loop's deletions were more than enough for a renewal; it came after the loop.
  map.set(5_000, 'after');
  t.is(map.get(5_000), 'after');
  for (let key = 902; key < 1_000; key += 1) t.true(map.delete(key));
  t.deepEqual([...map], [[5_000, 'after']]);
});

test('clear() ends an iteration under way, as with a Map', (t) => {
  const set = new TurnoverSet<number>();
  for (let value = 0; value < 10; value += 1) set.add(value);
  const seen: number[] = [];
  for (const value of set) {
    seen.push(value);
    if (value === 3) set.clear();
  }
  t.deepEqual(seen, [0, 1, 2, 3]);
  t.is(set.size, 0);
});

test('an iterator left open stops the renewals, not the answers', (t) => {
  const map = new TurnoverMap<number, number>();
  for (let key = 0; key < 100; key += 1) map.set(key, key);
  const open = map.keys();
  t.is(open.next().value, 0);
  for (let key = 0; key < 90; key += 1) t.true(map.delete(key));
  t.is(map.size, 10);
  // Like a Map's iterator, it sees the deletions made since.
  t.deepEqual([...open], [90, 91, 92, 93, 94, 95, 96, 97, 98, 99]);
});

/**
 * The reason these exist: values that went through a plain Map survive young-generation
 * collections until the next full one, because the Map's old hash tables (one of them promoted)
 * keep pointing to their successors. The figures differ by two orders of magnitude, so the check
 * does not depend on the machine.
 */
test('values deleted from a TurnoverMap are left to the young-generation collector', (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (options: { type: 'minor' | 'major' }) => void;
  const oldSpaceUsed = (): number =>
    getHeapSpaceStatistics().find((space) => space.space_name === 'old_space')?.space_used_size ??
    0;
  const promotedBy = (map: {
    set(k: number, v: number[]): unknown;
    delete(k: number): unknown;
  }) => {
    // As in a service: a few entries in flight, values of about 1 KB, a full GC now and then
    // (which promotes the table in use), and scavenges in between.
    for (let key = 0; key < 30; key += 1) map.set(key, new Array<number>(100).fill(key));
    gc({ type: 'major' });
    gc({ type: 'major' });
    const before = oldSpaceUsed();
    for (let key = 30; key < 20_030; key += 1) {
      map.set(key, new Array<number>(100).fill(key));
      map.delete(key - 30);
      if (key % 1_000 === 0) gc({ type: 'minor' });
    }
    gc({ type: 'minor' });
    gc({ type: 'minor' });
    return oldSpaceUsed() - before;
  };
  const megabytes = (bytes: number): string => `${(bytes / 1e6).toFixed(2)} MB`;
  const turnover = promotedBy(new TurnoverMap<number, number[]>());
  const plain = promotedBy(new Map<number, number[]>());
  t.log(`promoted: TurnoverMap ${megabytes(turnover)}, Map ${megabytes(plain)} (16 MB of values)`);
  t.true(turnover < 1e6, `a TurnoverMap's deleted values were promoted: ${megabytes(turnover)}`);
});
