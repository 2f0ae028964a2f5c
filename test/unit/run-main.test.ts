/**
 * How a service process ends, as its log tells it (`runMain` in common/cli.ts): a launcher that
 * is gone (its end of our stdin closed) and every exit with a code leave a line saying so, so
 * that an exit seen from outside can be told apart from a kill by a signal, which leaves none.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import test from 'ava';
import { projectRoot } from '../../ops/service-process.ts';

type Mode = 'serve' | 'command' | 'exit-3' | 'bad-config';

interface Ended {
  readonly code: number | null;
  readonly lines: readonly Record<string, unknown>[];
}

/**
 * Runs the idle service fixture (test/fixtures/idle-service.ts) as a launcher would; `closeStdin`
 * once it is ready, as a launcher that is gone.
 */
async function run(mode: Mode, closeStdin: boolean): Promise<Ended> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/fixtures/idle-service.ts', mode],
    {
      cwd: projectRoot,
      env: { ...process.env, CONTINUUM_EXIT_WITH_PARENT: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = once(child, 'exit');
  if (closeStdin) {
    await once(child.stdout, 'data');
    child.stdin.end();
  }
  const [code] = (await exited) as [number | null];
  const lines = stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { code, lines };
}

test('a service whose launcher is gone says so, then logs its exit', async (t) => {
  const { code, lines } = await run('serve', true);
  t.is(code, 0);
  t.like(lines.at(-2), { level: 'warn', event: 'launcher-gone', why: 'stdin closed' });
  t.like(lines.at(-1), { level: 'info', event: 'exit', code: 0 });
});

test('an exit with a code is the last line of the log, as an error', async (t) => {
  const { code, lines } = await run('exit-3', false);
  t.is(code, 3);
  t.like(lines.at(-1), { level: 'error', event: 'exit', code: 3 });
});

test('a configuration error: its line, then the exit with code 2', async (t) => {
  const { code, lines } = await run('bad-config', false);
  t.is(code, 2);
  t.like(lines.at(-2), {
    level: 'fatal',
    event: 'start-failed',
    name: 'ConfigError',
    message: '--x must be on or off',
  });
  t.like(lines.at(-1), { level: 'error', event: 'exit', code: 2 });
});

test('a one-shot command leaves with its launcher but logs no exit line', async (t) => {
  const { code, lines } = await run('command', true);
  t.is(code, 0);
  t.like(lines.at(-1), { event: 'launcher-gone' });
  t.false(lines.some((line) => line['event'] === 'exit'));
});
