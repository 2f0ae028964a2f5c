// Proves the nats-server launcher starts real, usable servers and that its fault-injection
// controls (kill, restart, pause, resume) behave as the chaos tests will assume.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { natsServerEnvironment, startNatsCluster, startNatsServer } from '../../ops/nats-server.ts';
import type { NatsClusterHandle, NatsServerHandle } from '../../ops/nats-server.ts';

// Teardowns run last-registered-first, so the directory goes after the servers using it.
function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'continuum-nats-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

async function server(t: ExecutionContext): Promise<NatsServerHandle> {
  const handle = await startNatsServer({ dataDir: tempDir(t) });
  t.teardown(() => handle.stop());
  return handle;
}

async function cluster(t: ExecutionContext): Promise<NatsClusterHandle> {
  const handle = await startNatsCluster({ dataDir: tempDir(t) });
  t.teardown(() => handle.stop());
  return handle;
}

async function client(
  t: ExecutionContext,
  servers: string | readonly string[],
): Promise<NatsConnection> {
  const nc = await connect({
    servers: typeof servers === 'string' ? servers : [...servers],
    noRandomize: true,
    reconnectTimeWait: 100,
  });
  t.teardown(() => nc.close());
  return nc;
}

function echo(nc: NatsConnection, subject: string): void {
  nc.subscribe(subject, {
    callback: (_err, msg) => {
      msg.respond(`echo:${msg.string()}`);
    },
  });
}

// Interest propagates between cluster nodes asynchronously, so early requests may find no
// responders; retry until the deadline rather than sleeping for a guessed time.
async function requestEventually(nc: NatsConnection, subject: string, data: string) {
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      return (await nc.request(subject, data, { timeout: 1_000 })).string();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      resolve(error.code === 'ECONNREFUSED');
    });
  });
}

test('single node serves publish and request/reply', async (t) => {
  const nats = await server(t);
  t.regex(nats.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
  t.true(nats.isRunning());
  const nc = await client(t, nats.url);
  echo(nc, 'svc.echo');
  const received = new Promise<string>((resolve) => {
    nc.subscribe('events', {
      max: 1,
      callback: (_err, msg) => {
        resolve(msg.string());
      },
    });
  });
  nc.publish('events', 'hello');
  t.is(await received, 'hello');
  t.is((await nc.request('svc.echo', 'ping', { timeout: 2_000 })).string(), 'echo:ping');
});

test('a server runs with one Go scheduler thread unless GOMAXPROCS says otherwise', async (t) => {
  const nats = await server(t);
  const environ = readFileSync(`/proc/${String(nats.pid)}/environ`, 'utf8').split('\0');
  t.true(environ.includes('GOMAXPROCS=1'));
  t.is(natsServerEnvironment({ PATH: '/bin' })['GOMAXPROCS'], '1');
  t.is(natsServerEnvironment({ GOMAXPROCS: '2' })['GOMAXPROCS'], '2');
});

test('kill() makes the port refuse and restart() brings it back at the same url', async (t) => {
  const nats = await server(t);
  const { url, port } = nats;
  await nats.kill();
  t.false(nats.isRunning());
  t.is(nats.pid, undefined);
  t.true(await refusesConnections(port));
  await nats.restart();
  t.true(nats.isRunning());
  t.is(nats.url, url);
  const nc = await client(t, url);
  echo(nc, 'svc.echo');
  t.is((await nc.request('svc.echo', 'again', { timeout: 2_000 })).string(), 'echo:again');
});

test('pause() makes requests time out and resume() restores service', async (t) => {
  const nats = await server(t);
  const nc = await client(t, nats.url);
  echo(nc, 'svc.echo');
  await nc.flush();
  await nats.pause();
  t.teardown(() => {
    nats.resume();
  });
  await t.throwsAsync(nc.request('svc.echo', 'stuck', { timeout: 300 }));
  nats.resume();
  t.is((await nc.request('svc.echo', 'back', { timeout: 2_000 })).string(), 'echo:back');
});

test('3-node cluster routes requests between nodes and has a JetStream meta leader', async (t) => {
  const natsCluster = await cluster(t);
  t.is(natsCluster.nodes.length, 3);
  const responder = await client(t, natsCluster.node(0).url);
  echo(responder, 'svc.echo');
  await responder.flush();
  const requester = await client(t, natsCluster.node(2).url);
  t.is(await requestEventually(requester, 'svc.echo', 'across'), 'echo:across');
  for (const node of natsCluster.nodes) {
    const jsz: unknown = await (await fetch(`http://127.0.0.1:${node.httpPort}/jsz`)).json();
    t.regex(JSON.stringify(jsz), /"meta_cluster":\{[^}]*"leader":"node-\d"/);
  }
});

test('cluster keeps serving request/reply after node 0 is killed', async (t) => {
  const natsCluster = await cluster(t);
  const responder = await client(t, natsCluster.node(1).url);
  echo(responder, 'svc.echo');
  await responder.flush();
  // noRandomize puts the requester on node 0, so killing it forces a failover.
  const requester = await client(t, natsCluster.urls);
  t.is(await requestEventually(requester, 'svc.echo', 'before'), 'echo:before');
  await natsCluster.node(0).kill();
  t.false(natsCluster.node(0).isRunning());
  t.is(await requestEventually(requester, 'svc.echo', 'after'), 'echo:after');
});
