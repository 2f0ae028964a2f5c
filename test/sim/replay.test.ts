/**
 * Reproducibility: a seed replays exactly, event for event, in one process or another, in a
 * worker thread or the main one, and from the command line.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import test from 'ava';
import { firstViolation, runInParallel, runShare } from './runner.ts';
import { runSeed } from './simulator.ts';

const run = promisify(execFile);
const tsx = new URL('../../node_modules/.bin/tsx', import.meta.url).pathname;
const cli = new URL('./cli.ts', import.meta.url).pathname;

test('replaying a seed gives an identical trace and result', (t) => {
  for (const seed of [1, 2, 17, 123_456, 2 ** 40 + 3]) {
    const first = runSeed(seed, { fullTrace: true });
    const second = runSeed(seed, { fullTrace: true });
    t.true(first.trace.length > 10, `seed ${seed} has a trace`);
    t.deepEqual(second, first, `seed ${seed} replays exactly`);
  }
});

test('a failing seed replays to the same violation at the same step', (t) => {
  const mutation = 'send-decision-before-forcing';
  const found = firstViolation({ firstSeed: 1, seeds: 100, mutation, traceLines: 10 });
  if (found === undefined) {
    t.fail('no failing seed to replay');
    return;
  }
  const first = runSeed(found.seed, { fullTrace: true, mutation });
  t.deepEqual(first.violation, found.violation);
  t.deepEqual(runSeed(found.seed, { fullTrace: true, mutation }), first);
});

test('different seeds give different runs', (t) => {
  const traces = new Set([1, 2, 3].map((seed) => runSeed(seed, { fullTrace: true }).trace.join()));
  t.is(traces.size, 3);
});

test('worker threads add up to the same totals as one thread', async (t) => {
  const options = { firstSeed: 40, seeds: 30, traceLines: 10 };
  const parallel = await runInParallel(options, 2);
  const serial = runShare({ options, offset: 0, stride: 1 });
  t.is(parallel.workers, 2);
  t.deepEqual(
    { steps: parallel.steps, faults: parallel.faults, seeds: parallel.seedsRun },
    { steps: serial.steps, faults: serial.faults, seeds: serial.seedsRun },
  );
});

test('the command line replays a seed to the same trace digest', async (t) => {
  const once = await run(tsx, [cli, '--seed', '7', '--trace', '5']);
  const twice = await run(tsx, [cli, '--seed', '7', '--trace', '5']);
  t.regex(once.stdout, /trace digest [0-9a-f]{8}/);
  t.is(twice.stdout, once.stdout);
});

test('the command line refuses bad flags with exit code 2 and says why', async (t) => {
  for (const args of [
    ['--seeds', 'many'],
    ['--seeds', '3', '--mutation', 'nope'],
    ['--bogus'],
    [],
  ]) {
    const error = await t.throwsAsync(run(tsx, [cli, ...args]));
    t.is((error as Error & { code?: number }).code, 2, args.join(' '));
    t.regex((error as Error & { stderr?: string }).stderr ?? '', /ConfigError: .+\nusage:/);
  }
});
