/**
 * The NATS users configuration of ops/nats-server.ts: the recommended permissions of each part,
 * and users that could not be rendered safely into a server config are refused before any server
 * starts. (test/integration/auth.test.ts runs a real server with these users.)
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  NatsUsersError,
  natsUser,
  recommendedPermissions,
  startNatsServer,
  type NatsUser,
} from '../../ops/nats-server.ts';

test('a client may publish only on its own two subjects and read only its own inbox', (t) => {
  t.deepEqual(recommendedPermissions({ kind: 'client', clientId: 'shop-a' }), {
    publish: ['continuum.coordinator.pay.shop-a', 'continuum.coordinator.status.shop-a'],
    subscribe: ['_INBOX_shop-a.>'],
  });
  t.throws(() => recommendedPermissions({ kind: 'client', clientId: '>' }), {
    name: 'ValidationError',
  });
});

test('services answer requests; only the gateway publishes for every client', (t) => {
  t.true(recommendedPermissions({ kind: 'coordinator' }).allowResponses);
  t.true(recommendedPermissions({ kind: 'participant', name: 'bank' }).allowResponses);
  t.deepEqual(recommendedPermissions({ kind: 'participant', name: 'bank' }).publish, [
    'continuum.coordinator.status',
  ]);
  t.deepEqual(recommendedPermissions({ kind: 'gateway' }).publish, [
    'continuum.coordinator.pay.*',
    'continuum.coordinator.status.*',
  ]);
  for (const kind of ['coordinator', 'gateway', 'operator'] as const) {
    const { publish } = recommendedPermissions({ kind });
    t.false(publish.includes('>'), `${kind} does not get everything`);
  }
});

test('users that cannot be rendered safely are refused before a server starts', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'continuum-nats-users-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const good = natsUser('shop-a', 'secret-password-1', { kind: 'client', clientId: 'shop-a' });
  const bad: [string, NatsUser[]][] = [
    ['a quote in the name', [{ ...good, user: 'shop"a' }]],
    ['an empty name', [{ ...good, user: '' }]],
    ['a short password', [{ ...good, password: 'short' }]],
    ['a quote in the password', [{ ...good, password: 'secret"password' }]],
    ['a space in the password', [{ ...good, password: 'secret password' }]],
    ['a backslash in the password', [{ ...good, password: 'secret\\password' }]],
    ['a user twice', [good, good]],
    ['an empty token', [{ ...good, permissions: { publish: ['a..b'], subscribe: [] } }]],
    ['> not last', [{ ...good, permissions: { publish: ['a.>.b'], subscribe: [] } }]],
    ['a partial wildcard', [{ ...good, permissions: { publish: [], subscribe: ['a.b*'] } }]],
    ['whitespace', [{ ...good, permissions: { publish: ['a b'], subscribe: [] } }]],
  ];
  for (const [what, users] of bad) {
    await t.throwsAsync(startNatsServer({ dataDir, users }), { instanceOf: NatsUsersError }, what);
  }
});
