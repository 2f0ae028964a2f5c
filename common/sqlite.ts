/**
 * Opening a SQLite database the one way this project allows: pragmas set explicitly on every
 * connection, then the numbered migrations of `migrations/<database>/` applied in order.
 *
 * `synchronous=FULL` matters: in WAL mode, NORMAL may lose committed transactions on power loss,
 * and better-sqlite3 reopens an existing WAL database at NORMAL unless told otherwise. A process
 * crash loses nothing either way, so no kill -9 test can catch the wrong setting; the pragma test
 * reads it back instead.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { MigrationError } from './errors.ts';

export type SqliteDatabase = Database.Database;

export const migrationsRoot = fileURLToPath(new URL('../migrations/', import.meta.url));

export const databaseNames = ['coordinator', 'bank', 'vendor', 'customer'] as const;
export type DatabaseName = (typeof databaseNames)[number];

/** Opens (creating if needed) a database, sets its pragmas and brings its schema up to date. */
export function openDatabase(file: string, name: DatabaseName): SqliteDatabase {
  mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file);
  try {
    setPragmas(db);
    migrate(db, name);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * How long a write waits for another process (a standby coordinator, an inspector) to give the
 * write lock back before it fails with SQLITE_BUSY. A coordinator that holds a lease waits less
 * once its database is open (coordinator/core/lease-timing.ts); opening, with its migrations and
 * any WAL recovery after a crash, always waits this long.
 */
export const busyTimeoutMs = 5_000;

/**
 * Whether a statement failed because another process kept the write lock past the busy timeout
 * (or, in a deferred transaction, held it when a read tried to become a write, which SQLite
 * refuses at once). Nothing of the failed transaction was written.
 */
export function isBusyError(error: unknown): error is InstanceType<typeof Database.SqliteError> {
  return error instanceof Database.SqliteError && error.code.startsWith('SQLITE_BUSY');
}

/**
 * The most memory one connection's page cache may hold, in KiB (SQLite's `cache_size` takes a
 * negative number as KiB). It is most of a participant's C heap once warm (docs/performance.md,
 * "Memory over ten minutes"), so it is set here rather than left to the build: better-sqlite3
 * happens to compile in the same 16,000 KiB, SQLite itself 2,000.
 */
export const pageCacheKib = 16_000;

export function setPragmas(db: SqliteDatabase): void {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma(`busy_timeout = ${busyTimeoutMs}`);
  db.pragma(`cache_size = -${pageCacheKib}`);
}

interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

const migrationFilePattern = /^(\d{4})-([a-z0-9-]+)\.sql$/;

export function loadMigrations(name: DatabaseName): Migration[] {
  const directory = join(migrationsRoot, name);
  const migrations = readdirSync(directory)
    .filter((file) => file.endsWith('.sql'))
    .map((file) => {
      const match = migrationFilePattern.exec(file);
      if (!match?.[1] || !match[2]) {
        throw new MigrationError(`${join(directory, file)}: name must be NNNN-name.sql`);
      }
      const sql = readFileSync(join(directory, file), 'utf8');
      return { version: Number(match[1]), name: match[2], sql };
    })
    .sort((a, b) => a.version - b.version);
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new MigrationError(`${directory}: migration ${index + 1} is missing`);
    }
  });
  return migrations;
}

/**
 * Applies the migrations the database has not seen, each in its own transaction. Two processes
 * may open one file at once (two coordinators on a fresh journal): each migration takes the write
 * lock first (IMMEDIATE) and reads the version under it, so the second process waits for the
 * first and then finds the migration applied, instead of applying it again and failing.
 */
export function migrate(db: SqliteDatabase, name: DatabaseName): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL
  ) STRICT`);
  const migrations = loadMigrations(name);
  const version = db.prepare('SELECT max(version) AS version FROM schema_migrations').pluck();
  const current = (): number => (version.get() as number | null) ?? 0;
  if (current() > migrations.length) {
    throw new MigrationError(
      `${db.name} has schema version ${current()} but this code knows only ` +
        `${migrations.length} ${name} migrations: it was written by a newer version; ` +
        `refusing to start`,
    );
  }
  const record = db.prepare(
    'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
  );
  const apply = db.transaction((migration: Migration) => {
    if (current() >= migration.version) return;
    db.exec(migration.sql);
    record.run(migration.version, migration.name, Date.now());
  });
  for (const migration of migrations.slice(current())) apply.immediate(migration);
}

/**
 * Batches with fewer inputs read without a snapshot: a transaction's BEGIN and COMMIT would cost
 * about what it saves, and at one client most batches hold one or two inputs.
 */
export const snapshotInputsMin = 8;

/** Runs a batch's reads, in one snapshot when the batch is large enough (batchReader). */
export type BatchReader = <T>(batchSize: number, read: () => T) => T;

/**
 * Runs the reads of a batch of `batchSize` inputs in one deferred transaction: its statements
 * share one snapshot and one read lock, where each would otherwise begin and end a read
 * transaction of its own (two `fcntl` calls on the WAL index and a read of its header, about
 * 1 µs a statement). Made once per connection, since better-sqlite3 builds wrapper functions on
 * every `transaction()` call.
 */
export function batchReader(db: SqliteDatabase): BatchReader {
  const inTransaction = db.transaction((read: () => unknown) => read());
  return <T>(batchSize: number, read: () => T): T =>
    batchSize < snapshotInputsMin ? read() : (inTransaction(read) as T);
}

/**
 * Prepares a set of statements once per database connection and hands the same set back on every
 * later call: business rules run thousands of times a second and must not re-prepare.
 */
export function statementCache<Statements>(
  prepare: (db: SqliteDatabase) => Statements,
): (db: SqliteDatabase) => Statements {
  const byDatabase = new WeakMap<SqliteDatabase, Statements>();
  return (db) => {
    let statements = byDatabase.get(db);
    if (statements === undefined) {
      statements = prepare(db);
      byDatabase.set(db, statements);
    }
    return statements;
  };
}
