/**
 * The one way this project opens SQLite: pragmas read back from a reopened file (a crash test
 * cannot tell synchronous=NORMAL from FULL, so only reading the setting back can), and migrations
 * applied once, idempotent on reopen, and refused when the file is newer than the code.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import Database from 'better-sqlite3';
import { MigrationError } from '../../common/errors.ts';
import {
  batchReader,
  databaseNames,
  loadMigrations,
  migrationsRoot,
  openDatabase,
  pageCacheKib,
  setPragmas,
  snapshotInputsMin,
  type DatabaseName,
} from '../../common/sqlite.ts';
import { holdWriteLock } from '../helpers/write-lock-holder.ts';

/** `synchronous` as SQLite reports it: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA. */
const synchronousFull = 2;

function tempFile(t: ExecutionContext, name: DatabaseName): string {
  const directory = mkdtempSync(join(tmpdir(), 'continuum-sqlite-'));
  t.teardown(() => {
    rmSync(directory, { recursive: true, force: true });
  });
  return join(directory, `${name}.sqlite`);
}

/** The migration files on disk, counted independently of loadMigrations. */
function migrationFiles(name: DatabaseName): string[] {
  return readdirSync(join(migrationsRoot, name))
    .filter((file) => file.endsWith('.sql'))
    .sort();
}

interface MigrationRow {
  readonly version: number;
  readonly name: string;
  readonly applied_at: number;
}

function appliedMigrations(db: Database.Database): MigrationRow[] {
  return db
    .prepare('SELECT version, name, applied_at FROM schema_migrations ORDER BY version')
    .all() as MigrationRow[];
}

test('setPragmas sets the page cache size, whatever the connection had', (t) => {
  const db = new Database(':memory:');
  try {
    // Not persistent, and not stored in the file: a connection has the build's default until told.
    db.pragma('cache_size = -1');
    setPragmas(db);
    t.is(db.pragma('cache_size', { simple: true }), -pageCacheKib);
  } finally {
    db.close();
  }
});

for (const name of databaseNames) {
  test(`${name}: a reopened database runs in WAL mode with synchronous=FULL`, (t) => {
    const file = tempFile(t, name);
    openDatabase(file, name).close();
    const reopened = openDatabase(file, name);
    try {
      t.is(reopened.pragma('journal_mode', { simple: true }), 'wal');
      t.is(reopened.pragma('synchronous', { simple: true }), synchronousFull);
      t.is(reopened.pragma('foreign_keys', { simple: true }), 1);
      t.is(reopened.pragma('busy_timeout', { simple: true }), 5000);
    } finally {
      reopened.close();
    }
    // For contrast only: what a bare connection to the same WAL file reports. The journal mode
    // is stored in the file; synchronous is not, and better-sqlite3's default may differ.
    const bare = new Database(file);
    try {
      const journalMode: unknown = bare.pragma('journal_mode', { simple: true });
      const synchronous: unknown = bare.pragma('synchronous', { simple: true });
      t.log(`a bare connection reports journal_mode=${String(journalMode)}`);
      t.log(`a bare connection reports synchronous=${String(synchronous)}`);
    } finally {
      bare.close();
    }
  });

  test(`${name}: migrations are applied once and reopening changes nothing`, (t) => {
    const file = tempFile(t, name);
    const files = migrationFiles(name);
    t.true(files.length > 0, `migrations/${name} has migration files`);
    t.is(loadMigrations(name).length, files.length);
    const first = openDatabase(file, name);
    let applied: MigrationRow[];
    try {
      applied = appliedMigrations(first);
      t.deepEqual(
        applied.map((row) => row.version),
        files.map((_, index) => index + 1),
      );
      t.deepEqual(
        applied.map((row) => `${String(row.version).padStart(4, '0')}-${row.name}.sql`),
        files,
      );
      const tables = new Set(
        (
          first.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as {
            name: string;
          }[]
        ).map((row) => row.name),
      );
      for (const migration of files) {
        const sql = readFileSync(join(migrationsRoot, name, migration), 'utf8');
        for (const [, table] of sql.matchAll(/CREATE TABLE (?:IF NOT EXISTS )?(\w+)/g)) {
          t.true(tables.has(table ?? ''), `${migration} created table ${String(table)}`);
        }
      }
    } finally {
      first.close();
    }
    const second = openDatabase(file, name);
    try {
      t.deepEqual(appliedMigrations(second), applied, 'reopening applies nothing again');
    } finally {
      second.close();
    }
  });

  test(`${name}: a database written by newer code is refused`, (t) => {
    const file = tempFile(t, name);
    openDatabase(file, name).close();
    const newerVersion = migrationFiles(name).length + 1;
    const writer = new Database(file);
    try {
      writer
        .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
        .run(newerVersion, 'from-the-future', 0);
    } finally {
      writer.close();
    }
    const error = t.throws(() => openDatabase(file, name), { instanceOf: MigrationError });
    t.is(error.name, 'MigrationError');
    t.regex(error.message, /newer/);
    t.true(error.message.includes(`schema version ${newerVersion}`), error.message);
    // The refusal changed nothing: the file still says what the newer code wrote.
    const reader = new Database(file, { readonly: true });
    try {
      t.is(appliedMigrations(reader).length, newerVersion);
    } finally {
      reader.close();
    }
  });
}

test("customer migration 3 sets each customer's pending total from its pending purchases", (t) => {
  const file = tempFile(t, 'customer');
  // A customer database as version 2 left it, with purchases in every state.
  const old = new Database(file);
  old.exec(`CREATE TABLE schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`);
  for (const migration of loadMigrations('customer').slice(0, 2)) {
    old.exec(migration.sql);
    old
      .prepare('INSERT INTO schema_migrations VALUES (?, ?, 0)')
      .run(migration.version, migration.name);
  }
  old.exec(`
    INSERT INTO customers (customer_id, name, status, currency, spending_limit_minor)
      VALUES ('alice', 'Alice', 'active', 'EUR', 100000), ('bob', 'Bob', 'active', 'EUR', 100000);
    INSERT INTO purchases VALUES
      ('tx1', 'alice', 'acme', 'o1', 300, 'EUR', 'pending', NULL, 0, 0),
      ('tx2', 'alice', 'acme', 'o2', 200, 'EUR', 'pending', NULL, 0, 0),
      ('tx3', 'alice', 'acme', 'o3', 900, 'EUR', 'completed', 'rcpt-tx3', 0, 0),
      ('tx4', 'alice', 'acme', 'o4', 700, 'EUR', 'cancelled', NULL, 0, 0);`);
  old.close();
  const db = openDatabase(file, 'customer');
  t.teardown(() => db.close());
  const totals = db
    .prepare('SELECT customer_id, pending_minor FROM customers ORDER BY customer_id')
    .all();
  t.deepEqual(totals, [
    { customer_id: 'alice', pending_minor: 500 },
    { customer_id: 'bob', pending_minor: 0 },
  ]);
});

/**
 * Two coordinators may open a fresh journal at once. Here another process has created the
 * migrations' table and is applying every migration, holding the write lock, when this process
 * reads the schema version (still 0). Reading it again under the write lock, this process waits
 * and then applies nothing; reading it only before, it applied migration 1 again and failed on
 * "table journal already exists".
 */
test('a database another process is migrating at the same moment is migrated once', async (t) => {
  const file = tempFile(t, 'coordinator');
  const files = migrationFiles('coordinator');
  const holder = holdWriteLock(
    file,
    {
      before: [
        `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
         applied_at INTEGER NOT NULL) STRICT`,
      ],
      locked: files.flatMap((name, index) => [
        readFileSync(join(migrationsRoot, 'coordinator', name), 'utf8'),
        `INSERT INTO schema_migrations VALUES (${index + 1}, '${name.slice(5, -4)}', 0)`,
      ]),
    },
    300,
  );
  await holder.locked;
  const db = openDatabase(file, 'coordinator');
  try {
    t.deepEqual(
      appliedMigrations(db).map((row) => row.version),
      files.map((_, index) => index + 1),
    );
  } finally {
    db.close();
  }
  t.is(await holder.exited, 0);
});

test("a large batch's reads share one snapshot, which ends with them; a small batch's do not", (t) => {
  const file = tempFile(t, 'bank');
  const db = openDatabase(file, 'bank');
  const other = new Database(file);
  t.teardown(() => {
    db.close();
    other.close();
  });
  db.exec('CREATE TABLE probe (n INTEGER NOT NULL) STRICT; INSERT INTO probe VALUES (1)');
  const count = db.prepare('SELECT count(*) FROM probe').pluck();
  const insert = other.prepare('INSERT INTO probe VALUES (2)');
  const reading = batchReader(db);
  // Another connection commits between two reads of the batch.
  const readTwice = (): unknown[] => {
    const before = count.get();
    insert.run();
    return [before, count.get(), db.inTransaction];
  };

  t.deepEqual(reading(snapshotInputsMin, readTwice), [1, 1, true], 'one snapshot');
  t.false(db.inTransaction);
  t.is(count.get(), 2, "the next read sees the other connection's row");
  t.deepEqual(reading(snapshotInputsMin - 1, readTwice), [2, 3, false], 'a read transaction each');

  const failure = new Error('lookup failed');
  t.is(
    t.throws(() =>
      reading(snapshotInputsMin, () => {
        count.get();
        throw failure;
      }),
    ),
    failure,
  );
  t.false(db.inTransaction, 'a throw ends the read transaction too');
});
