/**
 * The link proxy against a real nats-server: messages pass, are delayed, lost one way, held by a
 * stall and delivered after it, delivered twice, and a cut closes the link. Also the frame reader on its own, since
 * every fault depends on cutting the stream at message boundaries.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServerHandle } from '../../ops/nats-server.ts';
import { FrameReader, LinkProxy, rewriteInfo } from './proxy.ts';
import { Rng } from './random.ts';

test('the frame reader cuts at message boundaries, whatever the chunks', (t) => {
  const stream = Buffer.from(
    'PUB a.b _INBOX.1 5\r\nhello\r\nPING\r\nHPUB x 12 14\r\nNATS/1.0\r\n\r\nhi\r\n',
  );
  for (const size of [1, 3, 7, stream.length]) {
    const reader = new FrameReader();
    const frames = [];
    for (let offset = 0; offset < stream.length; offset += size) {
      frames.push(...reader.push(stream.subarray(offset, offset + size)));
    }
    t.deepEqual(
      frames.map((frame) => [frame.kind, frame.bytes.toString()]),
      [
        ['data', 'PUB a.b _INBOX.1 5\r\nhello\r\n'],
        ['control', 'PING\r\n'],
        ['data', 'HPUB x 12 14\r\nNATS/1.0\r\n\r\nhi\r\n'],
      ],
      `chunks of ${size}`,
    );
  }
});

test("INFO's cluster URLs are rewritten to the service's proxies", (t) => {
  const info = Buffer.from(
    'INFO {"server_id":"x","connect_urls":["127.0.0.1:4001","127.0.0.1:4002"]}\r\n',
  );
  const map = new Map([['127.0.0.1:4001', '127.0.0.1:5001']]);
  const rewritten = rewriteInfo(info, (address) => map.get(address)).toString();
  t.is(rewritten, 'INFO {"server_id":"x","connect_urls":["127.0.0.1:5001"]}\r\n');
});

interface Rig {
  readonly server: NatsServerHandle;
  readonly proxy: LinkProxy;
  readonly direct: NatsConnection;
  readonly proxied: NatsConnection;
}

async function rig(t: ExecutionContext): Promise<Rig> {
  const dataDir = mkdtempSync(join(tmpdir(), 'continuum-proxy-'));
  const server = await startNatsServer({ dataDir });
  const proxy = await LinkProxy.open(server.port, new Rng(1));
  const options = { reconnectTimeWait: 100, maxReconnectAttempts: -1, timeout: 1_000 };
  const direct = await connect({ servers: [server.url], ...options });
  const proxied = await connect({ servers: [proxy.url], ...options });
  t.teardown(async () => {
    await Promise.allSettled([direct.close(), proxied.close()]);
    await proxy.close();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  // The proxied side answers requests on "echo", so a request from the direct side crosses the
  // link twice: in as MSG (from NATS), out as PUB (to NATS).
  proxied.subscribe('echo', {
    callback: (_error, msg) => {
      msg.respond(msg.data);
    },
  });
  await proxied.flush();
  return { server, proxy, direct, proxied };
}

async function echo(rig: Rig, timeoutMs = 500): Promise<number | 'timeout'> {
  const started = Date.now();
  try {
    await rig.direct.request('echo', new TextEncoder().encode('x'), { timeout: timeoutMs });
    return Date.now() - started;
  } catch {
    return 'timeout';
  }
}

test('pass, delay, one-way and drop act on whole messages', async (t) => {
  const r = await rig(t);
  t.not(await echo(r), 'timeout', 'passes');
  r.proxy.setMode({ kind: 'delay', delayMs: 150, jitterMs: 0 });
  const delayed = await echo(r, 2_000);
  t.true(delayed !== 'timeout' && delayed >= 290, `delayed both ways (${delayed} ms)`);
  r.proxy.setMode({ kind: 'one-way', lose: 'to-nats' });
  t.is(await echo(r), 'timeout', 'the request arrives, the answer is lost');
  await r.proxied.flush();
  t.pass('PING and PONG still pass, so the connection stays up');
  r.proxy.setMode({ kind: 'one-way', lose: 'from-nats' });
  t.is(await echo(r), 'timeout', 'the request is lost');
  r.proxy.setMode({ kind: 'drop', probability: 1 });
  t.is(await echo(r), 'timeout');
  r.proxy.setMode({ kind: 'pass' });
  t.not(await echo(r), 'timeout', 'passes again');
  t.true(r.proxy.counters.lost >= 3);
});

test('a stall holds messages and delivers them when it ends', async (t) => {
  const r = await rig(t);
  const seen: string[] = [];
  const sub = r.proxied.subscribe('stalled', {
    callback: (_error, msg) => {
      seen.push(new TextDecoder().decode(msg.data));
    },
  });
  await r.proxied.flush();
  r.proxy.setMode({ kind: 'stall' });
  r.direct.publish('stalled', new TextEncoder().encode('late'));
  await r.direct.flush();
  await sleep(300);
  t.deepEqual(seen, [], 'nothing moves during the stall');
  r.proxy.setMode({ kind: 'pass' });
  await sleep(300);
  t.deepEqual(seen, ['late'], 'delivered late');
  sub.unsubscribe();
});

test('duplicate delivers every message and, late, a copy of each, both ways', async (t) => {
  const r = await rig(t);
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const inbound: string[] = [];
  const outbound: string[] = [];
  const into = (seen: string[]) => ({
    callback: (_error: unknown, msg: { data: Uint8Array }) => {
      seen.push(decoder.decode(msg.data));
    },
  });
  r.proxied.subscribe('in', into(inbound));
  r.direct.subscribe('out', into(outbound));
  await Promise.all([r.proxied.flush(), r.direct.flush()]);
  r.proxy.setMode({ kind: 'duplicate', probability: 1, lateMsMax: 200 });
  for (const n of ['1', '2', '3', '4', '5']) {
    r.direct.publish('in', encoder.encode(n));
    r.proxied.publish('out', encoder.encode(n));
  }
  await r.direct.flush();
  await r.proxied.flush();
  // The originals pass at once, in order; each copy follows within lateMsMax.
  t.deepEqual([...new Set(inbound)], ['1', '2', '3', '4', '5'], 'the originals, in order');
  r.proxy.setMode({ kind: 'pass' });
  await sleep(400);
  const twice = ['1', '1', '2', '2', '3', '3', '4', '4', '5', '5'];
  t.deepEqual([...inbound].sort(), twice, 'towards the service: each message twice');
  t.deepEqual([...outbound].sort(), twice, 'towards NATS: each message twice');
  t.is(r.proxy.counters.copied, 10);
  t.not(await echo(r), 'timeout');
  t.is(r.proxy.counters.copied, 10, 'no copies once the mode has ended');
});

test('a cut closes the link and refuses reconnection until it ends', async (t) => {
  const r = await rig(t);
  r.proxy.setMode({ kind: 'cut' });
  await sleep(400);
  t.is(r.proxy.connectionCount, 0);
  t.true(r.proxy.counters.refused > 0, 'reconnection attempts were refused');
  t.is(await echo(r), 'timeout');
  r.proxy.setMode({ kind: 'pass' });
  const deadline = Date.now() + 5_000;
  let answered: number | 'timeout' = 'timeout';
  while (answered === 'timeout' && Date.now() < deadline) answered = await echo(r, 300);
  t.not(answered, 'timeout', 'the client reconnected through the proxy');
});
