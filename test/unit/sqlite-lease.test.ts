/**
 * The leadership lease in the journal's file (coordinator/adapters/sqlite-lease.ts): one holder at
 * a time, kept by renewing, taken over only after it expired, and lost for good by a holder that
 * was replaced while it paused. Two leases on one file stand for two coordinator processes; the
 * clock is the test's.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteLease } from '../../coordinator/adapters/sqlite-lease.ts';

const ttlMs = 600;

function pair(t: ExecutionContext) {
  const directory = mkdtempSync(join(tmpdir(), 'continuum-lease-'));
  const file = join(directory, 'coordinator.sqlite');
  const clock = { now: 1_700_000_000_000 };
  const now = (): number => clock.now;
  const a = new SqliteLease({ file, ttlMs, holder: 'coordinator-1', now });
  const b = new SqliteLease({ file, ttlMs, holder: 'coordinator-2', now });
  t.teardown(() => {
    a.close();
    b.close();
    rmSync(directory, { recursive: true, force: true });
  });
  return { a, b, clock };
}

test('one holder at a time; renewing keeps it past the TTL', async (t) => {
  const { a, b, clock } = pair(t);
  t.true(await a.tryAcquire(0));
  t.false(await b.tryAcquire(0), 'held');
  for (let i = 0; i < 5; i += 1) {
    clock.now += ttlMs / 2;
    t.true(await a.renew(1));
    t.false(await b.tryAcquire(0), 'renewed, still held');
  }
  t.is(a.unavailable, undefined);
  t.is(b.unavailable, undefined, 'held by another is no failure');
});

test('an expired lease is taken over, and its old holder can no longer renew it', async (t) => {
  const { a, b, clock } = pair(t);
  t.true(await a.tryAcquire(0));
  clock.now += ttlMs - 1;
  t.false(await b.tryAcquire(0), 'not expired yet');
  clock.now += 1;
  t.true(await b.tryAcquire(1), 'expired: taken over');
  t.false(await a.renew(1), 'the old holder, back from a pause, has lost it');
  t.false(await a.renew(1), 'and stays lost');
  t.true(await b.renew(2));
  clock.now += ttlMs - 1;
  t.false(await a.tryAcquire(0), 'the new holder renewed it');
});

test('a released lease is free at once; releasing one that is not ours changes nothing', async (t) => {
  const { a, b } = pair(t);
  t.true(await a.tryAcquire(0));
  await b.release();
  t.false(await b.tryAcquire(0), 'b released nothing of a');
  await a.release();
  t.true(await b.tryAcquire(0), 'free without waiting for the TTL');
  t.false(await a.renew(1), 'a gave it up');
});
