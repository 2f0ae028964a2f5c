/**
 * An exception thrown in a service's subscription callback (`deliverOrStop` in common/nats.ts).
 * Handed to nats.js, it ends the connection's reader and leaves the process running and deaf
 * until its pings find the connection stale; through `deliverOrStop` it stops the process, as
 * any uncaught exception does, so that a restart recovers from what is durable.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { connectNats, type NatsConnection } from '../../common/nats.ts';
import { startNatsServer, type NatsServerHandle } from '../../ops/nats-server.ts';
import { projectRoot } from '../../ops/service-process.ts';

let server: NatsServerHandle;
let nats: NatsConnection;
const dataDir = mkdtempSync(join(tmpdir(), 'continuum-subscription-'));

test.before(async () => {
  server = await startNatsServer({ dataDir });
  nats = await connectNats({ servers: [server.url], name: 'subscription-test' });
});

test.after.always(async () => {
  await nats.close();
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

interface Subscriber {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stderr(): string;
}

/** Starts the fixture; the test kills it at the end, should it still run. */
async function startSubscriber(t: ExecutionContext, mode: 'guarded' | 'raw'): Promise<Subscriber> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/fixtures/throwing-subscriber.ts', mode, server.url],
    {
      cwd: projectRoot,
      env: { ...process.env, CONTINUUM_EXIT_WITH_PARENT: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  t.teardown(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  await once(child.stdout, 'data');
  return { child, exited, stderr: () => stderr };
}

async function ask(body: string): Promise<string> {
  return (await nats.request('fixture.echo', body, { timeout: 1_000 })).string();
}

test('through deliverOrStop, an exception in a handler stops the process and says why', async (t) => {
  const subscriber = await startSubscriber(t, 'guarded');
  t.is(await ask('hello'), 'hello!');
  nats.publish('fixture.echo', 'boom');
  t.is(await subscriber.exited, 1);
  t.regex(subscriber.stderr(), /Error: boom: a bug in a handler/);
  t.regex(subscriber.stderr(), /"event":"exit","code":1/);
});

test('handed to nats.js, the same exception leaves the process running but deaf', async (t) => {
  const subscriber = await startSubscriber(t, 'raw');
  t.is(await ask('hello'), 'hello!');
  nats.publish('fixture.echo', 'boom');
  await t.throwsAsync(ask('still there?'), { message: /TIMEOUT|timeout/i });
  t.is(subscriber.child.exitCode, null, 'still running');
});
