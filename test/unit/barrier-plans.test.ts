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
 * And the migration that added `decided_at` marks the YES votes already decided, so an upgraded
 * participant finds in doubt exactly what was in doubt.
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
      t.true(
        plan.some(
          (step) =>
            step.startsWith(`SEARCH barrier USING INDEX ${index}`) ||
            step.startsWith(`SCAN barrier USING INDEX ${index}`),
        ),
        plan.join('; '),
      );
      t.false(plan.includes('SCAN barrier'), plan.join('; '));
    });
  }

  test(`the ${name} migration to decided_at leaves in doubt exactly the undecided YES votes`, (t) => {
    const file = join(tempDirectory(t), `${name}.db`);
    // The database as the previous version left it: every migration but the last.
    const old = new Database(file);
    setPragmas(old);
    old.exec(
      'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT',
    );
    const migrations = loadMigrations(name);
    t.is(migrations.at(-1)?.name, 'barrier-in-doubt');
    for (const migration of migrations.slice(0, -1)) {
      old.exec(migration.sql);
      old
        .prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)')
        .run(migration.version, migration.name, 0);
    }
    const row = old.prepare(
      'INSERT INTO barrier (tx_id, phase, outcome, reason, payment, created_at) VALUES (?, ?, ?, NULL, NULL, ?)',
    );
    const rows: [string, string, string][] = [
      ['tx-committed', 'prepare', 'yes'],
      ['tx-committed', 'commit', 'done'],
      ['tx-aborted', 'prepare', 'yes'],
      ['tx-aborted', 'abort', 'done'],
      ['tx-in-doubt', 'prepare', 'yes'],
      ['tx-voted-no', 'prepare', 'no'],
      ['tx-tombstone', 'prepare', 'tombstone'],
      ['tx-tombstone', 'abort', 'done'],
    ];
    rows.forEach(([txId, phase, outcome], index) => row.run(txId, phase, outcome, 1_000 + index));
    old.close();
    const db = openDatabase(file, name);
    t.teardown(() => db.close());
    t.deepEqual(db.prepare(inDoubtSql).pluck().all(), ['tx-in-doubt']);
    const decidedAt = db
      .prepare("SELECT tx_id, decided_at FROM barrier WHERE phase = 'prepare' ORDER BY tx_id")
      .all();
    t.deepEqual(decidedAt, [
      { tx_id: 'tx-aborted', decided_at: 1_003 },
      { tx_id: 'tx-committed', decided_at: 1_001 },
      { tx_id: 'tx-in-doubt', decided_at: null },
      { tx_id: 'tx-tombstone', decided_at: null },
      { tx_id: 'tx-voted-no', decided_at: null },
    ]);
  });
}
