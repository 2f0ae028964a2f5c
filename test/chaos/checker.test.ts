/**
 * A checker that cannot fail proves nothing (STYLE.md). These tests feed the chaos checker
 * doctored facts, without any process: histories whose answers contradict the databases, and
 * real SQLite files (migrated and seeded as the services would) that were tampered with. Each
 * doctoring must be reported with the right kind, and the untouched versions must pass.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ulidTimePrefix } from '../../common/ids.ts';
import { openDatabase } from '../../common/sqlite.ts';
import { moneyBaseline, type DatabaseFiles } from '../../ops/checker.ts';
import { seedDemoData } from '../../participants/seed.ts';
import {
  HistoryIndex,
  checkHistory,
  checkRun,
  type BarrierView,
  type Effect,
  type PaymentRow,
  type Snapshot,
  type ViolationKind,
} from './checker.ts';
import { HistoryWriter, type HistoryEvent, type OpType } from './history.ts';

const client = 'chaos-c000';
const fingerprint = 'chaos-ann|chaos-shop|100|EUR|o-1|pen*1@100';
const changed = 'chaos-ann|chaos-shop|101|EUR|o-1|pen*1@101';
const txA = '01JAAAAAAAAAAAAAAAAAAAAAAA';
const txB = '01JBBBBBBBBBBBBBBBBBBBBBBB';

/** Builds events the way the workload and the final reads write them. */
class Events {
  readonly list: HistoryEvent[] = [];

  add(type: OpType, f: string, process: number | 'reader', value: Record<string, unknown>) {
    this.list.push({
      index: this.list.length,
      type,
      f,
      process,
      time: this.list.length,
      value,
      error: null,
    });
    return this;
  }

  pay(
    key: string,
    result: 'committed' | 'aborted' | 'unknown' | 'mismatch',
    options: {
      txId?: string;
      fingerprint?: string;
      process?: number;
      sentAt?: number;
    } = {},
  ) {
    const value = {
      key,
      client,
      variant: 'fresh',
      orderId: 'o-1',
      fingerprint: options.fingerprint ?? fingerprint,
      ...(options.sentAt === undefined ? {} : { sentAt: options.sentAt }),
    };
    const process = options.process ?? 0;
    this.add('invoke', 'pay', process, value);
    if (result === 'unknown') return this.add('info', 'pay', process, value);
    if (result === 'mismatch')
      return this.add('fail', 'pay', process, { ...value, refused: 'key-mismatch' });
    const txId = options.txId ?? txA;
    return this.add(result === 'committed' ? 'ok' : 'fail', 'pay', process, {
      ...value,
      txId,
      outcome: result,
    });
  }

  read(key: string, pass: number, state: string | undefined, txId: string | null = txA) {
    const value = { key, client, pass };
    this.add('invoke', 'read', 'reader', value);
    if (state === undefined) return this.add('info', 'read', 'reader', value);
    return this.add('ok', 'read', 'reader', { ...value, state, txId });
  }

  index(): HistoryIndex {
    const index = new HistoryIndex();
    for (const event of this.list) index.add(event);
    return index;
  }
}

function row(
  key: string,
  state: PaymentRow['state'],
  txId = txA,
  rowFingerprint = fingerprint,
): PaymentRow {
  return {
    txId,
    clientId: client,
    key,
    fingerprint: rowFingerprint,
    state,
    completed: state !== 'preparing',
  };
}

function snapshot(
  payments: PaymentRow[],
  effect: Effect | undefined,
  changes: Partial<Snapshot> = {},
): Snapshot {
  const effects = (txIds: readonly string[]) =>
    new Map(effect === undefined ? [] : txIds.map((txId) => [txId, effect] as const));
  const txIds = payments.map((payment) => payment.txId);
  const barrier = new Map<string, BarrierView>();
  return {
    payments,
    effects: { bank: effects(txIds), vendor: effects(txIds), customer: effects(txIds) },
    barriers: { bank: barrier, vendor: barrier, customer: barrier },
    negativeAccounts: [],
    takenAt: Date.now(),
    ...changes,
  };
}

const ok = { settledInTime: true, boundS: 30 };

function kinds(events: Events, facts: Snapshot, options = ok): ViolationKind[] {
  return checkHistory(events.index(), facts, options).map((violation) => violation.kind);
}

test('a consistent history and snapshot pass', (t) => {
  const events = new Events()
    .pay('k-committed-000001', 'committed')
    .pay('k-committed-000001', 'committed')
    .read('k-committed-000001', 1, 'committed')
    .read('k-committed-000001', 2, 'committed');
  t.deepEqual(kinds(events, snapshot([row('k-committed-000001', 'committed')], 'committed')), []);
});

test('committed in the reply but not applied at a participant is caught', (t) => {
  const events = new Events()
    .pay('k-000000000001', 'committed')
    .read('k-000000000001', 1, 'committed');
  const facts = snapshot([row('k-000000000001', 'committed')], 'committed');
  const vendor = new Map([[txA, 'released' as const]]);
  const doctored = { ...facts, effects: { ...facts.effects, vendor } };
  const violations = checkHistory(events.index(), doctored, ok);
  t.deepEqual(
    violations.map((violation) => violation.kind),
    ['reply-truth'],
  );
  t.like(violations[0], { key: 'k-000000000001', txId: txA });
  t.true(violations[0]?.message.includes('vendor=released'));
  t.true((violations[0]?.lines.length ?? 0) > 0, 'the violation carries its history lines');
});

test('two different answers for one key are caught', (t) => {
  const events = new Events()
    .pay('k-000000000002', 'committed')
    .pay('k-000000000002', 'aborted', { txId: txB })
    .read('k-000000000002', 1, 'committed');
  t.true(
    kinds(events, snapshot([row('k-000000000002', 'committed')], 'committed')).includes(
      'idempotence',
    ),
  );
});

test('an unknown outcome that was never read back is caught', (t) => {
  const events = new Events().pay('k-000000000003', 'unknown');
  t.deepEqual(kinds(events, snapshot([row('k-000000000003', 'aborted')], undefined)), ['liveness']);
});

test('an unknown outcome still preparing at the end is caught', (t) => {
  const events = new Events()
    .pay('k-000000000004', 'unknown')
    .read('k-000000000004', 1, 'preparing');
  t.deepEqual(kinds(events, snapshot([row('k-000000000004', 'preparing')], 'open')), ['liveness']);
});

test('an unknown outcome resolved as never started passes, with no effects', (t) => {
  const events = new Events()
    .pay('k-000000000005', 'unknown')
    .read('k-000000000005', 1, 'unknown', null);
  t.deepEqual(kinds(events, snapshot([], undefined)), []);
});

test('a changed request answered with the original outcome is caught', (t) => {
  const events = new Events()
    .pay('k-000000000006', 'committed')
    .pay('k-000000000006', 'committed', { fingerprint: changed })
    .read('k-000000000006', 1, 'committed');
  t.deepEqual(kinds(events, snapshot([row('k-000000000006', 'committed')], 'committed')), [
    'idempotence',
  ]);
});

test('a changed request refused as a mismatch passes; the original refused is caught', (t) => {
  const good = new Events()
    .pay('k-000000000007', 'committed')
    .pay('k-000000000007', 'mismatch', { fingerprint: changed })
    .read('k-000000000007', 1, 'committed');
  const facts = snapshot([row('k-000000000007', 'committed')], 'committed');
  t.deepEqual(kinds(good, facts), []);
  const bad = new Events().pay('k-000000000007', 'committed').pay('k-000000000007', 'mismatch');
  t.true(kinds(bad.read('k-000000000007', 1, 'committed'), facts).includes('idempotence'));
});

test('an outcome that changes across the last restart is caught', (t) => {
  const events = new Events()
    .pay('k-000000000008', 'unknown')
    .read('k-000000000008', 1, 'committed')
    .read('k-000000000008', 2, 'aborted');
  const found = kinds(events, snapshot([row('k-000000000008', 'committed')], 'committed'));
  t.true(found.includes('reply-truth'));
});

test('aborted in the reply but committed somewhere is caught', (t) => {
  const events = new Events().pay('k-000000000009', 'aborted').read('k-000000000009', 1, 'aborted');
  const found = kinds(events, snapshot([row('k-000000000009', 'aborted')], 'committed'));
  t.deepEqual(found, ['reply-truth']);
});

test('barrier rows that disagree with the journal, and a participant in doubt, are caught', (t) => {
  const events = new Events().pay('k-000000000010', 'aborted').read('k-000000000010', 1, 'aborted');
  const facts = snapshot([row('k-000000000010', 'aborted')], 'released');
  const committedHere = new Map([[txA, { prepare: 'yes', commit: true, abort: false } as const]]);
  const inDoubt = new Map([[txA, { prepare: 'yes', commit: false, abort: false } as const]]);
  const empty = new Map<string, BarrierView>();
  const doctored = {
    ...facts,
    barriers: { bank: committedHere, vendor: inDoubt, customer: empty },
  };
  t.deepEqual(kinds(events, doctored).sort(), ['agreement', 'no-hold-left']);
});

test('a payment for a key no client used, a negative account and a missed bound are caught', (t) => {
  const facts = snapshot([row('k-nobody-used-it', 'committed')], 'committed', {
    negativeAccounts: ['acct-x-eur: -5/0'],
  });
  const found = kinds(new Events(), facts, { settledInTime: false, boundS: 30 });
  t.deepEqual(found.sort(), ['conservation', 'idempotence', 'liveness']);
});

test('a service that died with no fault to account for it is caught', (t) => {
  const events = new Events();
  events.list.push({
    index: 0,
    type: 'info',
    f: 'unexpected-exit',
    process: 'nemesis',
    time: 0,
    value: {
      target: 'coordinator-2',
      exit: 'exit 1',
      log: '{"event":"fatal","error":"JournalCorruptError: …"}',
    },
    error: null,
  });
  const violations = checkHistory(events.index(), snapshot([], undefined), ok);
  t.deepEqual(
    violations.map((violation) => violation.kind),
    ['crash'],
  );
  t.true(violations[0]?.message.includes('JournalCorruptError'));
  t.true(violations[0]?.message.includes('(exit 1)'), 'it says how the service exited');
});

test('a pause that something else ended early is caught as a lost fault', (t) => {
  const events = new Events();
  const stop = (index: number, fault: number, stoppedToTheEnd: boolean): HistoryEvent => ({
    index,
    type: 'info',
    f: 'pause-nats',
    process: 'nemesis',
    time: index,
    value: { fault, target: 'node-1', phase: 'stop', stoppedToTheEnd },
    error: null,
  });
  events.list.push(stop(0, 1, true), stop(1, 2, false));
  const violations = checkHistory(events.index(), snapshot([], undefined), ok);
  t.deepEqual(
    violations.map((violation) => [violation.kind, violation.lines]),
    [['fault-lost', [1]]],
  );
  t.true(violations[0]?.message.startsWith('pause-nats of node-1'));
});

/** Migrated, seeded databases as the services would leave them, in a temp dir. */
function seededFiles(): { files: DatabaseFiles; root: string } {
  const root = mkdtempSync(join(tmpdir(), 'continuum-chaos-checker-'));
  const file = (name: string): string => join(root, `${name}.sqlite`);
  const files = {
    coordinator: file('coordinator'),
    bank: file('bank'),
    vendor: file('vendor'),
    customer: file('customer'),
  };
  openDatabase(files.coordinator, 'coordinator').close();
  const dbs = {
    bank: openDatabase(files.bank, 'bank'),
    vendor: openDatabase(files.vendor, 'vendor'),
    customer: openDatabase(files.customer, 'customer'),
  };
  seedDemoData(dbs);
  for (const db of Object.values(dbs)) db.close();
  return { files, root };
}

async function emptyHistory(root: string): Promise<string> {
  const writer = new HistoryWriter(join(root, 'history.jsonl'));
  await writer.close();
  return writer.file;
}

test('tampered database files are caught: money created, a hold left behind', async (t) => {
  const { files, root } = seededFiles();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const baseline = moneyBaseline(files.bank);
  const historyFile = await emptyHistory(root);
  const input = { historyFile, files, baseline, settledInTime: true, boundS: 30 };
  t.deepEqual((await checkRun(input)).violations, [], 'the untouched files pass');
  const bank = openDatabase(files.bank, 'bank');
  bank
    .prepare(
      "UPDATE accounts SET balance_minor = balance_minor + 1 WHERE account_id = 'acct-alice-eur'",
    )
    .run();
  bank
    .prepare(
      `INSERT INTO holds (tx_id, payer_account, payee_account, amount_minor, currency, state,
         created_at, updated_at) VALUES (?, 'acct-alice-eur', 'acct-acme-eur', 100, 'EUR', 'held', 0, 0)`,
    )
    .run(txA);
  bank.prepare("UPDATE accounts SET held_minor = 100 WHERE account_id = 'acct-alice-eur'").run();
  bank.close();
  const found = (await checkRun(input)).violations.map((violation) => violation.kind);
  t.true(found.includes('conservation'), found.join(','));
  t.true(found.includes('no-hold-left'), found.join(','));
});

test("a customer's pending total that disagrees with its pending purchases is caught", async (t) => {
  const { files, root } = seededFiles();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const historyFile = await emptyHistory(root);
  const baseline = moneyBaseline(files.bank);
  const input = { historyFile, files, baseline, settledInTime: true, boundS: 30 };
  t.deepEqual((await checkRun(input)).violations, [], 'the untouched files pass');
  const customer = openDatabase(files.customer, 'customer');
  customer.prepare("UPDATE customers SET pending_minor = 50 WHERE customer_id = 'alice'").run();
  customer.close();
  const messages = (await checkRun(input)).violations.map((violation) => violation.message);
  t.true(
    messages.includes('customer alice: pending 50 but pending purchases sum to 0'),
    messages.join('\n'),
  );
});

// ---- with a key retention: the coordinator may forget old payments and reuse their keys -------

const retentionMs = 10_000;
const withRetention = { ...ok, keyRetentionMs: retentionMs };
/** A transaction id made `agoMs` before now, as the coordinator makes them. */
const txMadeAgo = (agoMs: number, tail: string): string =>
  ulidTimePrefix(Date.now() - agoMs) + tail.repeat(16);

/** A snapshot of these journal rows in which these transactions are committed everywhere. */
function committedEverywhere(payments: PaymentRow[], ...txIds: string[]): Snapshot {
  const map = () => new Map(txIds.map((txId) => [txId, 'committed' as const]));
  return {
    ...snapshot(payments, undefined),
    effects: { bank: map(), vendor: map(), customer: map() },
  };
}

test('with a retention: a key reused after its payment expired passes; within it, caught', (t) => {
  const [old, young] = [txMadeAgo(60_000, 'A'), txMadeAgo(20_000, 'B')];
  const events = new Events()
    .pay('k-reused-01', 'committed', { txId: old })
    .pay('k-reused-01', 'aborted', { txId: young, fingerprint: changed })
    .read('k-reused-01', 1, 'aborted', young);
  const current = committedEverywhere([row('k-reused-01', 'aborted', young, changed)], old);
  t.deepEqual(kinds(events, current, withRetention), []);
  // The same without a retention: the key named two payments.
  t.true(kinds(events, current, ok).includes('idempotence'));
  // Reused 5 s after the first began, inside the 10 s retention.
  const early = txMadeAgo(55_000, 'C');
  const tooSoon = new Events()
    .pay('k-reused-01', 'committed', { txId: old })
    .pay('k-reused-01', 'aborted', { txId: early, fingerprint: changed })
    .read('k-reused-01', 1, 'aborted', early);
  const facts = committedEverywhere([row('k-reused-01', 'aborted', early, changed)], old);
  t.deepEqual(kinds(tooSoon, facts, withRetention), ['idempotence']);
});

test('with a retention: a payment forgotten before its retention passed is caught', (t) => {
  const young = txMadeAgo(2_000, 'D');
  const events = new Events()
    .pay('k-forgotten-01', 'committed', { txId: young })
    .read('k-forgotten-01', 1, 'committed', young);
  const found = kinds(events, committedEverywhere([], young), withRetention);
  t.deepEqual(found, ['reply-truth', 'reply-truth']);
  // Old enough, the same facts pass: the purge may have forgotten it after the final read.
  const old = txMadeAgo(30_000, 'E');
  const passing = new Events()
    .pay('k-forgotten-01', 'committed', { txId: old })
    .read('k-forgotten-01', 1, 'committed', old);
  t.deepEqual(kinds(passing, committedEverywhere([], old), withRetention), []);
});

test('with a retention: participants that disagree on a forgotten payment are caught', (t) => {
  const old = txMadeAgo(30_000, 'F');
  const facts = {
    ...snapshot([], undefined),
    barriers: {
      bank: new Map([[old, { prepare: 'yes', commit: true, abort: false } as const]]),
      vendor: new Map([[old, { prepare: 'yes', commit: false, abort: true } as const]]),
      customer: new Map<string, BarrierView>(),
    },
  };
  t.deepEqual(kinds(new Events(), facts, withRetention), ['atomicity']);
  // Without a retention the journal should have it: both rows disagree with it.
  t.deepEqual(kinds(new Events(), facts, ok), ['agreement']);
});

test('with a retention: a mismatch is checked against the payment the key named then', (t) => {
  const [old, young] = [txMadeAgo(60_000, 'G'), txMadeAgo(20_000, 'H')];
  const facts = committedEverywhere(
    [row('k-mismatch-01', 'committed', young, changed)],
    old,
    young,
  );
  // Refused while the old payment held the key; the changed request was made later, as new.
  const refusedFirst = new Events()
    .pay('k-mismatch-01', 'committed', { txId: old })
    .pay('k-mismatch-01', 'mismatch', { fingerprint: changed, sentAt: Date.now() - 40_000 })
    .pay('k-mismatch-01', 'committed', { txId: young, fingerprint: changed })
    .read('k-mismatch-01', 1, 'committed', young);
  t.deepEqual(kinds(refusedFirst, facts, withRetention), []);
  // Refused after the payment with the same request had begun: wrong.
  const refusedAfter = new Events()
    .pay('k-mismatch-01', 'committed', { txId: old })
    .pay('k-mismatch-01', 'committed', { txId: young, fingerprint: changed })
    .pay('k-mismatch-01', 'mismatch', { fingerprint: changed, sentAt: Date.now() - 1_000 })
    .read('k-mismatch-01', 1, 'committed', young);
  t.deepEqual(kinds(refusedAfter, facts, withRetention), ['idempotence']);
});

test('with a retention: a final read that finds an expired key empty passes', (t) => {
  const old = txMadeAgo(30_000, 'J');
  const events = new Events()
    .pay('k-expired-01', 'committed', { txId: old })
    .read('k-expired-01', 1, 'unknown', null);
  const facts = committedEverywhere([row('k-expired-01', 'committed', old)], old);
  t.deepEqual(kinds(events, facts, withRetention), []);
  // A young payment must still be found by its key.
  const young = txMadeAgo(1_000, 'K');
  const youngEvents = new Events()
    .pay('k-expired-01', 'committed', { txId: young })
    .read('k-expired-01', 1, 'unknown', null);
  const youngFacts = committedEverywhere([row('k-expired-01', 'committed', young)], young);
  t.true(kinds(youngEvents, youngFacts, withRetention).includes('reply-truth'));
});
