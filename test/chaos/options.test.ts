/**
 * Every flag of `npm run chaos` is checked before anything starts: a bad value is a
 * ChaosUsageError that names the flag and what it accepts, and the command exits with code 2.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../ops/service-process.ts';
import { faultKinds } from './faults.ts';
import { ChaosUsageError, defaultOptions, parseChaosArgs } from './options.ts';

const parse = (...args: string[]) => parseChaosArgs(args, () => 99);

test('defaults: every fault kind, a random seed, no mutations', (t) => {
  const options = parse();
  if (options === 'help') return t.fail('not help');
  t.like(options, { ...defaultOptions, seed: 99, json: false, dir: undefined, mutations: [] });
  t.deepEqual(options.faults, faultKinds);
});

test('flags are read', (t) => {
  const options = parse(
    '--duration',
    '30',
    '--seed',
    '42',
    '--faults',
    'kill-nats,link-stall,kill-nats',
    '--clients',
    '4',
    '--json',
    '--settle-timeout',
    '20',
    '--concurrent-faults',
    '3',
    '--crash-points',
    'participant-after-vote',
    '--mutations',
    'ignore-epoch',
    '--barrier-retention-ms',
    '3000',
    '--key-retention-ms',
    '8000',
    '--lease',
    'journal',
  );
  t.like(options, {
    durationS: 30,
    seed: 42,
    faults: ['kill-nats', 'link-stall'],
    clients: 4,
    json: true,
    settleTimeoutS: 20,
    concurrentFaults: 3,
    crashPoints: ['participant-after-vote'],
    mutations: ['ignore-epoch'],
    barrierRetentionMs: 3_000,
    keyRetentionMs: 8_000,
    lease: 'journal',
  });
  t.deepEqual(parse('--faults', 'none'), { ...(parse() as object), faults: [] });
  t.is(parse('--help'), 'help');
});

const refused: readonly (readonly [string[], string])[] = [
  [['--duration', '4'], '--duration: must be an integer from 5 to 86400, not "4"'],
  [['--duration', '1e3'], '--duration: must be an integer from 5 to 86400, not "1e3"'],
  [['--seed', '4294967296'], '--seed: must be an integer from 0 to 4294967295'],
  [['--faults', 'kill-everything'], '--faults: unknown fault kind "kill-everything"'],
  [['--faults', ','], '--faults: is empty'],
  [['--clients', '257'], '--clients: must be an integer from 1 to 256'],
  [['--settle-timeout', 'soon'], '--settle-timeout: must be an integer from 5 to 3600'],
  [['--concurrent-faults', '0'], '--concurrent-faults: must be an integer from 1 to 4'],
  [['--crash-points', 'after-lunch'], '--crash-points: unknown crash point "after-lunch"'],
  [['--mutations', 'make-it-fast'], '--mutations: unknown mutation "make-it-fast"'],
  [['--dir', ''], '--dir: is empty'],
  [['--barrier-retention-ms', '999'], '--barrier-retention-ms: must be an integer from 1000 to'],
  [['--key-retention-ms', '100'], '--key-retention-ms: must be an integer from 1000 to'],
  [['--lease', 'zookeeper'], '--lease: must be nats or journal, not "zookeeper"'],
  [['--bogus'], 'unknown flag --bogus'],
  [['--duration'], '--duration needs a value'],
  [['extra'], 'unexpected argument "extra"'],
];

for (const [args, message] of refused) {
  test(`refused: ${args.join(' ')}`, (t) => {
    const error = t.throws(() => parse(...args), { instanceOf: ChaosUsageError });
    t.true(error.message.startsWith(message), error.message);
  });
}

test('a run directory must be absent or empty', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'continuum-chaos-options-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  t.like(parse('--dir', join(root, 'new')), { dir: join(root, 'new') });
  t.like(parse('--dir', root), { dir: root });
  writeFileSync(join(root, 'file'), '');
  t.throws(() => parse('--dir', root), { message: /is not empty/ });
  t.throws(() => parse('--dir', join(root, 'file')), { message: /is not a directory/ });
});

test('the command exits with code 2 and the usage on a bad flag, before starting anything', (t) => {
  const result = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'test/chaos/cli.ts', '--duration', 'forever'],
    { cwd: projectRoot, encoding: 'utf8', timeout: 30_000 },
  );
  t.is(result.status, 2);
  t.regex(result.stderr, /--duration: must be an integer/);
  t.regex(result.stderr, /Usage: npm run chaos/);
  t.is(result.stdout, '');
});
