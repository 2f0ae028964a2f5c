/**
 * The coordinator's SQLite journal against real files: records appended in batches and read back,
 * the idempotency claim (a second begin for a client's key writes nothing at all), and the
 * refusal to start from a journal that correct code cannot have written, naming the file and the
 * record. Corruption is written with raw SQL through a second connection, as a disk or an
 * operator would leave it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import Database from 'better-sqlite3';
import { FencedError, JournalBusyError, JournalCorruptError } from '../../common/errors.ts';
import { paymentFingerprint } from '../../common/protocol.ts';
import { busyTimeoutMs, setPragmas, type SqliteDatabase } from '../../common/sqlite.ts';
import { SqliteJournal } from '../../coordinator/adapters/sqlite-journal.ts';
import { leaseBusyWaitMs } from '../../coordinator/core/lease-timing.ts';
import type { JournalRecord } from '../../coordinator/core/types.ts';
import { paymentFor } from '../../participants/seed.ts';
import { beginRecord, type Begin } from '../helpers/journal-records.ts';
import { holdWriteLock } from '../helpers/write-lock-holder.ts';

const clientId = 'journal-test';
const payment = paymentFor('order-1001');
const createdAt = 1_700_000_000_000;
/** Long enough that no key in these tests expires; retention has tests of its own. */
const retentionMs = 24 * 60 * 60 * 1_000;
/** When the lookups happen: after every record here was written. */
const lookupAt = createdAt + 1_000;

/** Transaction ids: 26 characters of Crockford base 32, as the coordinator's ULIDs are. */
const txA = '01HZX3V2M8Q4J7K9N0P5R6S7T8';
const txB = '01HZX3V2M8Q4J7K9N0P5R6S7T9';
const txC = '01HZX3V2M8Q4J7K9N0P5R6S7TA';
const txD = '01HZX3V2M8Q4J7K9N0P5R6S7TB';

type Decided = Extract<JournalRecord, { kind: 'decided' }>;
type Completed = Extract<JournalRecord, { kind: 'completed' }>;

function begin(txId: string, idempotencyKey: string, client = clientId): Begin {
  return beginRecord(txId, idempotencyKey, { clientId: client, createdAt });
}

function committed(txId: string): Decided {
  return { kind: 'decided', txId, decision: 'commit', decidedAt: createdAt + 10 };
}

function aborted(txId: string): Decided {
  return {
    kind: 'decided',
    txId,
    decision: 'abort',
    abortedBy: 'bank',
    reason: 'insufficient funds: available 100 < 2500',
    decidedAt: createdAt + 20,
  };
}

function completed(txId: string): Completed {
  return { kind: 'completed', txId, completedAt: createdAt + 30 };
}

interface Fixture {
  readonly file: string;
  readonly journal: SqliteJournal;
  /** A second connection to the same file, for raw reads and for writing corruption. */
  readonly raw: SqliteDatabase;
}

function openFixture(t: ExecutionContext): Fixture {
  const directory = mkdtempSync(join(tmpdir(), 'continuum-journal-'));
  const file = join(directory, 'coordinator.sqlite');
  const journal = new SqliteJournal(file, retentionMs);
  const raw = new Database(file);
  setPragmas(raw);
  t.teardown(() => {
    raw.close();
    journal.close();
    rmSync(directory, { recursive: true, force: true });
  });
  return { file, journal, raw };
}

function countRows(raw: SqliteDatabase, table: 'journal' | 'payments'): number {
  return (raw.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
}

/** Inserts a journal row as-is and returns its seq. */
function insertRow(raw: SqliteDatabase, txId: string, kind: string, body: string): number {
  const result = raw
    .prepare('INSERT INTO journal (tx_id, kind, body, written_at) VALUES (?, ?, ?, ?)')
    .run(txId, kind, body, createdAt);
  return Number(result.lastInsertRowid);
}

/**
 * The state of each unfinished transaction as recovery rebuilds it from the records alone (the
 * coordinator folds the same records through its machine before it calls checkIndex).
 */
function recoveredStates(
  journal: SqliteJournal,
): Map<string, 'preparing' | 'committed' | 'aborted'> {
  const states = new Map<string, 'preparing' | 'committed' | 'aborted'>();
  for (const record of journal.unfinishedRecords()) {
    if (record.kind === 'begin') states.set(record.txId, 'preparing');
    else if (record.kind === 'decided') {
      states.set(record.txId, record.decision === 'commit' ? 'committed' : 'aborted');
    } else states.delete(record.txId);
  }
  return states;
}

function assertCorrupt(t: ExecutionContext, fixture: Fixture, seq: number, detail: RegExp): void {
  const error = t.throws(() => fixture.journal.unfinishedRecords(), {
    instanceOf: JournalCorruptError,
  });
  t.is(error.name, 'JournalCorruptError');
  t.is(error.file, fixture.file);
  t.true(error.message.includes(fixture.file), `names the file: ${error.message}`);
  t.true(error.message.includes(`record seq ${seq} `), `names the record: ${error.message}`);
  t.regex(error.message, detail);
}

test('records read back by key, by id and as the unfinished work of recovery', (t) => {
  const { journal } = openFixture(t);
  // A commits and completes, B aborts and awaits acknowledgements, C is still preparing. The
  // batches interleave the transactions, as the coordinator's group commit does.
  journal.append([begin(txA, 'key-a-0000000001'), begin(txB, 'key-b-0000000001')], createdAt);
  journal.append([aborted(txB), committed(txA), begin(txC, 'key-c-0000000001')], createdAt + 1);
  journal.append([completed(txA)], createdAt + 2);
  const fingerprint = paymentFingerprint(payment);
  t.deepEqual(journal.findByKey(clientId, 'key-a-0000000001', lookupAt), {
    txId: txA,
    clientId,
    idempotencyKey: 'key-a-0000000001',
    fingerprint,
    decided: { decision: 'commit' },
  });
  t.deepEqual(journal.findById(txB), {
    txId: txB,
    clientId,
    idempotencyKey: 'key-b-0000000001',
    fingerprint,
    decided: {
      decision: 'abort',
      abortedBy: 'bank',
      reason: 'insufficient funds: available 100 < 2500',
    },
  });
  t.deepEqual(journal.findById(txC), {
    txId: txC,
    clientId,
    idempotencyKey: 'key-c-0000000001',
    fingerprint,
  });
  t.is(journal.findByKey(clientId, 'key-z-0000000001', lookupAt), undefined);
  t.is(journal.findByKey('another-client', 'key-a-0000000001', lookupAt), undefined);
  t.is(journal.findById(txD), undefined);
  // Completed transactions are not replayed; the rest come back exactly, in the order written.
  t.deepEqual(journal.unfinishedRecords(), [
    begin(txB, 'key-b-0000000001'),
    aborted(txB),
    begin(txC, 'key-c-0000000001'),
  ]);
  t.deepEqual(
    journal.history(txA).map((entry) => entry.record),
    [begin(txA, 'key-a-0000000001'), committed(txA), completed(txA)],
  );
  t.notThrows(() => journal.checkIndex(recoveredStates(journal)));
});

test('records survive closing and reopening the journal', (t) => {
  const { file, journal } = openFixture(t);
  journal.append([begin(txA, 'key-a-0000000001'), committed(txA)], createdAt);
  const reopened = new SqliteJournal(file, retentionMs);
  try {
    t.deepEqual(reopened.unfinishedRecords(), [begin(txA, 'key-a-0000000001'), committed(txA)]);
    t.like(reopened.findByKey(clientId, 'key-a-0000000001', lookupAt), { txId: txA });
  } finally {
    reopened.close();
  }
});

test("a second begin for a client's key throws and its whole batch writes nothing", (t) => {
  const { journal, raw } = openFixture(t);
  journal.append([begin(txA, 'key-a-0000000001')], createdAt);
  const rows = { journal: countRows(raw, 'journal'), payments: countRows(raw, 'payments') };
  // D is fine on its own; the batch fails on B, which claims A's key, so D must not stay either.
  const batch = [begin(txD, 'key-d-0000000001'), begin(txB, 'key-a-0000000001')];
  t.throws(() => journal.append(batch, createdAt + 1), {
    any: true,
    code: 'SQLITE_CONSTRAINT_UNIQUE',
  });
  t.is(journal.findById(txD), undefined);
  t.is(journal.findById(txB), undefined);
  t.is(journal.findByKey(clientId, 'key-a-0000000001', lookupAt)?.txId, txA);
  t.deepEqual({ journal: countRows(raw, 'journal'), payments: countRows(raw, 'payments') }, rows);
  t.deepEqual(journal.unfinishedRecords(), [begin(txA, 'key-a-0000000001')]);
  // The claim is per client: another client may use the same key.
  journal.append([begin(txC, 'key-a-0000000001', 'another-client')], createdAt + 2);
  t.is(journal.findByKey('another-client', 'key-a-0000000001', lookupAt)?.txId, txC);
  // Its owner reads back by id too: a client asking by transaction id sees only its own.
  t.is(journal.findById(txC)?.clientId, 'another-client');
  t.is(journal.findById(txA)?.clientId, clientId);
});

test('a second decision for a transaction throws and its batch writes nothing', (t) => {
  const { journal, raw } = openFixture(t);
  journal.append([begin(txA, 'key-a-0000000001'), committed(txA)], createdAt);
  const journalRows = countRows(raw, 'journal');
  const batch = [begin(txB, 'key-b-0000000001'), aborted(txA)];
  t.throws(() => journal.append(batch, createdAt + 1), { message: /not recorded/ });
  t.is(countRows(raw, 'journal'), journalRows);
  t.is(journal.findById(txB), undefined);
  t.deepEqual(journal.findById(txA)?.decided, { decision: 'commit' });
});

test('a record of an unknown kind makes recovery refuse, naming file and seq', (t) => {
  const fixture = openFixture(t);
  fixture.journal.append([begin(txA, 'key-a-0000000001')], createdAt);
  const body = JSON.stringify({ kind: 'rollback', txId: txA, rolledBackAt: createdAt });
  const seq = insertRow(fixture.raw, txA, 'rollback', body);
  assertCorrupt(t, fixture, seq, /unknown record kind "rollback"/);
});

test('a record whose body is not JSON makes recovery refuse, naming file and seq', (t) => {
  const fixture = openFixture(t);
  fixture.journal.append([begin(txA, 'key-a-0000000001')], createdAt);
  const seq = insertRow(fixture.raw, txA, 'decided', '{"kind":"decided","txId":"01HZX3V2M8Q4');
  assertCorrupt(t, fixture, seq, /JSON/);
});

test('a record whose body names another transaction makes recovery refuse', (t) => {
  const fixture = openFixture(t);
  fixture.journal.append([begin(txA, 'key-a-0000000001'), begin(txB, 'key-b-0000000001')], 0);
  // A decision filed under A whose body decides B.
  const seq = insertRow(fixture.raw, txA, 'decided', JSON.stringify(committed(txB)));
  assertCorrupt(t, fixture, seq, /txId: does not match its row/);
});

test('a record whose body and row disagree on the kind makes recovery refuse', (t) => {
  const fixture = openFixture(t);
  fixture.journal.append([begin(txA, 'key-a-0000000001')], createdAt);
  const seq = insertRow(fixture.raw, txA, 'completed', JSON.stringify(committed(txA)));
  // Filed as completed, A would vanish from recovery; the mismatch must be caught first. The
  // index still lists A as unfinished, so recovery reads A's records and refuses this one.
  assertCorrupt(t, fixture, seq, /kind: row says completed/);
  const error = t.throws(() => fixture.journal.history(txA), { instanceOf: JournalCorruptError });
  t.true(error.message.includes(`record seq ${seq} `), error.message);
  t.throws(() => fixture.journal.verify(), {
    instanceOf: JournalCorruptError,
    message: /kind: row says completed/,
  });
});

test('a decision naming a party that does not exist makes recovery refuse', (t) => {
  const fixture = openFixture(t);
  fixture.journal.append([begin(txA, 'key-a-0000000001')], createdAt);
  // Correct code only ever writes bank, vendor, customer or coordinator here. Replayed as it is,
  // the coordinator would put this party into status replies that participants cannot decode.
  const body = JSON.stringify({ ...aborted(txA), abortedBy: 'martian' });
  const seq = insertRow(fixture.raw, txA, 'decided', body);
  assertCorrupt(t, fixture, seq, /abortedBy/);
});

test('checkIndex refuses an index that says committed when the journal has only begin', (t) => {
  const { file, journal, raw } = openFixture(t);
  journal.append([begin(txA, 'key-a-0000000001'), begin(txB, 'key-b-0000000001')], createdAt);
  journal.append([committed(txB)], createdAt + 1);
  t.notThrows(() => journal.checkIndex(recoveredStates(journal)));
  raw.prepare("UPDATE payments SET state = 'committed' WHERE tx_id = ?").run(txA);
  const states = recoveredStates(journal);
  t.is(states.get(txA), 'preparing', 'the journal alone says A is still preparing');
  const error = t.throws(() => journal.checkIndex(states), { instanceOf: JournalCorruptError });
  t.is(error.file, file);
  t.true(error.message.includes(file), error.message);
  t.true(error.message.includes(`transaction ${txA}`), error.message);
  t.regex(error.message, /payments index says committed but the journal says preparing/);
});

test('checkIndex refuses an unfinished payment that has no journal records at all', (t) => {
  const { journal, raw } = openFixture(t);
  journal.append([begin(txA, 'key-a-0000000001')], createdAt);
  raw.prepare('DELETE FROM journal WHERE tx_id = ?').run(txA);
  const error = t.throws(() => journal.checkIndex(recoveredStates(journal)), {
    instanceOf: JournalCorruptError,
  });
  t.regex(
    error.message,
    /payments index says preparing but the journal says no unfinished records/,
  );
});

test('verify refuses journal records of a payment the index does not hold', (t) => {
  const { file, journal, raw } = openFixture(t);
  journal.append([begin(txA, 'key-a-0000000001'), begin(txB, 'key-b-0000000001')], createdAt);
  journal.append([committed(txB), completed(txB)], createdAt + 1);
  t.notThrows(() => journal.verify());
  raw.prepare('DELETE FROM payments WHERE tx_id = ?').run(txA);
  // Recovery finds its work through the index, so it no longer sees A: only verify can tell.
  t.deepEqual(recoveredStates(journal), new Map());
  t.notThrows(() => journal.checkIndex(recoveredStates(journal)));
  const error = t.throws(() => journal.verify(), { instanceOf: JournalCorruptError });
  t.is(error.file, file);
  t.true(error.message.includes(`transaction ${txA}`), error.message);
  t.regex(error.message, /records without completion but the payments index has no unfinished/);
});

test('verify refuses an index that lists as unfinished a payment the journal completed', (t) => {
  const { journal, raw } = openFixture(t);
  journal.append([begin(txA, 'key-a-0000000001')], createdAt);
  journal.append([committed(txA), completed(txA)], createdAt + 1);
  t.notThrows(() => journal.verify());
  raw.prepare('UPDATE payments SET completed_at = NULL WHERE tx_id = ?').run(txA);
  const error = t.throws(() => journal.verify(), { instanceOf: JournalCorruptError });
  t.regex(error.message, /unfinished entry but the journal shows no unfinished records/);
  // Recovery reads A through the index, folds its completion, and checkIndex refuses it too.
  t.throws(() => journal.checkIndex(recoveredStates(journal)), {
    instanceOf: JournalCorruptError,
    message: /payments index says committed but the journal says no unfinished records/,
  });
});

test('verify reads records of completed payments too, which recovery never reads', (t) => {
  const fixture = openFixture(t);
  fixture.journal.append([begin(txA, 'key-a-0000000001')], createdAt);
  fixture.journal.append([committed(txA), completed(txA)], createdAt + 1);
  const seq = insertRow(fixture.raw, txA, 'decided', '{"kind":"decided","txId":"01HZX3V2M8Q4');
  t.deepEqual(fixture.journal.unfinishedRecords(), []);
  const error = t.throws(() => fixture.journal.verify(), { instanceOf: JournalCorruptError });
  t.true(error.message.includes(`record seq ${seq} `), error.message);
});

test('a coordinator whose term is over can write nothing: the epoch fence', (t) => {
  const { file, journal: old, raw } = openFixture(t);
  t.is(old.beginTerm('coordinator-1', createdAt), 1);
  old.append([begin(txA, 'key-a-0000000001')], createdAt);
  // A standby on the same file takes over while the old leader is paused.
  const successor = new SqliteJournal(file, retentionMs);
  t.teardown(() => successor.close());
  t.is(successor.beginTerm('coordinator-2', createdAt + 1), 2);
  const before = countRows(raw, 'journal');
  const error = t.throws(() => old.append([committed(txA)], createdAt + 2), {
    instanceOf: FencedError,
  });
  t.like(error, { epoch: 1, currentEpoch: 2 });
  t.throws(() => old.checkTerm(), { instanceOf: FencedError });
  t.is(countRows(raw, 'journal'), before, 'the old term wrote nothing');
  successor.append([committed(txA)], createdAt + 3);
  const epochs = raw.prepare('SELECT kind, epoch FROM journal ORDER BY seq').all();
  t.deepEqual(epochs, [
    { kind: 'begin', epoch: 1 },
    { kind: 'decided', epoch: 2 },
  ]);
});

test('a coordinator whose term is over purges nothing either', (t) => {
  const { file, journal: old, raw } = openFixture(t);
  t.is(old.beginTerm('coordinator-1', createdAt), 1);
  old.append([begin(txA, 'key-a-0000000001'), committed(txA), completed(txA)], createdAt);
  const successor = new SqliteJournal(file, retentionMs);
  t.teardown(() => successor.close());
  t.is(successor.beginTerm('coordinator-2', createdAt + 1), 2);
  const afterRetention = createdAt + retentionMs + 1_000;
  const before = countRows(raw, 'journal');
  t.throws(() => old.purge(afterRetention), { instanceOf: FencedError });
  t.is(countRows(raw, 'journal'), before, 'the old term purged nothing');
  t.is(successor.purge(afterRetention), 1, 'the current term purges the expired payment');
});

test('a key reused after its retention period takes its old payment and records with it', (t) => {
  const { journal, raw } = openFixture(t);
  journal.append([begin(txA, 'key-a-0000000001'), committed(txA), completed(txA)], createdAt);
  journal.append([begin(txB, 'key-b-0000000001'), committed(txB), completed(txB)], createdAt);
  const afterRetention = createdAt + 30 + retentionMs + 1;
  journal.append(
    [{ ...begin(txC, 'key-a-0000000001'), createdAt: afterRetention }],
    afterRetention,
  );
  const txIds = (table: 'journal' | 'payments'): unknown[] =>
    raw.prepare(`SELECT DISTINCT tx_id FROM ${table} ORDER BY tx_id`).pluck().all();
  t.deepEqual(txIds('payments'), [txB, txC], 'the old payment gave way to the new one');
  t.deepEqual(txIds('journal'), [txB, txC], 'and no record of the old one is left behind');
});

test('a key still within its retention period is never taken over', (t) => {
  const { journal, raw } = openFixture(t);
  journal.append([begin(txA, 'key-a-0000000001'), committed(txA), completed(txA)], createdAt);
  const withinRetention = createdAt + 30 + retentionMs - 1;
  const error = t.throws(
    () =>
      journal.append(
        [{ ...begin(txC, 'key-a-0000000001'), createdAt: withinRetention }],
        withinRetention,
      ),
    { any: true },
  );
  t.regex(String(error), /UNIQUE/);
  const rows = raw.prepare('SELECT tx_id, state FROM payments').all();
  t.deepEqual(rows, [{ tx_id: txA, state: 'committed' }], 'the old payment stays');
  t.deepEqual(
    raw.prepare('SELECT DISTINCT tx_id FROM journal').pluck().all(),
    [txA],
    'and the failed batch left no record',
  );
});

/**
 * Two coordinators share the journal's file. A purge that read its expired payments and then
 * waited for the other's write lock would find its snapshot stale once the other committed, and
 * SQLite answers that at once with SQLITE_BUSY ("database is locked", no busy wait): the purge
 * timer then threw and stopped the coordinator (a chaos run with a short key retention found it).
 * The purge takes the write lock first, so it waits for the other writer and then reads.
 */
test('a purge waits for another process that holds the write lock and commits meanwhile', async (t) => {
  const { file, journal } = openFixture(t);
  journal.append([begin(txA, 'purge-wait-key-0001'), committed(txA), completed(txA)], createdAt);
  const holdMs = 300;
  const holder = holdWriteLock(
    file,
    { locked: ['UPDATE leadership SET since = since + 1 WHERE id = 1'] },
    holdMs,
  );
  await holder.locked;
  const startedAt = Date.now();
  t.is(journal.purge(createdAt + retentionMs + 1_000), 1, 'the expired payment is purged');
  t.true(Date.now() - startedAt >= holdMs / 2, 'the purge waited for the other writer');
  t.is(await holder.exited, 0);
});

/**
 * Past the busy timeout (5 s) a write gives up: a typed error the coordinator ends its term on,
 * and nothing written. Every write of the journal: the term's start, an append, the purge.
 * Serial (ava runs serial tests first, alone): the writes block this worker's event loop for 15 s,
 * which would stall the other tests' own lock holders.
 */
test.serial(
  'a write that another process keeps waiting past the busy timeout fails with JournalBusyError',
  async (t) => {
    const { file, journal } = openFixture(t);
    journal.beginTerm('coordinator-1', createdAt);
    journal.append([begin(txA, 'busy-wait-key-00001'), committed(txA), completed(txA)], createdAt);
    const holder = holdWriteLock(file, { locked: [] }, 16_500);
    await holder.locked;
    const startedAt = Date.now();
    t.throws(() => journal.append([begin(txB, 'busy-wait-key-00002')], createdAt), {
      instanceOf: JournalBusyError,
    });
    t.true(Date.now() - startedAt >= 4_500, 'it waited for the busy timeout first');
    t.throws(() => journal.beginTerm('coordinator-2', createdAt), { instanceOf: JournalBusyError });
    t.throws(() => journal.purge(createdAt + retentionMs + 1_000), {
      instanceOf: JournalBusyError,
    });
    t.is(await holder.exited, 0);
    t.is(journal.findById(txB), undefined, 'the failed append wrote nothing');
    t.is(journal.findById(txA)?.txId, txA, 'and the failed purge purged nothing');
    t.is(journal.beginTerm('coordinator-2', createdAt), 2, 'nor did the failed term start count');
  },
);

/**
 * A coordinator that holds a lease waits only half the lease's TTL for the lock
 * (coordinator/core/lease-timing.ts), so that it gives the lease back before losing it mid-wait.
 * Serial, like the test above: the write blocks this worker's event loop while it waits, which
 * would let the purge test's lock holder finish before its purge began.
 */
test.serial(
  'a journal opened with a shorter busy wait gives up after it, not after 5 s',
  async (t) => {
    const directory = mkdtempSync(join(tmpdir(), 'continuum-journal-'));
    const file = join(directory, 'coordinator.sqlite');
    const busyWaitMs = leaseBusyWaitMs(600, busyTimeoutMs);
    t.is(busyWaitMs, 300, 'half of the default TTL');
    t.is(
      leaseBusyWaitMs(60_000, busyTimeoutMs),
      busyTimeoutMs,
      'never longer than without a lease',
    );
    t.is(leaseBusyWaitMs(undefined, busyTimeoutMs), busyTimeoutMs, 'without a lease, all of it');
    const journal = new SqliteJournal(file, retentionMs, busyWaitMs);
    t.teardown(() => {
      journal.close();
      rmSync(directory, { recursive: true, force: true });
    });
    journal.beginTerm('coordinator-1', createdAt);
    const holder = holdWriteLock(file, { locked: [] }, 2_000);
    await holder.locked;
    const startedAt = Date.now();
    t.throws(() => journal.append([begin(txB, 'short-wait-key-0001')], createdAt), {
      instanceOf: JournalBusyError,
    });
    const waitedMs = Date.now() - startedAt;
    t.true(waitedMs >= busyWaitMs - 50 && waitedMs < 1_500, `waited ${waitedMs} ms`);
    t.is(await holder.exited, 0);
    journal.append([begin(txB, 'short-wait-key-0001')], createdAt);
    t.is(journal.findById(txB)?.txId, txB, 'written once the lock is free');
  },
);
