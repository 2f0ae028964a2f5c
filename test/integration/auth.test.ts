/**
 * Client identity, authenticated: a real nats-server with users and the recommended permissions
 * (ops/nats-server.ts), every service logged in as its own user, two clients each with their own
 * credentials, and the HTTP gateway with an API tokens file. It shows that a client's subject is
 * its identity: client A pays and reads its own payments; client B cannot publish on A's subjects
 * (a typed error at once, nothing journaled, no participant traffic), cannot read A's payment by
 * key or by transaction id, nor A's replies; a body naming another client than its subject is
 * refused; and the gateway's tokens decide the client id of an HTTP request.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ContinuumClient,
  NatsPermissionError,
  type AttemptEvent,
  type NatsCredentials,
} from '../../client/index.ts';
import { connectNats, type NatsConnection } from '../../common/nats.ts';
import {
  decodePayReply,
  decodeStatusReply,
  encodeMessage,
  subjects,
} from '../../common/protocol.ts';
import { natsUser, type NatsUser } from '../../ops/nats-server.ts';
import { projectRoot } from '../../ops/service-process.ts';
import { paymentFor } from '../../participants/seed.ts';
import { deliveredToParticipants } from '../helpers/connz.ts';
import { HookCleanup, startTestStack, type TestStack } from '../helpers/harness.ts';

const password = (): string => randomBytes(24).toString('hex');
const userA = natsUser('shop-a', password(), { kind: 'client', clientId: 'shop-a' });
const userB = natsUser('shop-b', password(), { kind: 'client', clientId: 'shop-b' });
const tokenA = randomBytes(32).toString('hex');
const tokenB = randomBytes(32).toString('hex');

const credentialsOf = (user: NatsUser): NatsCredentials => ({
  user: user.user,
  password: user.password,
});

let ts: TestStack;
let a: ContinuumClient;
let b: ContinuumClient;
let paidByA: { key: string; txId: string };
const cleanup = new HookCleanup();

test.before(async (t) => {
  const tokensDir = mkdtempSync(join(tmpdir(), 'continuum-tokens-'));
  cleanup.push(() => rmSync(tokensDir, { recursive: true, force: true }));
  const clientsFile = join(tokensDir, 'clients.json');
  writeFileSync(clientsFile, JSON.stringify({ [tokenA]: 'shop-a', [tokenB]: 'shop-b' }));
  ts = await startTestStack(cleanup.context(t), {
    natsUsers: [userA, userB],
    gateway: true,
    gatewayFlags: ['--clients', clientsFile],
  });
  const servers = ts.stack.natsUrls;
  a = await ContinuumClient.connect({
    servers,
    clientId: 'shop-a',
    credentials: credentialsOf(userA),
  });
  cleanup.push(() => a.close());
  b = await ContinuumClient.connect({
    servers,
    clientId: 'shop-b',
    credentials: credentialsOf(userB),
  });
  cleanup.push(() => b.close());
});

test.after.always(() => cleanup.run());

function countRows(table: 'payments' | 'journal'): number {
  const [row] = ts.query<{ n: number }>('coordinator', `SELECT count(*) AS n FROM ${table}`);
  return row?.n ?? Number.NaN;
}

/** What the coordinator's journal and the participants have seen so far. */
async function footprint(): Promise<object> {
  return {
    payments: countRows('payments'),
    journal: countRows('journal'),
    delivered: await deliveredToParticipants(ts.stack.nats),
  };
}

test.serial('without credentials, or with a wrong password, nothing connects', async (t) => {
  const servers = ts.stack.natsUrls;
  await t.throwsAsync(ContinuumClient.connect({ servers, clientId: 'shop-a' }), {
    name: 'AuthorizationError',
  });
  const wrong = { user: 'shop-a', password: 'not-the-password' };
  await t.throwsAsync(
    ContinuumClient.connect({ servers, clientId: 'shop-a', credentials: wrong }),
    {
      name: 'AuthorizationError',
    },
  );
});

test.serial('(a) client A pays, and reads its payment by key and by transaction id', async (t) => {
  const key = 'auth-a-key-0000000000001';
  const outcome = await a.makePayment(paymentFor('order-1001'), { idempotencyKey: key });
  t.like(outcome, { outcome: 'committed', replay: false });
  paidByA = { key, txId: outcome.txId };
  t.like(await a.status(key), { txId: outcome.txId, state: 'committed' });
  const byId = encodeMessage({ v: 1, kind: 'status', txId: outcome.txId });
  const reply = decodeStatusReply(await a.requestRaw(subjects.clientStatus('shop-a'), byId));
  t.like(reply, { kind: 'status', txId: outcome.txId, state: 'committed' });
  const [row] = ts.query<{ client_id: string }>(
    'coordinator',
    'SELECT client_id FROM payments WHERE tx_id = ?',
    outcome.txId,
  );
  t.is(row?.client_id, 'shop-a');
  await ts.assertConsistent(t);
});

test.serial(
  "(b) client B cannot publish on A's pay subject: typed, at once, no trace",
  async (t) => {
    const before = await footprint();
    const request = {
      v: 1,
      kind: 'pay',
      clientId: 'shop-a',
      idempotencyKey: 'auth-b-as-a-000000000001',
      payment: paymentFor('order-1005'),
    };
    // A long timeout: a permission violation must be reported as such, not run into a timeout.
    const error = await t.throwsAsync(
      b.requestRaw(subjects.clientPay('shop-a'), encodeMessage(request), 30_000),
      { instanceOf: NatsPermissionError },
    );
    t.like(error, {
      operation: 'publish',
      subject: subjects.clientPay('shop-a'),
      clientId: 'shop-b',
    });
    t.deepEqual(await footprint(), before, 'nothing journaled, no participant heard of it');
  },
);

test.serial(
  "(b) the client library with B's credentials but A's id fails once, typed",
  async (t) => {
    const before = await footprint();
    const impostor = await ContinuumClient.connect({
      servers: ts.stack.natsUrls,
      clientId: 'shop-a',
      credentials: credentialsOf(userB),
    });
    t.teardown(() => impostor.close());
    const events: AttemptEvent[] = [];
    const error = await t.throwsAsync(
      impostor.makePayment(paymentFor('order-1005'), {
        idempotencyKey: 'auth-b-as-a-000000000002',
        deadlineMs: 30_000,
        onEvent: (event) => events.push(event),
      }),
      { instanceOf: NatsPermissionError },
    );
    t.is(error.clientId, 'shop-a');
    t.deepEqual(
      events.map((event) => event.kind),
      ['sent'],
      'one attempt, never retried',
    );
    await t.throwsAsync(impostor.status(paidByA.key), { instanceOf: NatsPermissionError });
    t.deepEqual(await footprint(), before, 'nothing journaled, no participant heard of it');
  },
);

test.serial("(b) client B cannot read A's payment, by key or by A's transaction id", async (t) => {
  // By key, B asks in its own scope: A's key names nothing there.
  t.like(await b.status(paidByA.key), { txId: null, state: 'unknown' });
  // By A's transaction id on B's own subject: unknown, exactly as for an id nobody used.
  const byId = encodeMessage({ v: 1, kind: 'status', txId: paidByA.txId });
  const own = decodeStatusReply(await b.requestRaw(subjects.clientStatus('shop-b'), byId));
  t.deepEqual(own, { v: 1, kind: 'status', txId: paidByA.txId, state: 'unknown', epoch: 1 });
  // A's status subject and the service status subject are closed to B.
  for (const subject of [subjects.clientStatus('shop-a'), subjects.status]) {
    const error = await t.throwsAsync(b.requestRaw(subject, byId, 30_000), {
      instanceOf: NatsPermissionError,
    });
    t.like(error, { operation: 'publish', subject });
  }
  // The operator's user may ask the service subject about any transaction.
  const operatorCredentials = ts.stack.operatorCredentials;
  if (operatorCredentials === undefined) throw new Error('the stack has NATS users');
  const operator = await connectNats({
    servers: ts.stack.natsUrls,
    name: 'auth-operator',
    credentials: operatorCredentials,
  });
  t.teardown(() => operator.close());
  const reply = await operator.request(subjects.status, byId, { timeout: 2_000 });
  t.like(decodeStatusReply(reply.data), { txId: paidByA.txId, state: 'committed' });
});

test.serial("(b) client B cannot subscribe to A's reply inbox", async (t) => {
  const nats: NatsConnection = await connectNats({
    servers: ts.stack.natsUrls,
    name: 'auth-eavesdropper',
    credentials: credentialsOf(userB),
  });
  t.teardown(() => nats.close());
  const refused = new Promise<unknown>((resolve) => {
    nats.subscribe('_INBOX_shop-a.>', { callback: (error) => resolve(error) });
  });
  await nats.flush();
  t.like(await refused, { name: 'PermissionViolationError', operation: 'subscription' });
});

test.serial('(c) a body naming another client than its subject is refused', async (t) => {
  const before = await footprint();
  const request = {
    v: 1,
    kind: 'pay',
    clientId: 'shop-b',
    idempotencyKey: 'auth-c-mismatch-00000001',
    payment: paymentFor('order-1005'),
  };
  const reply = decodePayReply(
    await a.requestRaw(subjects.clientPay('shop-a'), encodeMessage(request)),
  );
  t.like(reply, { kind: 'error', code: 'invalid-request' });
  t.regex(reply.kind === 'error' ? reply.message : '', /^clientId: shop-b is not the client/);
  const query = { v: 1, kind: 'status', clientId: 'shop-b', idempotencyKey: paidByA.key };
  const status = decodeStatusReply(
    await a.requestRaw(subjects.clientStatus('shop-a'), encodeMessage(query)),
  );
  t.like(status, { kind: 'error', code: 'invalid-request' });
  t.deepEqual(await footprint(), before, 'nothing journaled, no participant heard of it');
});

function gateway(path: string, headers: Record<string, string>, body?: unknown) {
  return fetch(`${ts.stack.gatewayUrl}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

test.serial("(d) the gateway's tokens decide the client id of an HTTP request", async (t) => {
  const key = 'auth-d-http-key-00000001';
  const body = { payment: paymentFor('order-1011') };
  const idempotency = { 'idempotency-key': key };
  const before = await footprint();
  const missing = await gateway('/payments', idempotency, body);
  t.is(missing.status, 401);
  t.is(missing.headers.get('www-authenticate'), 'Bearer realm="continuum"');
  const unknown = await gateway(
    '/payments',
    { ...idempotency, authorization: 'Bearer x'.padEnd(40, 'y') },
    body,
  );
  t.is(unknown.status, 401);
  t.regex(unknown.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
  const asOther = await gateway(
    '/payments',
    { ...idempotency, authorization: `Bearer ${tokenA}`, 'continuum-client-id': 'shop-b' },
    body,
  );
  t.is(asOther.status, 403);
  t.deepEqual(await footprint(), before, 'refused requests journal nothing');

  const paid = await gateway(
    '/payments',
    { ...idempotency, authorization: `Bearer ${tokenA}`, 'continuum-client-id': 'shop-a' },
    body,
  );
  t.is(paid.status, 200);
  const outcome = (await paid.json()) as { txId: string; outcome: string };
  t.is(outcome.outcome, 'committed');
  const [row] = ts.query<{ client_id: string }>(
    'coordinator',
    'SELECT client_id FROM payments WHERE tx_id = ?',
    outcome.txId,
  );
  t.is(row?.client_id, 'shop-a', 'the token, not a header, named the client');
  // The same key is A's over NATS too, and nobody else's.
  t.like(await a.status(key), { txId: outcome.txId, state: 'committed' });
  const mine = await gateway(`/payments/${key}`, { authorization: `Bearer ${tokenA}` });
  t.is(mine.status, 200);
  const theirs = await gateway(`/payments/${key}`, { authorization: `Bearer ${tokenB}` });
  t.is(theirs.status, 404, "B's token sees nothing under A's key");
  t.is((await gateway(`/payments/${key}`, {})).status, 401);
  await ts.assertConsistent(t);
});

test.serial('the gateway refuses to start with a tokens file it cannot use', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'continuum-tokens-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'clients.json');
  writeFileSync(file, JSON.stringify({ 'too-short': 'shop-a' }));
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'gateway/main.ts',
      '--nats',
      ts.stack.natsUrls.join(','),
      '--port',
      '0',
    ].concat(['--clients', file]),
    { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.is(code, 2, stderr);
  t.regex(stderr, /"name":"ConfigError"/);
  t.regex(stderr, /token #1 must match/);
  t.notRegex(stderr, /too-short/, 'the token itself is never echoed');
});
