/**
 * A paused service must stay paused, and alive, whatever happens to the shell that started its
 * launcher. If the services shared their launcher's process group, that group would become
 * orphaned when the shell exits (the launcher's new parent is in another session), and the kernel
 * sends an orphaned group with a stopped member SIGHUP and SIGCONT (POSIX job control): a paused
 * Node service died of the SIGHUP and a paused nats-server was resumed early. It happened in a
 * chaos run whose starting shell had returned (docs/chaos.md). So each is started in a session
 * of its own (ops/service-process.ts, ops/nats-server.ts).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import {
  ProcessNotStoppedError,
  processState,
  projectRoot,
  threadStates,
  untilStopped,
} from '../../ops/service-process.ts';

function signal(pid: number | undefined, name: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, name);
  } catch {
    // It exited already (ESRCH).
  }
}

test('a paused service and nats-server stay paused when the shell that started them exits', async (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'continuum-process-groups-'));
  const pidFile = join(directory, 'pids.json');
  const launcherPidFile = join(directory, 'launcher.pid');
  const pids: { launcher?: number; service?: number; nats?: number } = {};
  t.teardown(async () => {
    signal(pids.service, 'SIGCONT');
    signal(pids.nats, 'SIGCONT');
    signal(pids.launcher, 'SIGKILL');
    await sleep(500);
    signal(pids.service, 'SIGKILL');
    signal(pids.nats, 'SIGKILL');
    rmSync(directory, { recursive: true, force: true });
  });
  // A shell with job control, in a session of its own, as a terminal's or a CI step's: it starts
  // the launcher as a job (its own process group), waits until both children are paused, and
  // exits, leaving the launcher's group with no parent in the session.
  const script = [
    'set -m',
    `node --import tsx test/fixtures/pausing-launcher.ts '${pidFile}' '${directory}' &`,
    `echo $! > '${launcherPidFile}'`,
    `while [ ! -s '${pidFile}' ]; do sleep 0.05; done`,
  ].join('\n');
  const shell = spawn('bash', ['-c', script], {
    cwd: projectRoot,
    detached: true,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const [code] = (await once(shell, 'exit')) as [number | null];
  t.is(code, 0);
  pids.launcher = Number(readFileSync(launcherPidFile, 'utf8'));
  const children = JSON.parse(readFileSync(pidFile, 'utf8')) as { service: number; nats: number };
  Object.assign(pids, children);
  await sleep(1_000);
  t.is(processState(children.service), 'T', 'the service is still there, stopped');
  t.is(processState(children.nats), 'T', 'nats-server is still stopped');
});

test('processState tells a stopped process from a running one and from one that is gone', async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  const pid = child.pid;
  t.teardown(() => signal(pid, 'SIGKILL'));
  await sleep(100);
  t.is(processState(pid), 'S');
  signal(pid, 'SIGSTOP');
  await sleep(100);
  t.is(processState(pid), 'T');
  signal(pid, 'SIGCONT');
  await sleep(100);
  t.is(processState(pid), 'S');
  signal(pid, 'SIGKILL');
  await once(child, 'exit');
  t.is(processState(pid), 'gone');
  t.is(processState(undefined), 'gone');
});

/**
 * Two threads spinning on the CPU: the kind of process a SIGSTOP takes a moment to reach.
 * Resolves once both spin, which it says on stdout: a fixed wait was not enough on a loaded
 * machine (the process still had one thread after 200 ms, a CI failure).
 */
async function spinningProcess(): Promise<ReturnType<typeof spawn>> {
  const program =
    "const { Worker } = require('node:worker_threads');" +
    "new Worker('for (;;) {}', { eval: true }).on('online', () => {" +
    "  process.stdout.write('spinning\\n');" +
    '  for (;;) {}' +
    '});';
  const child = spawn(process.execPath, ['-e', program], { stdio: ['ignore', 'pipe', 'ignore'] });
  const spinning = await new Promise<boolean>((resolve) => {
    child.stdout.once('data', () => resolve(true));
    child.once('exit', () => resolve(false));
    setTimeout(() => resolve(false), 10_000).unref();
  });
  if (!spinning) {
    child.kill('SIGKILL');
    throw new Error('the spinning process did not start within 10 s');
  }
  return child;
}

// kill() returns before the other core's threads have taken the SIGSTOP: without the wait, a
// request sent right after pause() was answered (a CI failure of the nats-server test).
test('untilStopped resolves only once every thread has stopped, each time', async (t) => {
  const child = await spinningProcess();
  const { pid } = child;
  t.teardown(() => signal(pid, 'SIGKILL'));
  if (pid === undefined) throw new Error('the spinning process did not start');
  for (let round = 0; round < 20; round += 1) {
    signal(pid, 'SIGSTOP');
    await untilStopped(pid);
    const states = threadStates(pid);
    t.true(states.length >= 2, `threads: ${states.join('')}`);
    t.deepEqual(new Set(states), new Set(['T']), `round ${round}: threads ${states.join('')}`);
    signal(pid, 'SIGCONT');
    await sleep(5);
  }
});

test('untilStopped fails with a typed error on a running process and resolves on a gone one', async (t) => {
  const child = await spinningProcess();
  const { pid } = child;
  t.teardown(() => signal(pid, 'SIGKILL'));
  if (pid === undefined) throw new Error('the spinning process did not start');
  const error = await t.throwsAsync(untilStopped(pid, 50), { instanceOf: ProcessNotStoppedError });
  t.is(error.pid, pid);
  signal(pid, 'SIGKILL');
  await once(child, 'exit');
  await t.notThrowsAsync(untilStopped(pid, 50));
});
