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
import { SqliteJournal } from '../../coordinator/adapters/sqlite-journal.ts';
import { SqliteLease } from '../../coordinator/adapters/sqlite-lease.ts';
import { Leadership, type Role } from '../../coordinator/leadership.ts';
import type { LogFields, Logger } from '../../common/log.ts';

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
    createService: () => ({ start: () => undefined, stop: () => undefined }),
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

async function until(what: string, holds: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!holds()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('an idle leader whose term another began ends it at its next renewal, and leads again after the TTL', async (t) => {
  const { leadership, other, logged, roles, leaseExpiresAt } = setUp(t);
  const running = leadership.run();
  await until('active', () => roles.some((entry) => entry.role === 'active'));
  t.deepEqual(roles.at(-1), { role: 'active', epoch: 1 });
  // Another process starts term 2 but holds no lease (its own renewal failed: the lease is ours),
  // so nobody would lead while this idle process kept renewing a lease for term 1.
  const fencedAt = Date.now();
  t.is(other.beginTerm('coordinator-2', fencedAt), 2);
  // Its last renewal came before the fence, up to a renewal interval before: that sets the expiry.
  const expiresAt = leaseExpiresAt();
  t.true(expiresAt > fencedAt, 'the lease was still ours when term 2 began');
  await until('term 1 ended', () => logged.some((entry) => entry.event === 'term-ended'));
  const ended = logged.find((entry) => entry.event === 'term-ended');
  t.is(ended?.fields['epoch'], 1);
  t.regex(String(ended?.fields['reason']), /^fenced/);
  t.is(leaseExpiresAt(), expiresAt, 'it ended the term instead of renewing the lease for it');
  // It keeps its hands off the lease it still holds; once that expires, it takes it again.
  await until('a newer term of its own', () => (roles.at(-1)?.epoch ?? 0) > 2);
  t.deepEqual(roles.at(-1), { role: 'active', epoch: 3 });
  t.true(Date.now() >= expiresAt, 'not before the lease expired');
  await leadership.stop();
  await running;
});
