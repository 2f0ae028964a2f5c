/**
 * The benchmark's `--only` filter (bench/throughput.ts): it picks levels by a part of their names,
 * and a text that names no level stops the run before it starts instead of running nothing.
 */
import test from 'ava';
import { levelName, selectLevels } from '../../bench/throughput.ts';
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
