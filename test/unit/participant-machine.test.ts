/**
 * A participant's state machine, driven with scripted inputs: one test per row of the transition
 * table in participants/core/machine.ts, plus duplicates, in-doubt queries and recovery. The
 * machine is pure, so each test compares the exact effects.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { AssertionError } from '../../common/assert.ts';
import type { Decision, Payment, TransactionState } from '../../common/protocol.ts';
import { ParticipantMachine } from '../../participants/core/machine.ts';
import type {
  ParticipantConfig,
  ParticipantEffect,
  StoredStatus,
} from '../../participants/core/machine.ts';

const now = 1_700_000_000_000;
const txId = '01HZX3V2M8Q4J7K9N0P5R6S7T8';
const otherTxId = '01HZX3V2M8Q4J7K9N0P5R6S7T9';

const config: ParticipantConfig = {
  name: 'bank',
  inDoubtQueryAfterMs: 1_000,
  inDoubtQueryMsMax: 8_000,
};

const payment: Payment = {
  payer: 'alice',
  payee: 'acme',
  amountMinor: 2_000,
  currency: 'EUR',
  orderId: 'order-1',
  lines: [{ sku: 'widget', quantity: 2, unitPriceMinor: 1_000 }],
};

function ready(t: ExecutionContext): ParticipantMachine {
  const machine = new ParticipantMachine(config);
  t.deepEqual(machine.step({ kind: 'recovery-finished', now }), []);
  return machine;
}

function prepare(
  machine: ParticipantMachine,
  stored: StoredStatus | undefined,
  requestRef = 1,
  id = txId,
): ParticipantEffect[] {
  return machine.step({
    kind: 'message-received',
    now,
    requestRef,
    message: { v: 1, kind: 'prepare', txId: id, payment },
    stored,
  });
}

function decide(
  machine: ParticipantMachine,
  decision: Decision,
  stored: StoredStatus | undefined,
  requestRef = 2,
): ParticipantEffect[] {
  return machine.step({
    kind: 'message-received',
    now,
    requestRef,
    message: { v: 1, kind: 'decision', txId, decision },
    stored,
  });
}

function statusReceived(
  machine: ParticipantMachine,
  state: TransactionState,
  at = now,
): ParticipantEffect[] {
  return machine.step({ kind: 'status-received', now: at, txId, state });
}

/** A machine that voted YES on `txId` at `now` and waits for the decision. */
function inDoubt(t: ExecutionContext): ParticipantMachine {
  const machine = ready(t);
  prepare(machine, undefined);
  machine.step({ kind: 'prepared-locally', now, requestRef: 1, txId, vote: 'yes' });
  t.is(machine.inDoubtCount, 1);
  return machine;
}

function voteYes(requestRef: number, id = txId): ParticipantEffect {
  return {
    kind: 'reply',
    requestRef,
    reply: { v: 1, kind: 'vote', participant: 'bank', txId: id, vote: 'yes' },
  };
}

function voteNo(requestRef: number, reason: string): ParticipantEffect {
  return {
    kind: 'reply',
    requestRef,
    reply: { v: 1, kind: 'vote', participant: 'bank', txId, vote: 'no', reason },
  };
}

function ackOf(requestRef: number, decision: Decision): ParticipantEffect {
  return {
    kind: 'reply',
    requestRef,
    reply: { v: 1, kind: 'ack', participant: 'bank', txId, decision },
  };
}

function protocolError(requestRef: number, message: string): ParticipantEffect {
  return {
    kind: 'reply',
    requestRef,
    reply: { v: 1, kind: 'error', code: 'invalid-request', message },
  };
}

function apply(decision: Decision, requestRef: number | undefined): ParticipantEffect {
  return { kind: 'apply-decision', requestRef, txId, decision };
}

// ---------------------------------------------------------------------------------------------
// PREPARE.

test('unknown PREPARE: prepare locally first, send nothing yet', (t) => {
  const machine = ready(t);
  t.deepEqual(prepare(machine, undefined), [
    { kind: 'prepare-locally', requestRef: 1, txId, payment },
  ]);
  t.is(machine.inDoubtCount, 0);
});

test('unknown PREPARE: a durable YES is then sent and the transaction is in doubt', (t) => {
  const machine = ready(t);
  prepare(machine, undefined);
  t.deepEqual(machine.step({ kind: 'prepared-locally', now, requestRef: 1, txId, vote: 'yes' }), [
    voteYes(1),
  ]);
  t.is(machine.inDoubtCount, 1);
  t.is(machine.nextDeadline(), now + config.inDoubtQueryAfterMs);
});

test('unknown PREPARE: a durable NO is sent with its reason and nothing is in doubt', (t) => {
  const machine = ready(t);
  prepare(machine, undefined);
  const input = { kind: 'prepared-locally', now, requestRef: 1, txId, vote: 'no' } as const;
  t.deepEqual(machine.step({ ...input, reason: 'insufficient funds' }), [
    voteNo(1, 'insufficient funds'),
  ]);
  t.is(machine.inDoubtCount, 0);
  t.is(machine.nextDeadline(), undefined);
});

test('unknown PREPARE: a NO without a reason says "refused"', (t) => {
  const machine = ready(t);
  prepare(machine, undefined);
  t.deepEqual(machine.step({ kind: 'prepared-locally', now, requestRef: 1, txId, vote: 'no' }), [
    voteNo(1, 'refused'),
  ]);
});

test('voted-yes PREPARE: reply YES again without preparing', (t) => {
  const machine = ready(t);
  t.deepEqual(prepare(machine, { status: 'voted-yes' }, 3), [voteYes(3)]);
});

test('voted-no PREPARE: reply NO again with the stored reason', (t) => {
  const machine = ready(t);
  t.deepEqual(prepare(machine, { status: 'voted-no', reason: 'insufficient funds' }, 3), [
    voteNo(3, 'insufficient funds'),
  ]);
});

test('aborted PREPARE: reply NO (a late PREPARE after its ABORT)', (t) => {
  const machine = ready(t);
  t.deepEqual(prepare(machine, { status: 'aborted' }, 3), [
    voteNo(3, 'transaction already aborted here'),
  ]);
});

test('committed PREPARE: reply YES again (stale duplicate)', (t) => {
  const machine = ready(t);
  t.deepEqual(prepare(machine, { status: 'committed' }, 3), [voteYes(3)]);
});

// ---------------------------------------------------------------------------------------------
// Decisions.

for (const decision of ['commit', 'abort'] as const) {
  test(`voted-yes ${decision}: apply the decision, then acknowledge`, (t) => {
    const machine = inDoubt(t);
    t.deepEqual(decide(machine, decision, { status: 'voted-yes' }), [apply(decision, 2)]);
    t.deepEqual(machine.step({ kind: 'decision-applied', now, requestRef: 2, txId, decision }), [
      ackOf(2, decision),
    ]);
    t.is(machine.inDoubtCount, 0);
    t.is(machine.nextDeadline(), undefined);
  });
}

test('unknown ABORT: apply it (tombstone), then acknowledge', (t) => {
  const machine = ready(t);
  t.deepEqual(decide(machine, 'abort', undefined), [apply('abort', 2)]);
  t.deepEqual(
    machine.step({ kind: 'decision-applied', now, requestRef: 2, txId, decision: 'abort' }),
    [ackOf(2, 'abort')],
  );
});

test('voted-no ABORT: acknowledge, nothing is held', (t) => {
  const machine = ready(t);
  const stored = { status: 'voted-no', reason: 'insufficient funds' } as const;
  t.deepEqual(decide(machine, 'abort', stored), [ackOf(2, 'abort')]);
});

test('committed COMMIT: acknowledge again', (t) => {
  const machine = ready(t);
  t.deepEqual(decide(machine, 'commit', { status: 'committed' }), [ackOf(2, 'commit')]);
});

test('aborted ABORT: acknowledge again', (t) => {
  const machine = ready(t);
  t.deepEqual(decide(machine, 'abort', { status: 'aborted' }), [ackOf(2, 'abort')]);
});

test('unknown COMMIT: error reply, the coordinator broke the protocol', (t) => {
  const machine = ready(t);
  t.deepEqual(decide(machine, 'commit', undefined), [
    protocolError(2, 'commit for a transaction that is unknown here'),
  ]);
});

test('voted-no COMMIT: error reply', (t) => {
  const machine = ready(t);
  t.deepEqual(decide(machine, 'commit', { status: 'voted-no', reason: 'no stock' }), [
    protocolError(2, 'commit for a transaction that is voted-no here'),
  ]);
});

test('aborted COMMIT: error reply', (t) => {
  const machine = ready(t);
  t.deepEqual(decide(machine, 'commit', { status: 'aborted' }), [
    protocolError(2, 'commit for a transaction that is aborted here'),
  ]);
});

test('forgotten PREPARE: reply NO, it is far past any deadline', (t) => {
  const machine = ready(t);
  t.deepEqual(prepare(machine, { status: 'forgotten' }, 3), [
    voteNo(3, 'transaction older than the barrier retention'),
  ]);
});

test('forgotten COMMIT and ABORT: ack, they were applied before the rows expired', (t) => {
  const machine = ready(t);
  t.deepEqual(decide(machine, 'commit', { status: 'forgotten' }), [ackOf(2, 'commit')]);
  t.deepEqual(decide(machine, 'abort', { status: 'forgotten' }), [ackOf(2, 'abort')]);
  t.is(machine.inDoubtCount, 0, 'nothing is held for a forgotten transaction');
});

test('committed ABORT: error reply', (t) => {
  const machine = ready(t);
  t.deepEqual(decide(machine, 'abort', { status: 'committed' }), [
    protocolError(2, 'abort for a transaction that is committed here'),
  ]);
});

// ---------------------------------------------------------------------------------------------
// Duplicates while executing.

test('a duplicate PREPARE while the first is prepared locally is dropped', (t) => {
  const machine = ready(t);
  prepare(machine, undefined, 1);
  t.deepEqual(prepare(machine, undefined, 2), []);
  machine.step({ kind: 'prepared-locally', now, requestRef: 1, txId, vote: 'yes' });
  t.deepEqual(prepare(machine, { status: 'voted-yes' }, 3), [voteYes(3)]);
});

test('a decision that arrives while the prepare is executing is dropped', (t) => {
  const machine = ready(t);
  prepare(machine, undefined, 1);
  t.deepEqual(decide(machine, 'abort', undefined, 2), []);
});

test('a duplicate decision while the first is applied is dropped', (t) => {
  const machine = inDoubt(t);
  decide(machine, 'commit', { status: 'voted-yes' }, 2);
  t.deepEqual(decide(machine, 'commit', { status: 'voted-yes' }, 3), []);
  t.deepEqual(prepare(machine, { status: 'voted-yes' }, 4), []);
  machine.step({ kind: 'decision-applied', now, requestRef: 2, txId, decision: 'commit' });
  t.deepEqual(decide(machine, 'commit', { status: 'committed' }, 5), [ackOf(5, 'commit')]);
});

test('other transactions are not held up by one being executed', (t) => {
  const machine = ready(t);
  prepare(machine, undefined, 1);
  t.deepEqual(prepare(machine, { status: 'voted-yes' }, 2, otherTxId), [voteYes(2, otherTxId)]);
});

test('a prepared-locally for a prepare that is not executing throws and changes nothing', (t) => {
  const machine = ready(t);
  const input = { kind: 'prepared-locally', now, requestRef: 1, txId, vote: 'yes' } as const;
  t.throws(() => machine.step(input), { instanceOf: AssertionError });
  t.is(machine.inDoubtCount, 0);
  t.is(machine.nextDeadline(), undefined);
});

// ---------------------------------------------------------------------------------------------
// A local transaction that could not begin (the database locked past the busy timeout).

const lockedText = 'locked by another process';

function unavailable(requestRef: number): ParticipantEffect {
  return {
    kind: 'reply',
    requestRef,
    reply: { v: 1, kind: 'error', code: 'unavailable', message: lockedText },
  };
}

function localFailed(machine: ParticipantMachine, requestRef: number | undefined) {
  return machine.step({ kind: 'local-failed', now, requestRef, txId, error: lockedText });
}

test('a failed prepare is answered unavailable, and the PREPARE sent again is executed anew', (t) => {
  const machine = ready(t);
  prepare(machine, undefined, 1);
  t.deepEqual(localFailed(machine, 1), [unavailable(1)]);
  t.is(machine.inDoubtCount, 0, 'nothing was voted');
  t.is(machine.nextDeadline(), undefined);
  t.deepEqual(prepare(machine, undefined, 2), [
    { kind: 'prepare-locally', requestRef: 2, txId, payment },
  ]);
  machine.step({ kind: 'prepared-locally', now, requestRef: 2, txId, vote: 'yes' });
  t.true(machine.isInDoubt(txId));
});

test('a failed decision is answered unavailable and leaves the transaction in doubt', (t) => {
  const machine = inDoubt(t);
  decide(machine, 'commit', { status: 'voted-yes' }, 2);
  t.deepEqual(localFailed(machine, 2), [unavailable(2)]);
  t.true(machine.isInDoubt(txId));
  t.is(machine.nextDeadline(), now + config.inDoubtQueryAfterMs, 'queried when its time comes');
  t.deepEqual(decide(machine, 'commit', { status: 'voted-yes' }, 3), [apply('commit', 3)]);
});

test('a failed decision from a status answer has no one to answer, and is queried again', (t) => {
  const machine = inDoubt(t);
  const at = now + config.inDoubtQueryAfterMs;
  t.deepEqual(machine.step({ kind: 'tick', now: at }), [{ kind: 'query-status', txId }]);
  statusReceived(machine, 'committed', at);
  t.deepEqual(localFailed(machine, undefined), []);
  t.true(machine.isInDoubt(txId));
  const next = machine.nextDeadline() ?? Number.NaN;
  t.true(next > at, 'at the next step of its backoff');
  t.deepEqual(machine.step({ kind: 'tick', now: next }), [{ kind: 'query-status', txId }]);
});

test('a local-failed for a step that is not executing throws', (t) => {
  const machine = ready(t);
  t.throws(() => localFailed(machine, 1), { instanceOf: AssertionError });
});

// ---------------------------------------------------------------------------------------------
// In doubt: asking the coordinator.

test('an in-doubt transaction is queried only after inDoubtQueryAfterMs', (t) => {
  const machine = inDoubt(t);
  t.deepEqual(machine.step({ kind: 'tick', now: now + config.inDoubtQueryAfterMs - 1 }), []);
  t.deepEqual(machine.step({ kind: 'tick', now: now + config.inDoubtQueryAfterMs }), [
    { kind: 'query-status', txId },
  ]);
});

test('in-doubt queries back off, doubling up to inDoubtQueryMsMax', (t) => {
  const machine = inDoubt(t);
  let at = now;
  const delays: number[] = [];
  for (let attempt = 0; attempt < 6; attempt += 1) {
    const due = machine.nextDeadline() ?? Number.NaN;
    delays.push(due - at);
    t.deepEqual(machine.step({ kind: 'tick', now: due - 1 }), [], 'not before it is due');
    at = due;
    t.deepEqual(machine.step({ kind: 'tick', now: at }), [{ kind: 'query-status', txId }]);
  }
  t.deepEqual(delays, [1_000, 1_000, 2_000, 4_000, 8_000, 8_000]);
});

test('a failed query is retried at the next backoff step, not at once', (t) => {
  const machine = inDoubt(t);
  const at = now + config.inDoubtQueryAfterMs;
  machine.step({ kind: 'tick', now: at });
  t.deepEqual(machine.step({ kind: 'status-failed', now: at + 5, txId }), []);
  t.deepEqual(machine.step({ kind: 'tick', now: at + 5 }), []);
  t.is(machine.nextDeadline(), at + config.inDoubtQueryAfterMs);
});

test('status committed applies COMMIT without a request to answer', (t) => {
  const machine = inDoubt(t);
  t.deepEqual(statusReceived(machine, 'committed'), [apply('commit', undefined)]);
  t.deepEqual(
    machine.step({
      kind: 'decision-applied',
      now,
      requestRef: undefined,
      txId,
      decision: 'commit',
    }),
    [],
  );
  t.is(machine.inDoubtCount, 0);
  t.is(machine.nextDeadline(), undefined);
});

test('status aborted applies ABORT', (t) => {
  const machine = inDoubt(t);
  t.deepEqual(statusReceived(machine, 'aborted'), [apply('abort', undefined)]);
});

test('status unknown applies ABORT (presumed abort)', (t) => {
  const machine = inDoubt(t);
  t.deepEqual(statusReceived(machine, 'unknown'), [apply('abort', undefined)]);
});

test('status preparing keeps the transaction in doubt and changes nothing', (t) => {
  const machine = inDoubt(t);
  const before = machine.nextDeadline();
  t.deepEqual(statusReceived(machine, 'preparing'), []);
  t.is(machine.inDoubtCount, 1);
  t.is(machine.nextDeadline(), before);
});

test('a status for a transaction not in doubt is ignored', (t) => {
  const machine = ready(t);
  t.deepEqual(statusReceived(machine, 'committed'), []);
});

test('a second status while the decision is applied is ignored, and so are ticks', (t) => {
  const machine = inDoubt(t);
  statusReceived(machine, 'committed');
  t.deepEqual(statusReceived(machine, 'committed'), []);
  t.deepEqual(machine.step({ kind: 'tick', now: now + 60_000 }), []);
});

test('a transaction whose decision is being applied sets no deadline until it is applied', (t) => {
  const machine = inDoubt(t);
  t.is(machine.nextDeadline(), now + config.inDoubtQueryAfterMs);
  decide(machine, 'commit', { status: 'voted-yes' });
  // Held back by the shell for the next write, its query deadline would be past by then.
  t.is(machine.nextDeadline(), undefined);
  t.deepEqual(machine.step({ kind: 'tick', now: now + 60_000 }), []);
});

test('a status that arrives while the COMMIT message is applied is ignored', (t) => {
  const machine = inDoubt(t);
  decide(machine, 'commit', { status: 'voted-yes' });
  t.deepEqual(statusReceived(machine, 'committed'), []);
});

// ---------------------------------------------------------------------------------------------
// Recovery.

test('recovered in-doubt transactions are queried as soon as recovery finishes', (t) => {
  const machine = new ParticipantMachine(config);
  t.deepEqual(machine.step({ kind: 'in-doubt-recovered', txId }), []);
  t.deepEqual(machine.step({ kind: 'in-doubt-recovered', txId: otherTxId }), []);
  t.deepEqual(machine.step({ kind: 'recovery-finished', now }), [
    { kind: 'query-status', txId },
    { kind: 'query-status', txId: otherTxId },
  ]);
  t.is(machine.inDoubtCount, 2);
  t.is(machine.nextDeadline(), now + config.inDoubtQueryAfterMs);
});

test('a recovered in-doubt transaction is settled by the status answer', (t) => {
  const machine = new ParticipantMachine(config);
  machine.step({ kind: 'in-doubt-recovered', txId });
  machine.step({ kind: 'recovery-finished', now });
  t.deepEqual(statusReceived(machine, 'aborted'), [apply('abort', undefined)]);
});

test('inputs before recovery-finished throw', (t) => {
  const machine = new ParticipantMachine(config);
  t.throws(() => prepare(machine, undefined), { instanceOf: AssertionError });
  t.throws(() => machine.step({ kind: 'tick', now }), { instanceOf: AssertionError });
  t.deepEqual(machine.step({ kind: 'recovery-finished', now }), []);
});

test('in-doubt records after recovery-finished throw', (t) => {
  const machine = ready(t);
  t.throws(() => machine.step({ kind: 'in-doubt-recovered', txId }), {
    instanceOf: AssertionError,
  });
  t.is(machine.inDoubtCount, 0);
});

test('recovery finishes only once', (t) => {
  const machine = ready(t);
  t.throws(() => machine.step({ kind: 'recovery-finished', now }), { instanceOf: AssertionError });
});

test('isInDoubt: from a durable YES (or recovery) until the decision is applied', (t) => {
  const machine = ready(t);
  prepare(machine, undefined);
  t.false(machine.isInDoubt(txId), 'not while the prepare is being executed');
  machine.step({ kind: 'prepared-locally', now, requestRef: 1, txId, vote: 'yes' });
  t.true(machine.isInDoubt(txId));
  t.false(machine.isInDoubt(otherTxId));
  decide(machine, 'commit', { status: 'voted-yes' });
  t.true(machine.isInDoubt(txId), 'still in doubt while the decision is being applied');
  machine.step({ kind: 'decision-applied', now, requestRef: 2, txId, decision: 'commit' });
  t.false(machine.isInDoubt(txId));

  const refused = ready(t);
  prepare(refused, undefined);
  refused.step({ kind: 'prepared-locally', now, requestRef: 1, txId, vote: 'no', reason: 'x' });
  t.false(refused.isInDoubt(txId), 'a NO vote is never in doubt');

  const recovered = new ParticipantMachine(config);
  recovered.step({ kind: 'in-doubt-recovered', txId });
  t.true(recovered.isInDoubt(txId));
});
