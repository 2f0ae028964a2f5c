/**
 * Leadership (coordinator/leadership.ts) on a real journal and a real lease in the journal's file,
 * with a service that does nothing: what ends a term, and what the process does next. The other
 * coordinator is a second journal on the same file, starting terms by hand.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { JournalBusyError } from '../../common/errors.ts';
import { SqliteJournal } from '../../coordinator/adapters/sqlite-journal.ts';
import { SqliteLease } from '../../coordinator/adapters/sqlite-lease.ts';
import { Leadership, type LeadershipOptions, type Role } from '../../coordinator/leadership.ts';
import type { JournalRecord } from '../../coordinator/core/types.ts';
import type { LogFields, Logger } from '../../common/log.ts';
import { beginRecord } from '../helpers/journal-records.ts';
import { until } from '../helpers/wait.ts';
import { holdWriteLock } from '../helpers/write-lock-holder.ts';

const retentionMs = 60_000;
const ttlMs = 1_000;

interface Logged {
  readonly event: string;
  readonly fields: LogFields;
}

function setUp(t: ExecutionContext) {
  const directory = mkdtempSync(join(tmpdir(), 'continuum-leadership-'));
  const file = join(directory, 'coordinator.sqlite');
  const journal = new SqliteJournal(file, retentionMs);
  const other = new SqliteJournal(file, retentionMs);
  const lease = new SqliteLease({ file, ttlMs, holder: 'coordinator-1', now: Date.now });
  const logged: Logged[] = [];
  const record = (event: string, fields: LogFields = {}): void =>
    void logged.push({ event, fields });
  const log: Logger = { info: record, warn: record, error: record };
  const roles: { role: Role; epoch: number | undefined }[] = [];
  const leadership = new Leadership({
    journal,
    lease,
    instance: 'coordinator-1',
    log,
    now: Date.now,
    standbyPollMs: 20,
    renewMs: 20,
    createService: () => ({ start: () => Promise.resolve(), stop: () => undefined }),
    onRole: (role, epoch) => void roles.push({ role, epoch }),
    onFencedWithoutLease: () => t.fail('the lease is there'),
  });
  t.teardown(async () => {
    await leadership.stop();
    journal.close();
    other.close();
    lease.close();
    rmSync(directory, { recursive: true, force: true });
  });
  /** When the lease, as it stands in the file, expires: a bare connection reads it. */
  const leaseExpiresAt = (): number => {
    const db = new Database(file, { readonly: true });
    try {
      return db.prepare('SELECT expires_at FROM lease WHERE id = 1').pluck().get() as number;
    } finally {
      db.close();
    }
  };
  return { leadership, other, logged, roles, leaseExpiresAt };
}

test('an idle leader whose term another began ends it at its next renewal, and leads again after the TTL', async (t) => {
  const { leadership, other, logged, roles, leaseExpiresAt } = setUp(t);
  const running = leadership.run();
  t.true(await until(() => roles.some((entry) => entry.role === 'active'), 3_000), 'active');
  t.deepEqual(roles.at(-1), { role: 'active', epoch: 1 });
  // Another process starts term 2 but holds no lease (its own renewal failed: the lease is ours),
  // so nobody would lead while this idle process kept renewing a lease for term 1.
  const fencedAt = Date.now();
  t.is(other.beginTerm('coordinator-2', fencedAt), 2);
  // Its last renewal came before the fence, up to a renewal interval before: that sets the expiry.
  const expiresAt = leaseExpiresAt();
  t.true(expiresAt > fencedAt, 'the lease was still ours when term 2 began');
  t.true(
    await until(() => logged.some((entry) => entry.event === 'term-ended'), 3_000),
    'term 1 ended',
  );
  const ended = logged.find((entry) => entry.event === 'term-ended');
  t.is(ended?.fields['epoch'], 1);
  t.regex(String(ended?.fields['reason']), /^fenced/);
  t.is(leaseExpiresAt(), expiresAt, 'it ended the term instead of renewing the lease for it');
  // It keeps its hands off the lease it still holds; once that expires, it takes it again.
  t.true(await until(() => (roles.at(-1)?.epoch ?? 0) > 2, 3_000), 'a newer term of its own');
  t.deepEqual(roles.at(-1), { role: 'active', epoch: 3 });
  t.true(Date.now() >= expiresAt, 'not before the lease expired');
  await leadership.stop();
  await running;
});

/**
 * A coordinator without a lease (the only one) whose journal write waits out the busy timeout:
 * the term ends, and the process starts the next one itself, once the lock is free, instead of
 * exiting. Serial (ava runs serial tests first, alone): the write blocks this worker's event loop
 * for the 5 s busy timeout, which would stall the other test's timers.
 */
test.serial(
  'a single coordinator whose write waits out the busy timeout leads again in a new term',
  async (t) => {
    const directory = mkdtempSync(join(tmpdir(), 'continuum-leadership-'));
    const file = join(directory, 'coordinator.sqlite');
    const journal = new SqliteJournal(file, retentionMs);
    const logged: Logged[] = [];
    const record = (event: string, fields: LogFields = {}): void =>
      void logged.push({ event, fields });
    const roles: { role: Role; epoch: number | undefined }[] = [];
    // What the service's next batch does: write, and end the term if the journal refuses.
    let write: (entry: JournalRecord) => void = () => t.fail('no term has begun');
    const leadership = new Leadership({
      journal,
      lease: undefined,
      instance: 'coordinator-1',
      log: { info: record, warn: record, error: record },
      now: Date.now,
      standbyPollMs: 20,
      renewMs: 20,
      createService: (_epoch, onTermOver) => {
        write = (entry) => {
          try {
            journal.append([entry], Date.now());
          } catch (error) {
            if (!(error instanceof JournalBusyError)) throw error;
            onTermOver(error);
          }
        };
        return { start: () => Promise.resolve(), stop: () => undefined };
      },
      onRole: (role, epoch) => void roles.push({ role, epoch }),
      onFencedWithoutLease: () => t.fail('nobody else began a term'),
    });
    t.teardown(() => {
      journal.close();
      rmSync(directory, { recursive: true, force: true });
    });
    const running = leadership.run();
    t.true(await until(() => roles.length > 0, 3_000), 'active');
    t.deepEqual(roles, [{ role: 'active', epoch: 1 }]);
    // Another process keeps the write lock past the busy timeout, and lets it go a second later.
    const holder = holdWriteLock(file, { locked: [] }, 6_000);
    await holder.locked;
    write(
      beginRecord('01HZX3V2M8Q4J7K9N0P5R6S7T8', 'busy-single-key-0001', {
        clientId: 'leadership-test',
        createdAt: Date.now(),
      }),
    );
    t.true(
      await until(() => logged.some((entry) => entry.event === 'term-ended'), 3_000),
      'term 1 ended',
    );
    const ended = logged.find((entry) => entry.event === 'term-ended');
    t.is(ended?.fields['epoch'], 1);
    t.regex(String(ended?.fields['reason']), /^journal busy/);
    t.is(journal.findById('01HZX3V2M8Q4J7K9N0P5R6S7T8'), undefined, 'nothing was written');
    t.true(await until(() => roles.length > 1, 10_000), 'a new term');
    t.deepEqual(roles, [
      { role: 'active', epoch: 1 },
      { role: 'active', epoch: 2 },
    ]);
    t.is(await holder.exited, 0);
    write(
      beginRecord('01HZX3V2M8Q4J7K9N0P5R6S7T9', 'busy-single-key-0002', {
        clientId: 'leadership-test',
        createdAt: Date.now(),
      }),
    );
    t.is(
      journal.findById('01HZX3V2M8Q4J7K9N0P5R6S7T9')?.idempotencyKey,
      'busy-single-key-0002',
      'the new term writes',
    );
    await leadership.stop();
    await running;
  },
);

/** The only coordinator, without a lease, on a fresh journal, running the service given. */
function soleLeadership(
  t: ExecutionContext,
  createService: LeadershipOptions['createService'],
  onRole: LeadershipOptions['onRole'],
): Leadership {
  const directory = mkdtempSync(join(tmpdir(), 'continuum-leadership-'));
  const journal = new SqliteJournal(join(directory, 'coordinator.sqlite'), retentionMs);
  const quiet = (): void => undefined;
  const leadership = new Leadership({
    journal,
    lease: undefined,
    instance: 'coordinator-1',
    log: { info: quiet, warn: quiet, error: quiet },
    now: Date.now,
    standbyPollMs: 20,
    renewMs: 20,
    createService,
    onRole,
    onFencedWithoutLease: () => t.fail('nobody else began a term'),
  });
  t.teardown(async () => {
    await leadership.stop();
    journal.close();
    rmSync(directory, { recursive: true, force: true });
  });
  return leadership;
}

/**
 * The first role announced is the ready line the launcher waits for: a coordinator printed it
 * before the NATS server had its subscriptions, and a test's first request found no responders.
 */
test('the active role is announced once the service is reachable, not when it starts', async (t) => {
  const roles: { role: Role; epoch: number | undefined }[] = [];
  let started = 0;
  let reachable: () => void = () => t.fail('not started');
  const leadership = soleLeadership(
    t,
    () => ({
      start: () => {
        started += 1;
        return new Promise<void>((resolve) => (reachable = resolve));
      },
      stop: () => undefined,
    }),
    (role, epoch) => void roles.push({ role, epoch }),
  );
  const running = leadership.run();
  t.true(await until(() => started === 1, 3_000), 'the service was started');
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.deepEqual(roles, [], 'nothing announced while the service is not reachable');
  reachable();
  await leadership.ready;
  t.deepEqual(roles, [{ role: 'active', epoch: 1 }]);
  await leadership.stop();
  await running;
});

test('a service that cannot start stops the leadership loop with its error', async (t) => {
  const leadership = soleLeadership(
    t,
    () => ({
      start: () => {
        throw new Error('unknown journal record kind "x"');
      },
      stop: () => undefined,
    }),
    () => t.fail('a service that did not start is not announced'),
  );
  await t.throwsAsync(leadership.run(), { message: /unknown journal record kind/ });
});
