/**
 * The barrier's two queries that would otherwise read every transaction the retention keeps use
 * their partial indexes in every participant's database (participants/service.ts):
 *
 * - the purge, every purge interval while the participant serves: a full scan blocked the
 *   participant for a quarter of a second at a few million rows (found in the benchmark's open
 *   loop);
 * - the search for YES votes in doubt when a participant starts: a full scan made every start
 *   proportional to the retention.
 *
 * And the migrations that changed the barrier's layout (`decided_at` on the prepare row, then one row
 * per transaction) keep every transaction's vote, decision and times, so an upgraded participant
 * finds in doubt exactly what was in doubt and forgets what was finished, no earlier.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { loadMigrations, openDatabase, setPragmas } from '../../common/sqlite.ts';
import { ulidTimePrefix } from '../../common/ids.ts';
import { participantNames } from '../../common/protocol.ts';
import { finishedBeforeSql, inDoubtSql } from '../../participants/service.ts';

function tempDirectory(t: ExecutionContext): string {
  const directory = mkdtempSync(join(tmpdir(), 'continuum-barrier-plans-'));
  t.teardown(() => rmSync(directory, { recursive: true, force: true }));
  return directory;
}

const plans = [
  { query: 'purge', sql: finishedBeforeSql, index: 'barrier_finished' },
  { query: 'in-doubt search', sql: inDoubtSql, index: 'barrier_in_doubt' },
] as const;

for (const name of participantNames) {
  for (const { query, sql, index } of plans) {
    test(`the ${name} ${query} searches the ${index} index, never scans the table`, (t) => {
      const db = openDatabase(join(tempDirectory(t), `${name}.db`), name);
      t.teardown(() => db.close());
      const parameters = query === 'purge' ? [Date.now(), ulidTimePrefix(Date.now())] : [];
      const plan = db
        .prepare(`EXPLAIN QUERY PLAN ${sql}`)
        .all(...parameters)
        .map((row) => (row as { detail: string }).detail);
      const usesIndex = new RegExp(`^(SEARCH|SCAN) barrier USING (COVERING )?INDEX ${index}\\b`);
      t.true(
        plan.some((step) => usesIndex.test(step)),
        plan.join('; '),
      );
      t.false(plan.includes('SCAN barrier'), plan.join('; '));
    });
  }

  // Databases the two earlier layouts left: one row per phase, before and after `decided_at`.
  for (const before of ['barrier-in-doubt', 'barrier-one-row']) {
    test(`the ${name} migrations from before ${before} keep every transaction's vote, decision and time`, (t) => {
      const file = join(tempDirectory(t), `${name}.db`);
      const old = new Database(file);
      setPragmas(old);
      old.exec(
        'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT',
      );
      const migrations = loadMigrations(name);
      const next = migrations.findIndex((migration) => migration.name === before);
      t.true(next > 0, `${name} has a ${before} migration`);
      for (const migration of migrations.slice(0, next)) {
        old.exec(migration.sql);
        old
          .prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)')
          .run(migration.version, migration.name, 0);
      }
      const row = old.prepare(
        'INSERT INTO barrier (tx_id, phase, outcome, reason, payment, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      );
      const rows: [string, string, string, string | null][] = [
        ['tx-committed', 'prepare', 'yes', null],
        ['tx-committed', 'commit', 'done', null],
        ['tx-aborted', 'prepare', 'yes', null],
        ['tx-aborted', 'abort', 'done', null],
        ['tx-in-doubt', 'prepare', 'yes', null],
        ['tx-voted-no', 'prepare', 'no', 'insufficient funds'],
        // An ABORT the coordinator sent anyway: the NO vote finished the transaction first.
        ['tx-voted-no', 'abort', 'done', null],
        ['tx-tombstone', 'prepare', 'tombstone', null],
        ['tx-tombstone', 'abort', 'done', null],
      ];
      rows.forEach(([txId, phase, outcome, reason], index) => {
        const payment = phase === 'prepare' && outcome !== 'tombstone' ? `{"tx":"${txId}"}` : null;
        row.run(txId, phase, outcome, reason, payment, 1_000 + index);
      });
      if (before === 'barrier-one-row') {
        // As migration barrier-in-doubt and the code after it left them.
        old.exec(`UPDATE barrier SET decided_at = 1001 WHERE tx_id = 'tx-committed' AND phase = 'prepare';
          UPDATE barrier SET decided_at = 1003 WHERE tx_id = 'tx-aborted' AND phase = 'prepare'`);
      }
      old.close();
      const db = openDatabase(file, name);
      t.teardown(() => db.close());
      t.deepEqual(db.prepare(inDoubtSql).pluck().all(), ['tx-in-doubt']);
      const converted = db
        .prepare(
          'SELECT tx_id, vote, reason, payment, decision, created_at, decided_at FROM barrier ORDER BY tx_id',
        )
        .all();
      const expected = (
        txId: string,
        vote: string,
        decision: string | null,
        createdAt: number,
        decidedAt: number | null,
        reason: string | null = null,
      ) => ({
        tx_id: txId,
        vote,
        reason,
        payment: vote === 'tombstone' ? null : `{"tx":"${txId}"}`,
        decision,
        created_at: createdAt,
        decided_at: decidedAt,
      });
      t.deepEqual(converted, [
        expected('tx-aborted', 'yes', 'abort', 1_002, 1_003),
        expected('tx-committed', 'yes', 'commit', 1_000, 1_001),
        expected('tx-in-doubt', 'yes', null, 1_004, null),
        expected('tx-tombstone', 'tombstone', 'abort', 1_007, 1_008),
        expected('tx-voted-no', 'no', 'abort', 1_005, 1_005, 'insufficient funds'),
      ]);
      // The purge finds what finished before its cutoff, oldest first: here all but the one in doubt.
      const finished = db.prepare(finishedBeforeSql).pluck().all(1_006, 'tx-zzz');
      t.deepEqual(finished, ['tx-committed', 'tx-aborted', 'tx-voted-no']);
    });
  }
}
