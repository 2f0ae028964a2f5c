/**
 * The simulator's own parts, each on scripted input: the generator and the event queue that make
 * a run reproducible, the crash semantics of the simulated journal and barrier, and the checker,
 * which must report each kind of violation when shown one (a checker that cannot fail proves
 * nothing, and the mutation tests do not reach every check).
 */
import test from 'ava';
import type { Decision } from '../../common/protocol.ts';
import type { JournalRecord } from '../../coordinator/core/types.ts';
import { EventQueue } from './event-queue.ts';
import { Checker } from './invariants.ts';
import { SimLease } from './coordinator-shell.ts';
import { JournalConstraintError, JournalFencedError, SimJournal } from './journal.ts';
import { SimNetwork } from './network.ts';
import { throughWire, WireError } from './wire.ts';
import { Random } from './random.ts';
import { BarrierConstraintError, SimBarrier, SimLedger } from './storage.ts';
import type { FaultKind, NodeName, Packet, SimEvent, ViolationKind } from './world.ts';

const payment = {
  payer: 'alice',
  payee: 'bob',
  amountMinor: 100,
  currency: 'EUR',
  orderId: 'order-1',
  lines: [{ sku: 'item', quantity: 1, unitPriceMinor: 100 }],
};

function begin(
  txId: string,
  idempotencyKey = `key-${txId}`,
  createdAt = 0,
): Extract<JournalRecord, { kind: 'begin' }> {
  return {
    kind: 'begin',
    txId,
    clientId: 'shop',
    idempotencyKey,
    fingerprint: 'f',
    payment,
    participants: ['bank'],
    createdAt,
    deadlineAt: createdAt + 1,
  };
}

function completed(txId: string, completedAt: number): JournalRecord {
  return { kind: 'completed', txId, completedAt };
}

function decided(txId: string, decision: Decision): JournalRecord {
  return { kind: 'decided', txId, decision, decidedAt: 0 };
}

test('a seed gives the same stream; forks and seeds above 2^32 give others', (t) => {
  const draw = (random: Random): number[] => Array.from({ length: 5 }, () => random.uint32());
  t.deepEqual(draw(new Random(7)), draw(new Random(7)));
  t.notDeepEqual(draw(new Random(7)), draw(new Random(8)));
  t.notDeepEqual(draw(new Random(1)), draw(new Random(2 ** 32 + 1)));
  const parent = new Random(7);
  t.notDeepEqual(draw(parent.fork()), draw(parent.fork()));
  const random = new Random(3);
  for (let index = 0; index < 1_000; index += 1) {
    const value = random.int(-2, 2);
    t.true(value >= -2 && value <= 2 && Number.isInteger(value));
  }
});

test('the event queue runs events by time, and in insertion order at one time', (t) => {
  const queue = new EventQueue<string>();
  for (const [at, name] of [
    [5, 'c'],
    [1, 'a'],
    [5, 'd'],
    [3, 'b'],
    [5, 'e'],
  ] as const) {
    queue.push(at, name);
  }
  const order: string[] = [];
  for (let next = queue.pop(); next !== undefined; next = queue.pop()) order.push(next.event);
  t.deepEqual(order, ['a', 'b', 'c', 'd', 'e']);
});

test('a crash keeps forced records and everything before them, and may lose the tail', (t) => {
  for (let seed = 0; seed < 20; seed += 1) {
    const journal = new SimJournal();
    journal.append([begin('T1')], 1, 0);
    journal.append(
      [decided('T1', 'commit'), { kind: 'completed', txId: 'T1', completedAt: 0 }],
      1,
      0,
    );
    journal.append([begin('T2')], 0, 0);
    t.is(journal.durableDecision('T1'), 'commit');
    const lost = journal.crash(new Random(seed));
    t.true(lost <= 2);
    t.is(journal.durableDecision('T1'), 'commit');
    t.truthy(journal.findById('T1'));
    t.is(journal.findByKey('shop', 'key-T2') === undefined, lost >= 1);
  }
});

test('the journal refuses what SQLite would: a key claimed twice, a second decision', (t) => {
  const journal = new SimJournal();
  journal.append([begin('T1', 'key-same')], 1, 0);
  t.throws(() => journal.append([begin('T2', 'key-same')], 1, 0), {
    instanceOf: JournalConstraintError,
  });
  journal.append([decided('T1', 'abort')], 1, 0);
  t.throws(() => journal.append([decided('T1', 'commit')], 1, 0), {
    instanceOf: JournalConstraintError,
  });
});

test('with a retention, a key expires once its payment completed durably, and is claimed again', (t) => {
  const journal = new SimJournal(1_000);
  journal.append([begin('T1', 'key-a'), decided('T1', 'commit')], 2, 0);
  journal.append([completed('T1', 100)], 0, 100);
  // Completed, but only in the volatile tail: `completed_at` is not set, the key does not expire.
  t.truthy(journal.findByKey('shop', 'key-a', 5_000));
  t.is(journal.purge(5_000), 0);
  journal.append([begin('T2', 'key-b', 200)], 1, 200);
  // Durable now: a lookup at 1,100 (the cutoff is 100) still finds it, one at 1,101 does not.
  t.truthy(journal.findByKey('shop', 'key-a', 1_100));
  t.is(journal.findByKey('shop', 'key-a', 1_101), undefined);
  t.truthy(journal.findByKey('shop', 'key-a'));
  t.throws(() => journal.append([begin('T3', 'key-a', 1_050)], 1, 1_050), {
    instanceOf: JournalConstraintError,
  });
  journal.append([begin('T4', 'key-a', 1_200)], 1, 1_200);
  t.is(journal.findByKey('shop', 'key-a')?.txId, 'T4');
  t.is(journal.findById('T1'), undefined);
  // A released payment keeps its durable decision, and a crash does not bring it back.
  t.is(journal.durableDecision('T1'), 'commit');
  journal.crash(new Random(1));
  t.is(journal.findById('T1'), undefined);
  t.is(journal.findByKey('shop', 'key-a')?.txId, 'T4');
  t.deepEqual(
    [...journal.forgotten()].map((entry) => entry.begin.txId),
    ['T1'],
  );
});

test('the purge forgets what completed before the cutoff, never what is unfinished', (t) => {
  const journal = new SimJournal(1_000);
  journal.append([begin('T1'), begin('T2'), decided('T1', 'abort'), decided('T2', 'commit')], 4, 0);
  journal.append([completed('T1', 10), begin('T3', 'key-T3', 20)], 2, 20);
  t.is(journal.purge(1_010), 0);
  t.is(journal.purge(1_011), 1);
  t.is(journal.findById('T1'), undefined);
  t.truthy(journal.findById('T2'));
  t.is(journal.purge(1_000_000), 0);
  t.deepEqual(
    journal.unfinishedRecords().map((record) => record.txId),
    ['T2', 'T2', 'T3'],
  );
  // The broken rule of the mutation 'purge-by-age' forgets the unfinished ones too.
  const broken = new SimJournal(1_000, 'begun-before-cutoff');
  broken.append([begin('T1'), decided('T1', 'commit')], 2, 0);
  t.is(broken.purge(1_001), 1);
  t.deepEqual(broken.unfinishedRecords(), []);
  // Without a retention nothing expires.
  const forever = new SimJournal();
  forever.append([begin('T1'), decided('T1', 'commit'), completed('T1', 0)], 3, 0);
  t.is(forever.purge(1e12), 0);
  t.truthy(forever.findByKey('shop', 'key-T1', 1e12));
});

test('a new term fences the old one and settles its unwritten records; a crash makes kept ones durable', (t) => {
  for (let seed = 0; seed < 20; seed += 1) {
    const durable: string[] = [];
    const journal = new SimJournal(undefined, undefined, (record) => durable.push(record.kind));
    t.is(journal.beginTerm(new Random(seed)).epoch, 1);
    journal.append([begin('T1'), decided('T1', 'commit')], 2, 0, 1);
    journal.append([completed('T1', 5)], 0, 5, 1);
    t.deepEqual(durable, ['begin', 'decided']);
    // The standby's term: the old leader's unforced record survives or not, and is settled.
    const { epoch, lost } = journal.beginTerm(new Random(seed));
    t.is(epoch, 2);
    t.deepEqual(durable, lost === 0 ? ['begin', 'decided', 'completed'] : ['begin', 'decided']);
    t.throws(() => journal.append([begin('T2')], 1, 6, 1), { instanceOf: JournalFencedError });
    t.is(journal.findById('T2'), undefined);
    journal.append([begin('T3')], 1, 7, 2);
    // Unforced, then a crash that keeps it: durable from then on, told once.
    journal.append([decided('T3', 'abort'), completed('T3', 8)], 1, 8, 2);
    const crashLost = journal.crash(new Random(seed));
    t.is(
      durable.filter((kind) => kind === 'completed').length,
      (lost === 0 ? 1 : 0) + 1 - crashLost,
    );
    t.is(journal.crash(new Random(seed + 1)), 0, 'nothing volatile is left to lose');
  }
});

test('the lease goes to one holder, to another once it expires, and is not renewed once lost', (t) => {
  const lease = new SimLease();
  t.true(lease.tryAcquire('coordinator', 0, 100));
  t.false(lease.tryAcquire('coordinator-2', 99, 100));
  t.true(lease.renew('coordinator', 99, 100));
  t.false(lease.tryAcquire('coordinator-2', 198, 100));
  t.true(lease.tryAcquire('coordinator-2', 199, 100));
  t.false(lease.renew('coordinator', 200, 100));
  t.false(lease.tryAcquire('coordinator-2', 250, 100), 'not even the holder, before it expires');
  t.true(lease.tryAcquire('coordinator-2', 299, 100), 'the holder too, once it expired');
});

function quietNetwork() {
  const scheduled: { at: number; event: SimEvent }[] = [];
  const counted: FaultKind[] = [];
  const world = {
    now: 0,
    schedule: (at: number, event: SimEvent) => void scheduled.push({ at, event }),
    count: (kind: FaultKind) => void counted.push(kind),
    trace: () => undefined,
  };
  const network = new SimNetwork(world, new Random(1), {
    delayMsMin: 1,
    delayMsMax: 2,
    lossRate: 0,
    duplicateRate: 0,
    delayedRate: 0,
    delayedMsMax: 0,
    replayMsMax: 0,
  });
  return { world, network, scheduled, counted };
}

test('a partition cuts its nodes off from the servers (and the lease); a one-way cut does not', (t) => {
  const { network } = quietNetwork();
  t.true(network.reachesLease('coordinator'));
  const cut = network.cut('coordinator', 'bank');
  t.true(network.reachesLease('coordinator'), 'a cut is between two nodes');
  network.heal(cut);
  const partition = network.partition(['coordinator', 'vendor']);
  t.false(network.reachesLease('coordinator'));
  t.false(network.reachesLease('vendor'));
  t.true(network.reachesLease('coordinator-2'), 'the other side keeps the servers');
  t.true(network.connected('coordinator', 'vendor'), 'one side of a partition is connected');
  network.heal(partition);
  t.true(network.reachesLease('coordinator'));
});

test('a server crash cuts its nodes off from everyone and loses what was in flight', (t) => {
  const { world, network, scheduled, counted } = quietNetwork();
  const packet = (from: NodeName, to: NodeName): Packet => ({
    type: 'reply',
    requestId: scheduled.length + 1,
    from,
    to,
    body: { kind: 'no-responders' },
  });
  world.now = 10;
  network.send(packet('coordinator', 'bank'));
  const inFlight = scheduled[0]?.event;
  t.like(inFlight, { kind: 'deliver', sentAt: 10 });
  world.now = 11;
  const down = network.serverDown(['bank', 'vendor'], 500);
  t.true(network.lostInCrash('coordinator', 'bank', 10), 'in flight to a crashed node: lost');
  t.false(network.lostInCrash('coordinator', 'customer', 10), 'between other nodes: delivered');
  t.false(network.lostInCrash('coordinator', 'bank', 12), 'sent after the crash: not in flight');
  t.false(network.connected('bank', 'vendor'), 'not even the crashed nodes reach one another');
  t.false(network.connected('coordinator', 'bank'));
  t.true(network.connected('coordinator', 'customer'));
  t.false(network.reachesLease('bank'));
  t.true(network.reachesLease('coordinator'));
  // Published while disconnected: held until the reconnect at 500, or lost with the buffer.
  for (let index = 0; index < 40; index += 1) network.send(packet('vendor', 'coordinator'));
  const buffered = scheduled.slice(1).map((entry) => entry.event);
  const lost = counted.filter((kind) => kind === 'lost-in-server-crash').length;
  t.is(buffered.length + lost, 40);
  t.true(buffered.length > 0 && lost > 0, `${buffered.length} buffered, ${lost} lost`);
  for (const event of buffered) t.like(event, { kind: 'deliver', sentAt: 500 });
  t.true(scheduled.slice(1).every((entry) => entry.at > 500));
  network.heal(down);
  t.true(network.connected('bank', 'vendor'));
  t.true(network.reachesLease('bank'));
});

test('while JetStream is down nobody reaches the lease, and messages still flow', (t) => {
  const { network } = quietNetwork();
  const down = network.leaseStoreDown();
  t.false(network.reachesLease('coordinator'));
  t.false(network.reachesLease('coordinator-2'));
  t.true(network.connected('coordinator', 'bank'));
  network.heal(down);
  t.true(network.reachesLease('coordinator'));
});

test('the barrier derives its status as the real shell does and keeps one prepare row', (t) => {
  const barrier = new SimBarrier();
  t.is(barrier.status('T1'), undefined);
  barrier.insertPrepare('T1', 'yes', undefined, 0);
  t.deepEqual(barrier.status('T1'), { status: 'voted-yes' });
  t.deepEqual(barrier.inDoubt(), ['T1']);
  t.throws(() => barrier.insertPrepare('T1', 'no', 'x', 0), { instanceOf: BarrierConstraintError });
  t.true(barrier.insertIfAbsent('T1', 'commit', 0));
  t.false(barrier.insertIfAbsent('T1', 'commit', 0));
  t.deepEqual(barrier.status('T1'), { status: 'committed' });
  t.true(barrier.insertIfAbsent('T2', 'prepare', 0));
  t.true(barrier.insertIfAbsent('T2', 'abort', 0));
  t.deepEqual(barrier.status('T2'), { status: 'aborted' });
  t.deepEqual(barrier.inDoubt(), []);
});

test('the barrier forgets what finished before the cutoff and was made before it, and says so', (t) => {
  // Made at 100, 150 and 900 by the coordinator's clock; this participant's runs 50 ms behind.
  const createdAt: Record<string, number> = { T1: 100, T2: 150, T3: 900 };
  const barrier = new SimBarrier((txId) => createdAt[txId] ?? Number.NaN, -50);
  barrier.insertPrepare('T1', 'yes', undefined, 100);
  t.true(barrier.insertIfAbsent('T1', 'commit', 200));
  barrier.insertPrepare('T2', 'yes', undefined, 150);
  barrier.insertPrepare('T3', 'no', 'x', 120);
  // At 1,250 with a retention of 1,000 the cutoff is 200 on the participant's clock: T1 finished
  // at 150 there and T3 at 70, but T3 was made at 900, and T2, in doubt, has not finished.
  t.is(barrier.purge(1_250, 1_000), 1);
  t.deepEqual(barrier.status('T1'), { status: 'forgotten' });
  t.deepEqual(barrier.status('T2'), { status: 'voted-yes' });
  t.deepEqual(barrier.status('T3'), { status: 'voted-no', reason: 'x' });
  t.is(barrier.purge(2_000, 1_000), 1);
  t.deepEqual(barrier.status('T3'), { status: 'forgotten' });
  t.deepEqual(barrier.inDoubt(), ['T2']);
});

test('the ledger holds, captures and releases, and conserves money', (t) => {
  const ledger = new SimLedger({ alice: 150, bob: 0 });
  t.deepEqual(ledger.prepare('T1', payment), { vote: 'yes' });
  t.is(ledger.prepare('T2', payment).vote, 'no');
  ledger.commit('T1');
  t.is(ledger.heldMinor(), 0);
  t.is(ledger.conservationProblem(), undefined);
  t.deepEqual(ledger.prepare('T3', { ...payment, payer: 'bob', payee: 'alice' }), { vote: 'yes' });
  ledger.abort('T3');
  t.is(ledger.holdState('T3'), 'released');
  t.throws(() => ledger.abort('T1'));
});

function checkerWith(
  barrier = new SimBarrier(),
  journal = new SimJournal(),
): {
  checker: Checker;
  journal: SimJournal;
  failures: ViolationKind[];
} {
  const failures: ViolationKind[] = [];
  const checker = new Checker({
    journal,
    barrierOf: () => barrier,
    fail: (kind) => failures.push(kind),
  });
  return { checker, journal, failures };
}

test('the checker reports a YES voter that decides alone, and split decisions', (t) => {
  const { checker, failures } = checkerWith();
  checker.onDecisionApplied('bank', 'T1', 'abort', true);
  t.deepEqual(failures, ['decided-alone']);
  checker.onDecisionIssued('T2', 'commit');
  checker.onDecisionApplied('bank', 'T2', 'commit', true);
  checker.onDecisionApplied('vendor', 'T2', 'abort', false);
  t.deepEqual(failures, ['decided-alone', 'atomicity']);
  checker.onDecisionDurable('T3', 'commit');
  checker.onDecisionApplied('customer', 'T3', 'abort', false);
  t.deepEqual(failures, ['decided-alone', 'atomicity', 'atomicity']);
});

test('the checker reports a vote or decision sent or heard before it is durable', (t) => {
  const { checker, journal, failures } = checkerWith();
  checker.onVoteSent('bank', 'T1', 'yes');
  checker.onVoteHeard('bank', 'T1', 'yes');
  journal.append([begin('T1'), decided('T1', 'commit')], 1, 0);
  checker.onDecisionHeard('bank', 'T1', 'commit');
  t.deepEqual(failures, ['not-durable', 'not-durable', 'not-durable']);
});

test('a vote heard after its finished transaction was forgotten is fine; one sent then is not', (t) => {
  const barrier = new SimBarrier(() => 0);
  const { checker, failures } = checkerWith(barrier);
  barrier.insertPrepare('T1', 'yes', undefined, 0);
  checker.onVoteSent('bank', 'T1', 'yes');
  barrier.insertIfAbsent('T1', 'abort', 1);
  barrier.purge(5_000, 1_000);
  t.deepEqual(barrier.status('T1'), { status: 'forgotten' });
  checker.onVoteHeard('bank', 'T1', 'yes');
  checker.onVoteSent('bank', 'T1', 'no');
  t.deepEqual(failures, []);
  checker.onVoteSent('bank', 'T1', 'yes');
  t.deepEqual(failures, ['not-durable']);
});

test('the checker reports a key that reaches participants twice, and a changed answer', (t) => {
  const { checker, journal, failures } = checkerWith();
  // Two begins of one key cannot both be in one journal; the checker sees every journal ever.
  checker.onBeginDurable(begin('T1', 'key-x'));
  checker.onBeginDurable(begin('T2', 'key-x'));
  t.deepEqual(failures, ['key-executed-twice']);
  const asked = { clientId: 'shop', idempotencyKey: 'key-x', fingerprint: 'g' };
  const reply = { v: 1, kind: 'in-progress', txId: 'T1', idempotencyKey: 'key-x' } as const;
  checker.onPayAnswer(asked, { ...reply, retryAfterMs: 1 });
  t.deepEqual(failures, ['key-executed-twice', 'mismatch-executed']);
  const outcome = { v: 1, kind: 'outcome', txId: 'T1', outcome: 'aborted', replay: false } as const;
  const same = { ...asked, fingerprint: 'f' };
  journal.append([begin('T1', 'key-x'), decided('T1', 'abort')], 2, 0);
  checker.onPayAnswer(same, { ...outcome, idempotencyKey: 'key-x', abortedBy: 'bank' });
  checker.onPayAnswer(same, { ...outcome, idempotencyKey: 'key-x', abortedBy: 'vendor' });
  t.deepEqual(failures, ['key-executed-twice', 'mismatch-executed', 'wrong-answer']);
});

test('the checker lets a key be claimed again only after it expired, and never go back', (t) => {
  const { checker, failures } = checkerWith(new SimBarrier(), new SimJournal(1_000));
  checker.onBeginDurable(begin('T1', 'key-x', 0));
  checker.onPrepareExecuted('bank', 'T1');
  checker.onCompletedDurable({ kind: 'completed', txId: 'T1', completedAt: 100 });
  // Begun 1,000 ms after T1 completed: not yet expired.
  checker.onBeginDurable(begin('T2', 'key-x', 1_100));
  t.deepEqual(failures, ['key-executed-twice']);
  checker.onCompletedDurable({ kind: 'completed', txId: 'T2', completedAt: 1_200 });
  checker.onBeginDurable(begin('T3', 'key-x', 2_201));
  checker.onPrepareExecuted('bank', 'T3');
  t.deepEqual(failures, ['key-executed-twice']);
  // The key reached a participant as T3: its older payment may not reach one after it.
  checker.onPrepareExecuted('vendor', 'T1');
  t.deepEqual(failures, ['key-executed-twice', 'key-executed-twice']);
});

test('the checker reports money created or destroyed', (t) => {
  const { checker, failures } = checkerWith();
  const ledger = new SimLedger({ alice: 150, bob: 0 });
  ledger.prepare('T1', payment);
  ledger.commit('T1');
  checker.onLedgerChanged('bank', ledger);
  t.deepEqual(failures, []);
  // The ledger cannot be driven into losing money through its methods, so stand in for one.
  const leaking = { conservationProblem: () => 'balances sum to 149, not 150' };
  checker.onLedgerChanged('bank', leaking as unknown as SimLedger);
  t.deepEqual(failures, ['money']);
});

test('the wire hands on what the real decoders return, and refuses what they refuse', (t) => {
  const payment = {
    payer: 'dave',
    payee: 'carol',
    amountMinor: 120,
    currency: 'EUR',
    orderId: 'order-7',
    lines: [{ sku: 'item', quantity: 1, unitPriceMinor: 120 }],
  };
  const txId = '0TX00000000000000000000007';
  const prepare = {
    type: 'request',
    requestId: 1,
    from: 'coordinator',
    to: 'bank',
    body: { kind: 'participant', message: { v: 1, kind: 'prepare', txId, payment }, epoch: 3 },
  } as const;
  t.deepEqual(throughWire(prepare), prepare);
  const vote = {
    type: 'reply',
    requestId: 1,
    from: 'bank',
    to: 'coordinator',
    body: {
      kind: 'participant',
      reply: { v: 1, kind: 'vote', txId, participant: 'bank', vote: 'no', reason: 'funds' },
    },
  } as const;
  t.deepEqual(throughWire(vote), vote);
  // What the real coordinator would refuse: a vote whose reason its decoder does not accept.
  const badReason = { ...vote.body.reply, reason: 'funds\u0000' };
  const error = t.throws(
    () => throughWire({ ...vote, body: { kind: 'participant', reply: badReason } }),
    {
      instanceOf: WireError,
    },
  );
  t.regex(error.message, /bank -> coordinator: participant reply refused by its decoder/);
  t.throws(() => throughWire({ ...prepare, body: { ...prepare.body, epoch: 0 } }), {
    instanceOf: WireError,
  });
});
