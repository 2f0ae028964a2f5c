/**
 * The client library's request/reply (common/requester.ts), through a real nats-server with the
 * recommended users and permissions: each reply reaches its own request, and every failure the
 * client library tells apart arrives as nats.js's `request()` would deliver it.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errors } from '@nats-io/transport-node';
import {
  connectNats,
  isNoResponders,
  permissionViolationOf,
  type NatsConnection,
} from '../../common/nats.ts';
import { clientInboxPrefix, subjects } from '../../common/protocol.ts';
import { Requester } from '../../common/requester.ts';
import { natsUser, startNatsServer, type NatsServerHandle } from '../../ops/nats-server.ts';

const client = natsUser('shop-a', 'shop-a-password-1', { kind: 'client', clientId: 'shop-a' });
const coordinator = natsUser('coordinator', 'coordinator-password-1', { kind: 'coordinator' });
const paySubject = subjects.clientPay('shop-a');
const encoder = new TextEncoder();
const decoder = new TextDecoder();

let server: NatsServerHandle;
const connections: NatsConnection[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'continuum-requester-'));

test.before(async () => {
  server = await startNatsServer({ dataDir, users: [client, coordinator] });
  // A stand-in coordinator: answers "<body>!" after the delay the body names, or not at all.
  const responder = await connect(coordinator);
  responder.subscribe(subjects.clientPayAll, {
    callback: (_error, msg) => {
      const body = decoder.decode(msg.data);
      if (body === 'silence') return;
      const delayMs = Number(body.split(':')[1] ?? 0);
      setTimeout(() => msg.respond(encoder.encode(`${body}!`)), delayMs);
    },
  });
  await responder.flush();
});

test.after.always(async () => {
  for (const connection of connections) if (!connection.isClosed()) await connection.close();
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function connect(user: typeof client): Promise<NatsConnection> {
  const connection = await connectNats({
    servers: [server.url],
    name: `requester-test-${user.user}`,
    credentials: { user: user.user, password: user.password },
    ...(user === client ? { inboxPrefix: clientInboxPrefix('shop-a') } : {}),
  });
  connections.push(connection);
  return connection;
}

async function clientRequester(): Promise<{ nats: NatsConnection; requests: Requester }> {
  const nats = await connect(client);
  return { nats, requests: new Requester(nats, clientInboxPrefix('shop-a')) };
}

test('each reply reaches its own request, however the replies are ordered', async (t) => {
  const { requests } = await clientRequester();
  const bodies = Array.from({ length: 200 }, (_, i) => `r${i}:${(i * 7) % 40}`);
  const replies = await Promise.all(
    bodies.map((body) => requests.request(paySubject, encoder.encode(body), 5_000)),
  );
  t.deepEqual(
    replies.map((reply) => decoder.decode(reply.data)),
    bodies.map((body) => `${body}!`),
  );
});

test('a request nobody answers in time fails with a TimeoutError, and its late reply is dropped', async (t) => {
  const { requests } = await clientRequester();
  const startedAt = performance.now();
  const error = await t.throwsAsync(requests.request(paySubject, encoder.encode('late:400'), 100));
  t.true(error instanceof errors.TimeoutError, String(error));
  t.true(performance.now() - startedAt >= 99);
  // The late reply arrives while this one waits: it must not answer it.
  const next = await requests.request(paySubject, encoder.encode('next:600'), 5_000);
  t.is(decoder.decode(next.data), 'next:600!');
});

test('a subject nobody subscribes to fails as "no responders"', async (t) => {
  const { requests } = await clientRequester();
  // shop-a may publish status questions, but the stand-in coordinator answers only payments.
  const status = subjects.clientStatus('shop-a');
  const error = await t.throwsAsync(requests.request(status, encoder.encode('anyone?'), 2_000));
  t.true(isNoResponders(error), String(error));
});

test('a publish the server refuses fails that request with the violation, and only that one', async (t) => {
  const { requests } = await clientRequester();
  const allowed = requests.request(paySubject, encoder.encode('fine:200'), 5_000);
  const forbidden = subjects.clientPay('shop-b');
  const error = await t.throwsAsync(requests.request(forbidden, encoder.encode('x'), 5_000));
  t.deepEqual(permissionViolationOf(error), { operation: 'publish', subject: forbidden });
  t.is(decoder.decode((await allowed).data), 'fine:200!');
});

test('a reply subscription the server refuses fails every request waiting on it', async (t) => {
  const nats = await connect(client);
  // Another client's inbox: shop-a may not read it.
  const requests = new Requester(nats, clientInboxPrefix('shop-b'));
  const failures = await Promise.all(
    [1, 2, 3].map((i) =>
      requests.request(paySubject, encoder.encode(`s${i}:300`), 5_000).then(
        () => undefined,
        (error: unknown) => permissionViolationOf(error)?.operation,
      ),
    ),
  );
  t.deepEqual(failures, ['subscription', 'subscription', 'subscription']);
});

test('closing the connection fails the requests still waiting, and any made after', async (t) => {
  const { nats, requests } = await clientRequester();
  const waiting = requests.request(paySubject, encoder.encode('silence'), 5_000);
  await nats.flush();
  await nats.close();
  const error = await t.throwsAsync(waiting);
  t.true(error instanceof errors.RequestError, String(error));
  await t.throwsAsync(requests.request(paySubject, encoder.encode('after'), 1_000));
});
