/**
 * ULIDs from the pooled generator (common/ids.ts): well-formed, strictly increasing, carrying
 * their creation time, and with random parts drawn uniformly from the CSPRNG.
 */
import test from 'ava';
import { decodeTime } from 'ulid';
import { pooledRandom, ulidFactory, ulidTime, ulidTimePrefix } from '../../common/ids.ts';
import { transactionIdPattern } from '../../common/protocol.ts';

test('ids are ULIDs, strictly increasing, stamped with the time they were made', (t) => {
  const next = ulidFactory();
  const before = Date.now();
  const ids = Array.from({ length: 20_000 }, () => next());
  const after = Date.now();
  for (const id of ids) t.regex(id, transactionIdPattern);
  for (let i = 1; i < ids.length; i += 1) {
    if (!((ids[i] as string) > (ids[i - 1] as string))) t.fail(`${ids[i]} after ${ids[i - 1]}`);
  }
  for (const id of [ids[0] as string, ids.at(-1) as string]) {
    t.true(decodeTime(id) >= before && decodeTime(id) <= after);
  }
  t.is(new Set(ids).size, ids.length);
});

test('two generators never make the same id', (t) => {
  const a = ulidFactory();
  const b = ulidFactory();
  const seen = new Set<string>();
  for (let i = 0; i < 5_000; i += 1) {
    seen.add(a());
    seen.add(b());
  }
  t.is(seen.size, 10_000);
});

test('the random source is uniform over 256 values in [0, 1), across pool refills', (t) => {
  const random = pooledRandom();
  const counts = new Array<number>(256).fill(0);
  const draws = 256 * 400; // 25 refills of the 4 KiB pool
  for (let i = 0; i < draws; i += 1) {
    const value = random();
    t.true(value >= 0 && value < 1, `${value} out of range`);
    const index = value * 256;
    if (!Number.isInteger(index)) t.fail(`${value} is not a multiple of 1/256`);
    counts[index] = (counts[index] as number) + 1;
  }
  // Chi-square with 255 degrees of freedom: 400 is beyond the 99.999th percentile (about 360).
  const expected = draws / 256;
  const chiSquare = counts.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
  t.true(chiSquare < 400, `chi-square ${chiSquare.toFixed(1)}`);
  t.true(Math.min(...counts) > 0);
});

test('ulidTime reads the time the ulid package reads, and refuses what is not a ULID', (t) => {
  const next = ulidFactory();
  const ids = [
    next(),
    '00000000000000000000000000',
    '7ZZZZZZZZZZZZZZZZZZZZZZZZZ',
    '01ARZ3NDEKTSV4RRFFQ69G5FAV',
  ];
  for (const id of ids) t.is(ulidTime(id), decodeTime(id), id);
  t.is(ulidTime('000000001Z0000000000000000'), 32 + 31);
  t.is(ulidTime('7ZZZZZZZZZZZZZZZZZZZZZZZZZ'), 2 ** 48 - 1);
  for (const bad of [
    '01ARZ3NDEKTSV4RRFFQ69G5FA',
    '01arz3ndektsv4rrffq69g5fav',
    '01ARZ3NDEUTSV4RRFFQ69G5FAV',
    '0IARZ3NDEKTSV4RRFFQ69G5FAV',
  ]) {
    t.throws(() => ulidTime(bad), { instanceOf: RangeError }, bad);
  }
});

test('ulidTimePrefix splits ids by time: made before it sorts below, made at or after does not', (t) => {
  const time = Date.UTC(2026, 11, 4, 12, 0, 0, 5);
  const prefix = ulidTimePrefix(time);
  t.is(prefix.length, 10);
  t.is(ulidTime(`${prefix}0000000000000000`), time);
  for (const [made, below] of [
    [time - 1, true],
    [time - 86_400_000, true],
    [time, false],
    [time + 1, false],
  ] as const) {
    const id = ulidFactory()(made);
    t.is(ulidTime(id), made);
    t.is(id < prefix, below, `${id} made at ${made - time} ms`);
  }
  t.true('7ZZZZZZZZZZZZZZZZZZZZZZZZZ' >= ulidTimePrefix(2 ** 48 - 1));
});
