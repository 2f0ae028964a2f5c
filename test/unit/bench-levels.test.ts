/**
 * The benchmark's `--only` filter (bench/throughput.ts): it picks levels by a part of their names,
 * and a text that names no level stops the run before it starts instead of running nothing. And
 * where the messaging bound's echo levels go among them (echoPlan).
 */
import test from 'ava';
import { echoPlan, levelName, selectLevels } from '../../bench/throughput.ts';
import { ConfigError } from '../../common/errors.ts';

test('without --only every level runs', (t) => {
  const names = selectLevels(undefined).map(levelName);
  t.true(names.includes('closed c=1 all-commit'));
  t.true(names.includes('open 1000/s all-commit'));
  t.true(names.some((name) => name.includes('no-10pct')));
});

test('--only keeps the levels whose names contain one of its texts, in the usual order', (t) => {
  const names = selectLevels(['1000/s', 'c=1 ']).map(levelName);
  t.deepEqual(names, ['closed c=1 all-commit', 'closed c=1 no-10pct', 'open 1000/s all-commit']);
});

test('an --only text that names no level is a ConfigError that lists the levels', (t) => {
  for (const only of [['c1'], ['c=64', 'open1000'], ['']]) {
    const error = t.throws(() => selectLevels(only), { instanceOf: ConfigError });
    t.regex(error.message, /names no level; the levels: closed c=1 all-commit, /);
  }
});

/** The echo concurrency measured after each named level, and those measured before the levels. */
function plan(only: readonly string[] | undefined) {
  const specs = selectLevels(only);
  const { before, after } = echoPlan(specs);
  const afterByName = specs.flatMap((spec, index) => {
    const concurrency = after[index];
    return concurrency === undefined ? [] : [[levelName(spec), concurrency] as const];
  });
  return { before, afterByName };
}

test('each echo level runs right after the all-commit closed level at its concurrency', (t) => {
  t.deepEqual(plan(undefined), {
    before: [],
    afterByName: [
      ['closed c=64 all-commit', 64],
      ['closed c=256 all-commit', 256],
      ['closed c=1024 all-commit', 1_024],
    ],
  });
});

test('an echo level with no payments at its concurrency runs before the levels', (t) => {
  t.deepEqual(plan(['c=256 all', 'c=64 no']), {
    before: [64, 1_024],
    afterByName: [['closed c=256 all-commit', 256]],
  });
  t.deepEqual(plan(['c=1 all', '1000/s']), { before: [64, 256, 1_024], afterByName: [] });
});
