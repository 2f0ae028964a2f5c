/**
 * Which payments the soak's invariant check lets the coordinator have forgotten (ops/checker.ts):
 * only those made before the key retention period, found by the participants' business rows,
 * since their barrier rows expire too. A younger payment the journal does not know stays a
 * violation. (The chaos checker applies the same rule to the snapshot it reads: `Retention`.)
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ulid } from 'ulid';
import { forgottenTransactions } from '../../ops/checker.ts';
import { openDatabase } from '../../common/sqlite.ts';

const retentionMs = 120_000;

test('only payments older than the retention, unknown to the journal, count as forgotten', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'continuum-forgotten-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const files = {
    coordinator: join(root, 'coordinator.sqlite'),
    bank: join(root, 'bank.sqlite'),
    vendor: join(root, 'vendor.sqlite'),
    customer: join(root, 'customer.sqlite'),
  };
  const now = Date.now();
  const purged = ulid(now - retentionMs - 60_000);
  const kept = ulid(now - retentionMs - 30_000);
  const young = ulid(now - 1_000);

  const coordinator = openDatabase(files.coordinator, 'coordinator');
  coordinator
    .prepare(
      `INSERT INTO payments (tx_id, client_id, idempotency_key, fingerprint, state, created_at)
       VALUES (?, 'c', ?, 'f', 'committed', 0)`,
    )
    .run(kept, `key-${kept}`);
  coordinator.close();
  const business: Record<'bank' | 'vendor' | 'customer', string> = {
    bank: `INSERT INTO holds VALUES (?, 'a', 'b', 100, 'EUR', 'captured', 0, 0)`,
    vendor: `INSERT INTO reservations VALUES (?, 'sku', 'v', 1, 'consumed')`,
    customer: `INSERT INTO purchases (tx_id, customer_id, vendor_id, order_id, amount_minor,
      currency, status, receipt, created_at, updated_at)
      VALUES (?, 'c', 'v', 'o', 100, 'EUR', 'completed', 'r', 0, 0)`,
  };
  for (const [name, sql] of Object.entries(business) as [
    'bank' | 'vendor' | 'customer',
    string,
  ][]) {
    const db = openDatabase(files[name], name);
    db.pragma('foreign_keys = OFF');
    for (const txId of [purged, kept, young]) db.prepare(sql).run(txId);
    db.close();
  }

  t.deepEqual([...forgottenTransactions(files, retentionMs)], [purged]);
  // With a retention longer than the payments' age nothing may have been purged.
  t.deepEqual([...forgottenTransactions(files, 3_600_000)], []);
});
