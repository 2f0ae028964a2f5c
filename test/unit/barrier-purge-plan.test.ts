/**
 * The barrier purge (participants/service.ts) finds finished transactions through the
 * `barrier_finished` index in every participant's database. It runs every purge interval while
 * the participant serves, so a full scan of the barrier table would block the participant for as
 * long as the table is large: a quarter of a second at a few million rows, found in the
 * benchmark's open loop.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../common/sqlite.ts';
import { participantNames } from '../../common/protocol.ts';
import { finishedBeforeSql } from '../../participants/service.ts';

for (const name of participantNames) {
  test(`the ${name} purge searches the barrier_finished index, never scans the table`, (t) => {
    const directory = mkdtempSync(join(tmpdir(), 'continuum-purge-plan-'));
    t.teardown(() => rmSync(directory, { recursive: true, force: true }));
    const db = openDatabase(join(directory, `${name}.db`), name);
    t.teardown(() => db.close());
    const plan = db
      .prepare(`EXPLAIN QUERY PLAN ${finishedBeforeSql}`)
      .all(Date.now())
      .map((row) => (row as { detail: string }).detail);
    t.true(
      plan.some((step) => step.startsWith('SEARCH barrier USING INDEX barrier_finished')),
      plan.join('; '),
    );
    t.false(
      plan.some((step) => step.startsWith('SCAN barrier')),
      plan.join('; '),
    );
  });
}
