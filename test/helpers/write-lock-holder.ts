/**
 * Another process that writes to a SQLite file while a test acts on it: it runs `before` on its
 * own, then `BEGIN IMMEDIATE`, runs `locked`, says so, keeps the write lock for `holdMs` and
 * commits. The test acts once `locked` resolves, so whatever it writes meets a writer that commits
 * while it waits, as a second coordinator on the same journal does.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { projectRoot } from '../../ops/service-process.ts';

export interface WriteLockHolder {
  /** The other process holds the write lock now. */
  readonly locked: Promise<void>;
  /** Its exit code, once it has committed and exited. */
  readonly exited: Promise<number | null>;
}

export function holdWriteLock(
  file: string,
  statements: { readonly before?: readonly string[]; readonly locked: readonly string[] },
  holdMs: number,
): WriteLockHolder {
  const script = `
    const Database = require('better-sqlite3');
    const db = new Database(${JSON.stringify(file)});
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 5000');
    for (const sql of ${JSON.stringify(statements.before ?? [])}) db.exec(sql);
    db.exec('BEGIN IMMEDIATE');
    for (const sql of ${JSON.stringify(statements.locked)}) db.exec(sql);
    process.stdout.write('locked\\n');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${holdMs});
    db.exec('COMMIT');
    db.close();`;
  const child = spawn(process.execPath, ['-e', script], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return {
    locked: once(child.stdout, 'data').then(() => undefined),
    exited: once(child, 'exit').then(([code]) => code as number | null),
  };
}
