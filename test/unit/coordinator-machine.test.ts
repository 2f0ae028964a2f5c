/**
 * The coordinator's state machine, driven with scripted inputs. Each test compares the exact
 * effects the machine asks for: the machine is pure, so no mocks are needed.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { AssertionError } from '../../common/assert.ts';
import { paymentFingerprint } from '../../common/protocol.ts';
import type {
  Decision,
  ParticipantName,
  Payment,
  PayRequest,
  StatusReply,
} from '../../common/protocol.ts';
import { CoordinatorMachine, RecoveryRejectedError } from '../../coordinator/core/machine.ts';
import type {
  CoordinatorConfig,
  CoordinatorEffect,
  JournalRecord,
  StoredPayment,
} from '../../coordinator/core/types.ts';

const now = 1_700_000_000_000;
const txId = '01HZX3V2M8Q4J7K9N0P5R6S7T8';
const otherTxId = '01HZX3V2M8Q4J7K9N0P5R6S7T9';
const thirdTxId = '01HZX3V2M8Q4J7K9N0P5R6S7TA';
const everyone: readonly ParticipantName[] = ['bank', 'vendor', 'customer'];
const timeoutMs = 5_000;

const config: CoordinatorConfig = {
  participants: everyone,
  prepareResendMs: 1_000,
  decisionResendMsMin: 500,
  decisionResendMsMax: 8_000,
  inFlightMax: 10,
  waitersPerTransactionMax: 8,
};

const payment: Payment = {
  payer: 'alice',
  payee: 'acme',
  amountMinor: 2_500,
  currency: 'EUR',
  orderId: 'order-1',
  lines: [
    { sku: 'widget', quantity: 2, unitPriceMinor: 1_000 },
    { sku: 'gadget', quantity: 1, unitPriceMinor: 500 },
  ],
};
const otherPayment: Payment = { ...payment, amountMinor: 2_501 };

const key = 'key-0000000000000001';
const otherKey = 'key-0000000000000002';

function payRequest(idempotencyKey = key, paid: Payment = payment): PayRequest {
  return { v: 1, kind: 'pay', clientId: 'shop', idempotencyKey, payment: paid };
}

/** A machine that has finished an empty recovery and accepts normal inputs. */
function ready(t: ExecutionContext, chosen: CoordinatorConfig = config): CoordinatorMachine {
  const machine = new CoordinatorMachine(chosen);
  t.deepEqual(machine.step({ kind: 'recovery-finished', now }), []);
  return machine;
}

function pay(
  machine: CoordinatorMachine,
  options: {
    at?: number;
    requestRef?: number;
    request?: PayRequest;
    newTxId?: string;
    stored?: StoredPayment;
  } = {},
): CoordinatorEffect[] {
  return machine.step({
    kind: 'pay-requested',
    now: options.at ?? now,
    requestRef: options.requestRef ?? 1,
    request: options.request ?? payRequest(),
    newTxId: options.newTxId ?? txId,
    stored: options.stored,
  });
}

function vote(
  machine: CoordinatorMachine,
  participant: ParticipantName,
  value: 'yes' | 'no',
  at = now + 10,
  reason?: string,
): CoordinatorEffect[] {
  return machine.step({
    kind: 'vote-received',
    now: at,
    txId,
    participant,
    vote: value,
    ...(reason === undefined ? {} : { reason }),
  });
}

function ack(
  machine: CoordinatorMachine,
  participant: ParticipantName,
  decision: Decision,
  at = now + 20,
  id = txId,
): CoordinatorEffect[] {
  return machine.step({ kind: 'ack-received', now: at, txId: id, participant, decision });
}

/** A machine with one transaction (`txId`) that every participant voted YES on. */
function committing(t: ExecutionContext): CoordinatorMachine {
  const machine = ready(t);
  pay(machine);
  for (const name of everyone) vote(machine, name, 'yes');
  t.true(machine.isInFlight(txId));
  return machine;
}

function beginRecord(id = txId, createdAt = now): JournalRecord {
  return {
    kind: 'begin',
    txId: id,
    clientId: 'shop',
    idempotencyKey: key,
    fingerprint: paymentFingerprint(payment),
    payment,
    participants: everyone,
    createdAt,
    deadlineAt: createdAt + timeoutMs,
  };
}

function prepareTo(participant: ParticipantName, id = txId): CoordinatorEffect {
  return { kind: 'send', participant, message: { v: 1, kind: 'prepare', txId: id, payment } };
}

function decisionTo(
  participant: ParticipantName,
  decision: Decision,
  id = txId,
): CoordinatorEffect {
  return { kind: 'send', participant, message: { v: 1, kind: 'decision', txId: id, decision } };
}

function committedReply(requestRef: number, replay: boolean): CoordinatorEffect {
  return {
    kind: 'reply',
    requestRef,
    reply: {
      v: 1,
      kind: 'outcome',
      txId,
      idempotencyKey: key,
      outcome: 'committed',
      receipt: `rcpt-${txId}`,
      replay,
    },
  };
}

function statusReply(requestRef: number, reply: StatusReply): CoordinatorEffect {
  return { kind: 'reply', requestRef, reply };
}

// ---------------------------------------------------------------------------------------------
// A payment's normal life.

test('a new payment journals begin (forced) and then sends PREPARE to every participant', (t) => {
  const machine = ready(t);
  t.deepEqual(pay(machine), [
    { kind: 'journal', record: beginRecord(), forced: true },
    prepareTo('bank'),
    prepareTo('vendor'),
    prepareTo('customer'),
  ]);
  t.true(machine.isInFlight(txId));
});

test('a payment with its own timeout journals that deadline', (t) => {
  const machine = ready(t);
  const effects = pay(machine, { request: { ...payRequest(), timeoutMs: 250 } });
  t.deepEqual(effects[0], {
    kind: 'journal',
    record: { ...beginRecord(), deadlineAt: now + 250 },
    forced: true,
  });
});

test('YES votes before the last one produce no effects', (t) => {
  const machine = ready(t);
  pay(machine);
  t.deepEqual(vote(machine, 'bank', 'yes'), []);
  t.deepEqual(vote(machine, 'vendor', 'yes'), []);
});

test('the last YES journals COMMIT (forced), replies with a receipt, then sends COMMIT', (t) => {
  const machine = ready(t);
  pay(machine);
  vote(machine, 'bank', 'yes');
  vote(machine, 'vendor', 'yes');
  t.deepEqual(vote(machine, 'customer', 'yes', now + 30), [
    {
      kind: 'journal',
      record: { kind: 'decided', txId, decision: 'commit', decidedAt: now + 30 },
      forced: true,
    },
    committedReply(1, false),
    decisionTo('bank', 'commit'),
    decisionTo('vendor', 'commit'),
    decisionTo('customer', 'commit'),
  ]);
});

test('acknowledgements from everyone complete the transaction, not forced', (t) => {
  const machine = committing(t);
  t.deepEqual(ack(machine, 'bank', 'commit'), []);
  t.deepEqual(ack(machine, 'customer', 'commit'), []);
  t.true(machine.isInFlight(txId));
  t.deepEqual(ack(machine, 'vendor', 'commit', now + 40), [
    { kind: 'journal', record: { kind: 'completed', txId, completedAt: now + 40 }, forced: false },
  ]);
  t.false(machine.isInFlight(txId));
  t.is(machine.nextDeadline(), undefined);
  t.deepEqual(machine.inspect(now + 40), []);
});

// ---------------------------------------------------------------------------------------------
// Aborts.

test('a NO vote aborts, naming the participant and its reason', (t) => {
  const machine = ready(t);
  pay(machine);
  vote(machine, 'bank', 'yes');
  t.deepEqual(vote(machine, 'vendor', 'no', now + 30, 'out of stock'), [
    {
      kind: 'journal',
      record: {
        kind: 'decided',
        txId,
        decision: 'abort',
        abortedBy: 'vendor',
        reason: 'out of stock',
        decidedAt: now + 30,
      },
      forced: true,
    },
    {
      kind: 'reply',
      requestRef: 1,
      reply: {
        v: 1,
        kind: 'outcome',
        txId,
        idempotencyKey: key,
        outcome: 'aborted',
        abortedBy: 'vendor',
        reason: 'out of stock',
        replay: false,
      },
    },
    decisionTo('bank', 'abort'),
    decisionTo('customer', 'abort'),
  ]);
});

test('a NO vote without a reason is reported as "voted no"', (t) => {
  const machine = ready(t);
  pay(machine);
  const effects = vote(machine, 'customer', 'no');
  t.deepEqual(effects[0], {
    kind: 'journal',
    record: {
      kind: 'decided',
      txId,
      decision: 'abort',
      abortedBy: 'customer',
      reason: 'voted no',
      decidedAt: now + 10,
    },
    forced: true,
  });
});

test('the participant that voted NO is not told ABORT and is not awaited', (t) => {
  const machine = ready(t);
  pay(machine);
  vote(machine, 'vendor', 'no', now + 10, 'out of stock');
  t.deepEqual(machine.inspect(now + 10)[0]?.waitingFor, ['bank', 'customer']);
  t.deepEqual(ack(machine, 'vendor', 'abort'), []);
  t.deepEqual(ack(machine, 'bank', 'abort'), []);
  t.deepEqual(ack(machine, 'customer', 'abort', now + 50), [
    { kind: 'journal', record: { kind: 'completed', txId, completedAt: now + 50 }, forced: false },
  ]);
});

test('a NO from the only participant completes at once: nobody is left to tell', (t) => {
  const machine = ready(t, { ...config, participants: ['bank'] });
  pay(machine);
  t.deepEqual(vote(machine, 'bank', 'no', now + 10, 'insufficient funds'), [
    {
      kind: 'journal',
      record: {
        kind: 'decided',
        txId,
        decision: 'abort',
        abortedBy: 'bank',
        reason: 'insufficient funds',
        decidedAt: now + 10,
      },
      forced: true,
    },
    {
      kind: 'reply',
      requestRef: 1,
      reply: {
        v: 1,
        kind: 'outcome',
        txId,
        idempotencyKey: key,
        outcome: 'aborted',
        abortedBy: 'bank',
        reason: 'insufficient funds',
        replay: false,
      },
    },
    { kind: 'journal', record: { kind: 'completed', txId, completedAt: now + 10 }, forced: false },
  ]);
  t.false(machine.isInFlight(txId));
});

test('a tick at the deadline aborts by coordinator, naming the silent participants', (t) => {
  const machine = ready(t);
  pay(machine);
  vote(machine, 'bank', 'yes');
  t.deepEqual(machine.step({ kind: 'tick', now: now + timeoutMs - 1 }), [
    prepareTo('vendor'),
    prepareTo('customer'),
  ]);
  const reason = 'deadline passed without a vote from vendor, customer';
  t.deepEqual(machine.step({ kind: 'tick', now: now + timeoutMs }), [
    {
      kind: 'journal',
      record: {
        kind: 'decided',
        txId,
        decision: 'abort',
        abortedBy: 'coordinator',
        reason,
        decidedAt: now + timeoutMs,
      },
      forced: true,
    },
    {
      kind: 'reply',
      requestRef: 1,
      reply: {
        v: 1,
        kind: 'outcome',
        txId,
        idempotencyKey: key,
        outcome: 'aborted',
        abortedBy: 'coordinator',
        reason,
        replay: false,
      },
    },
    decisionTo('bank', 'abort'),
    decisionTo('vendor', 'abort'),
    decisionTo('customer', 'abort'),
  ]);
});

// ---------------------------------------------------------------------------------------------
// Re-sends.

test('PREPARE is re-sent at prepareResendMs, only to participants that have not voted', (t) => {
  const machine = ready(t);
  pay(machine);
  t.is(machine.nextDeadline(), now + 1_000);
  vote(machine, 'vendor', 'yes');
  t.deepEqual(machine.step({ kind: 'tick', now: now + 999 }), []);
  t.deepEqual(machine.step({ kind: 'tick', now: now + 1_000 }), [
    prepareTo('bank'),
    prepareTo('customer'),
  ]);
  t.is(machine.nextDeadline(), now + 2_000);
  const [view] = machine.inspect(now + 1_000);
  t.is(view?.sendAttempts, 2);
  t.deepEqual(view?.waitingFor, ['bank', 'customer']);
});

test('the deadline is the next deadline when it comes before the PREPARE re-send', (t) => {
  const machine = ready(t);
  pay(machine, { request: { ...payRequest(), timeoutMs: 300 } });
  t.is(machine.nextDeadline(), now + 300);
});

test('a decision is re-sent to those that have not acknowledged, first after the minimum', (t) => {
  const machine = committing(t);
  ack(machine, 'vendor', 'commit', now + 10);
  t.is(machine.nextDeadline(), now + 10 + config.decisionResendMsMin);
  t.deepEqual(machine.step({ kind: 'tick', now: now + 10 + config.decisionResendMsMin - 1 }), []);
  t.deepEqual(machine.step({ kind: 'tick', now: now + 10 + config.decisionResendMsMin }), [
    decisionTo('bank', 'commit'),
    decisionTo('customer', 'commit'),
  ]);
});

test('decision re-sends back off: delays double up to the maximum, within the bounds', (t) => {
  const machine = committing(t);
  const { decisionResendMsMin: min, decisionResendMsMax: max } = config;
  let at = now + 10;
  const delays: number[] = [];
  for (let attempt = 0; attempt < 12; attempt += 1) {
    const due = machine.nextDeadline() ?? Number.NaN;
    delays.push(due - at);
    at = due;
    t.is(machine.step({ kind: 'tick', now: at }).length, everyone.length);
  }
  t.log('delays', delays.join(', '));
  t.is(delays[0], min);
  delays.forEach((delay, index) => {
    t.true(delay >= min && delay <= max, `delay ${index} is ${delay}, outside [${min}, ${max}]`);
    // Attempt n waits between half and all of min * 2^(n-1), capped at the maximum.
    const ceiling = Math.min(max, min * 2 ** index);
    t.true(delay <= ceiling, `delay ${index} is ${delay}, above ${ceiling}`);
    t.true(delay >= Math.max(min, ceiling / 2), `delay ${index} is ${delay}, below ${ceiling / 2}`);
  });
  // While below the cap the delays never shrink.
  const growing = delays.slice(0, 4);
  t.deepEqual(
    growing,
    [...growing].sort((a, b) => a - b),
  );
  t.true(Math.max(...delays) > max / 2, 'the backoff reaches the upper half of the cap');
  t.is(machine.inspect(at)[0]?.sendAttempts, 13);
});

test('a send failure is recorded for operators and produces no effects', (t) => {
  const machine = ready(t);
  pay(machine);
  const failed = { kind: 'send-failed', now: now + 5, txId, participant: 'bank' } as const;
  t.deepEqual(machine.step({ ...failed, error: 'no responders' }), []);
  t.is(machine.inspect(now + 5)[0]?.lastError, 'no responders');
});

// ---------------------------------------------------------------------------------------------
// Duplicates and stale messages.

test('a duplicate vote produces no effects and does not count twice', (t) => {
  const machine = ready(t);
  pay(machine);
  vote(machine, 'bank', 'yes');
  vote(machine, 'vendor', 'yes');
  t.deepEqual(vote(machine, 'bank', 'yes'), []);
  t.deepEqual(vote(machine, 'vendor', 'no', now + 10, 'changed its mind'), []);
  t.deepEqual(machine.inspect(now + 10)[0]?.waitingFor, ['customer']);
});

test('a vote after the decision produces no effects', (t) => {
  const machine = ready(t);
  pay(machine);
  vote(machine, 'bank', 'no', now + 10, 'insufficient funds');
  t.deepEqual(vote(machine, 'vendor', 'yes'), []);
  t.deepEqual(vote(machine, 'customer', 'no', now + 10, 'late'), []);
});

test('a vote for an unknown transaction produces no effects', (t) => {
  const machine = ready(t);
  const input = { kind: 'vote-received', now, txId: otherTxId, participant: 'bank' } as const;
  t.deepEqual(machine.step({ ...input, vote: 'yes' }), []);
});

test('a vote from a participant outside the transaction produces no effects', (t) => {
  const machine = ready(t, { ...config, participants: ['bank', 'vendor'] });
  pay(machine);
  vote(machine, 'bank', 'yes');
  t.deepEqual(vote(machine, 'customer', 'yes'), []);
  t.deepEqual(machine.inspect(now)[0]?.phase, 'preparing');
});

test('duplicate, mismatched and stale acknowledgements produce no effects', (t) => {
  const machine = committing(t);
  t.deepEqual(ack(machine, 'bank', 'commit'), []);
  t.deepEqual(ack(machine, 'bank', 'commit'), [], 'duplicate');
  t.deepEqual(ack(machine, 'vendor', 'abort'), [], 'other decision');
  t.deepEqual(ack(machine, 'vendor', 'commit', now, otherTxId), [], 'unknown transaction');
  t.deepEqual(machine.inspect(now)[0]?.waitingFor, ['vendor', 'customer']);
  ack(machine, 'vendor', 'commit');
  ack(machine, 'customer', 'commit');
  t.false(machine.isInFlight(txId));
  t.deepEqual(ack(machine, 'customer', 'commit'), [], 'after completion');
});

test('an acknowledgement before the decision produces no effects', (t) => {
  const machine = ready(t);
  pay(machine);
  t.deepEqual(ack(machine, 'bank', 'abort'), []);
  t.deepEqual(machine.inspect(now)[0]?.phase, 'preparing');
});

// ---------------------------------------------------------------------------------------------
// Idempotency keys.

test('the same key and payment while in flight joins the transaction', (t) => {
  const machine = ready(t);
  pay(machine, { requestRef: 1 });
  t.deepEqual(pay(machine, { requestRef: 2, newTxId: otherTxId }), []);
  t.false(machine.isInFlight(otherTxId));
  vote(machine, 'bank', 'yes');
  vote(machine, 'vendor', 'yes');
  t.deepEqual(vote(machine, 'customer', 'yes', now + 30), [
    {
      kind: 'journal',
      record: { kind: 'decided', txId, decision: 'commit', decidedAt: now + 30 },
      forced: true,
    },
    committedReply(1, false),
    committedReply(2, false),
    decisionTo('bank', 'commit'),
    decisionTo('vendor', 'commit'),
    decisionTo('customer', 'commit'),
  ]);
});

test('the same key and payment after the decision, still in flight, replays the outcome', (t) => {
  const machine = committing(t);
  t.deepEqual(pay(machine, { requestRef: 3, newTxId: otherTxId }), [committedReply(3, true)]);
  t.false(machine.isInFlight(otherTxId));
});

test('the same key with a different payment while in flight is a key mismatch', (t) => {
  const machine = ready(t);
  pay(machine);
  const request = payRequest(key, otherPayment);
  t.deepEqual(pay(machine, { requestRef: 2, request, newTxId: otherTxId }), [
    {
      kind: 'reply',
      requestRef: 2,
      reply: {
        v: 1,
        kind: 'error',
        code: 'key-mismatch',
        message: `idempotency key ${key} was used for a different payment`,
      },
    },
  ]);
  t.false(machine.isInFlight(otherTxId));
});

test('a key the journal holds with its decision replays the outcome and sends nothing', (t) => {
  const machine = ready(t);
  const stored: StoredPayment = {
    txId,
    clientId: 'shop',
    idempotencyKey: key,
    fingerprint: paymentFingerprint(payment),
    decided: { decision: 'commit' },
  };
  t.deepEqual(pay(machine, { requestRef: 4, newTxId: otherTxId, stored }), [
    committedReply(4, true),
  ]);
  t.is(machine.inFlightCount, 0);
});

test('a replayed abort carries who aborted and why', (t) => {
  const machine = ready(t);
  const stored: StoredPayment = {
    txId,
    clientId: 'shop',
    idempotencyKey: key,
    fingerprint: paymentFingerprint(payment),
    decided: { decision: 'abort', abortedBy: 'bank', reason: 'insufficient funds' },
  };
  t.deepEqual(pay(machine, { requestRef: 4, newTxId: otherTxId, stored }), [
    {
      kind: 'reply',
      requestRef: 4,
      reply: {
        v: 1,
        kind: 'outcome',
        txId,
        idempotencyKey: key,
        outcome: 'aborted',
        abortedBy: 'bank',
        reason: 'insufficient funds',
        replay: true,
      },
    },
  ]);
});

test('a key the journal holds for a different payment is a key mismatch', (t) => {
  const machine = ready(t);
  const stored: StoredPayment = {
    txId,
    clientId: 'shop',
    idempotencyKey: key,
    fingerprint: paymentFingerprint(otherPayment),
    decided: { decision: 'commit' },
  };
  t.deepEqual(pay(machine, { requestRef: 4, newTxId: otherTxId, stored }), [
    {
      kind: 'reply',
      requestRef: 4,
      reply: {
        v: 1,
        kind: 'error',
        code: 'key-mismatch',
        message: `idempotency key ${key} was used for a different payment`,
      },
    },
  ]);
  t.is(machine.inFlightCount, 0);
});

test('at inFlightMax a new payment is refused as overloaded and nothing is journaled', (t) => {
  const machine = ready(t, { ...config, inFlightMax: 1 });
  pay(machine);
  const request = payRequest(otherKey);
  t.deepEqual(pay(machine, { requestRef: 2, request, newTxId: otherTxId }), [
    {
      kind: 'reply',
      requestRef: 2,
      reply: { v: 1, kind: 'error', code: 'overloaded', message: 'too many payments in flight' },
    },
  ]);
  t.false(machine.isInFlight(otherTxId));
  t.is(machine.inFlightCount, 1);
});

test('at inFlightMax the same key still joins its transaction instead of being refused', (t) => {
  const machine = ready(t, { ...config, inFlightMax: 1 });
  pay(machine);
  t.deepEqual(pay(machine, { requestRef: 2, newTxId: otherTxId }), []);
  t.is(machine.inFlightCount, 1);
});

test('at inFlightMax a key the journal holds is still answered from the journal', (t) => {
  const machine = ready(t, { ...config, inFlightMax: 1 });
  pay(machine);
  const stored: StoredPayment = {
    txId,
    clientId: 'other-shop',
    idempotencyKey: key,
    fingerprint: paymentFingerprint(payment),
    decided: { decision: 'commit' },
  };
  const request = payRequest(key);
  const effects = pay(machine, { request: { ...request, clientId: 'other-shop' }, stored });
  t.deepEqual(effects, [committedReply(1, true)]);
});

test('below inFlightMax payments with different keys run side by side', (t) => {
  const machine = ready(t, { ...config, inFlightMax: 2 });
  pay(machine);
  const request = payRequest(otherKey);
  t.is(pay(machine, { requestRef: 2, request, newTxId: otherTxId }).length, 4);
  t.is(machine.inFlightCount, 2);
});

// ---------------------------------------------------------------------------------------------
// Status queries.

test('status of an undecided transaction in flight is preparing, by id and by key', (t) => {
  const machine = ready(t);
  pay(machine);
  const base = { kind: 'status-requested', now, stored: undefined } as const;
  t.deepEqual(machine.step({ ...base, requestRef: 5, query: { txId } }), [
    statusReply(5, { v: 1, kind: 'status', txId, state: 'preparing' }),
  ]);
  t.deepEqual(
    machine.step({ ...base, requestRef: 6, query: { clientId: 'shop', idempotencyKey: key } }),
    [statusReply(6, { v: 1, kind: 'status', txId, state: 'preparing' })],
  );
});

test('status of a decided transaction still in flight is its outcome', (t) => {
  const machine = committing(t);
  const base = { kind: 'status-requested', now, stored: undefined } as const;
  t.deepEqual(machine.step({ ...base, requestRef: 5, query: { txId } }), [
    statusReply(5, { v: 1, kind: 'status', txId, state: 'committed' }),
  ]);
});

test('status of a stored transaction is its outcome with who aborted and why', (t) => {
  const machine = ready(t);
  const stored: StoredPayment = {
    txId,
    clientId: 'shop',
    idempotencyKey: key,
    fingerprint: paymentFingerprint(payment),
    decided: { decision: 'abort', abortedBy: 'coordinator', reason: 'deadline passed' },
  };
  const query = { clientId: 'shop', idempotencyKey: key };
  t.deepEqual(machine.step({ kind: 'status-requested', now, requestRef: 5, query, stored }), [
    statusReply(5, {
      v: 1,
      kind: 'status',
      txId,
      state: 'aborted',
      abortedBy: 'coordinator',
      reason: 'deadline passed',
    }),
  ]);
});

test('status of an unknown transaction is unknown (presumed abort)', (t) => {
  const machine = ready(t);
  const base = { kind: 'status-requested', now, stored: undefined } as const;
  t.deepEqual(machine.step({ ...base, requestRef: 5, query: { txId: thirdTxId } }), [
    statusReply(5, { v: 1, kind: 'status', txId: thirdTxId, state: 'unknown' }),
  ]);
  t.deepEqual(
    machine.step({ ...base, requestRef: 6, query: { clientId: 'shop', idempotencyKey: key } }),
    [statusReply(6, { v: 1, kind: 'status', txId: null, state: 'unknown' })],
  );
});

test('a client asking by transaction id sees its own transaction, in flight or stored', (t) => {
  const machine = ready(t);
  pay(machine);
  const base = { kind: 'status-requested', now, stored: undefined } as const;
  t.deepEqual(machine.step({ ...base, requestRef: 5, query: { txId, clientId: 'shop' } }), [
    statusReply(5, { v: 1, kind: 'status', txId, state: 'preparing' }),
  ]);
  const stored: StoredPayment = {
    txId: otherTxId,
    clientId: 'shop',
    idempotencyKey: otherKey,
    fingerprint: paymentFingerprint(payment),
    decided: { decision: 'commit' },
  };
  const query = { txId: otherTxId, clientId: 'shop' };
  t.deepEqual(machine.step({ ...base, requestRef: 6, query, stored }), [
    statusReply(6, { v: 1, kind: 'status', txId: otherTxId, state: 'committed' }),
  ]);
});

test('another client asking by transaction id is told unknown, in flight or stored', (t) => {
  const machine = ready(t);
  pay(machine);
  const base = { kind: 'status-requested', now, stored: undefined } as const;
  // The same answer as for an id nobody ever used: nothing about the other client leaks.
  t.deepEqual(machine.step({ ...base, requestRef: 5, query: { txId, clientId: 'thief' } }), [
    statusReply(5, { v: 1, kind: 'status', txId, state: 'unknown' }),
  ]);
  const stored: StoredPayment = {
    txId: otherTxId,
    clientId: 'shop',
    idempotencyKey: otherKey,
    fingerprint: paymentFingerprint(payment),
    decided: { decision: 'abort', abortedBy: 'bank', reason: 'insufficient funds' },
  };
  const query = { txId: otherTxId, clientId: 'thief' };
  t.deepEqual(machine.step({ ...base, requestRef: 6, query, stored }), [
    statusReply(6, { v: 1, kind: 'status', txId: otherTxId, state: 'unknown' }),
  ]);
  // A service asking by id (no client) still sees every transaction.
  t.deepEqual(machine.step({ ...base, requestRef: 7, query: { txId: otherTxId }, stored }), [
    statusReply(7, {
      v: 1,
      kind: 'status',
      txId: otherTxId,
      state: 'aborted',
      abortedBy: 'bank',
      reason: 'insufficient funds',
    }),
  ]);
  t.true(machine.isInFlight(txId), 'the question changed nothing');
});

test("a key is looked up in the asking client's scope only", (t) => {
  const machine = ready(t);
  pay(machine);
  const base = { kind: 'status-requested', now, stored: undefined } as const;
  const query = { clientId: 'thief', idempotencyKey: key };
  t.deepEqual(machine.step({ ...base, requestRef: 5, query }), [
    statusReply(5, { v: 1, kind: 'status', txId: null, state: 'unknown' }),
  ]);
});

// ---------------------------------------------------------------------------------------------
// Recovery.

function recover(machine: CoordinatorMachine, records: readonly JournalRecord[]): void {
  for (const record of records) {
    machine.step({ kind: 'record-recovered', record });
  }
}

const later = now + 60_000;

test('recovery of a begin without a decision aborts it (forced) and tells everyone', (t) => {
  const machine = new CoordinatorMachine(config);
  t.deepEqual(machine.step({ kind: 'record-recovered', record: beginRecord() }), []);
  const reason = 'coordinator restarted before a decision';
  t.deepEqual(machine.step({ kind: 'recovery-finished', now: later }), [
    {
      kind: 'journal',
      record: {
        kind: 'decided',
        txId,
        decision: 'abort',
        abortedBy: 'coordinator',
        reason,
        decidedAt: later,
      },
      forced: true,
    },
    decisionTo('bank', 'abort'),
    decisionTo('vendor', 'abort'),
    decisionTo('customer', 'abort'),
  ]);
  t.true(machine.isInFlight(txId));
});

test('recovery of a decided transaction re-sends the decision to every participant', (t) => {
  const machine = new CoordinatorMachine(config);
  recover(machine, [
    beginRecord(),
    { kind: 'decided', txId, decision: 'commit', decidedAt: now + 30 },
  ]);
  t.deepEqual(machine.step({ kind: 'recovery-finished', now: later }), [
    decisionTo('bank', 'commit'),
    decisionTo('vendor', 'commit'),
    decisionTo('customer', 'commit'),
  ]);
  t.is(machine.nextDeadline(), later + config.decisionResendMsMin);
  ack(machine, 'bank', 'commit', later + 1);
  ack(machine, 'vendor', 'commit', later + 1);
  t.deepEqual(ack(machine, 'customer', 'commit', later + 2), [
    { kind: 'journal', record: { kind: 'completed', txId, completedAt: later + 2 }, forced: false },
  ]);
});

test('a recovered decided transaction answers its key with a replay', (t) => {
  const machine = new CoordinatorMachine(config);
  recover(machine, [
    beginRecord(),
    { kind: 'decided', txId, decision: 'commit', decidedAt: now + 30 },
  ]);
  machine.step({ kind: 'recovery-finished', now: later });
  t.deepEqual(pay(machine, { at: later, requestRef: 7, newTxId: otherTxId }), [
    committedReply(7, true),
  ]);
});

test('recovery of a completed transaction does nothing', (t) => {
  const machine = new CoordinatorMachine(config);
  recover(machine, [
    beginRecord(),
    { kind: 'decided', txId, decision: 'commit', decidedAt: now + 30 },
    { kind: 'completed', txId, completedAt: now + 40 },
  ]);
  t.deepEqual(machine.step({ kind: 'recovery-finished', now: later }), []);
  t.false(machine.isInFlight(txId));
  t.is(machine.nextDeadline(), undefined);
});

test('recovery rejects a decision without a begin', (t) => {
  const machine = new CoordinatorMachine(config);
  const record: JournalRecord = { kind: 'decided', txId, decision: 'commit', decidedAt: now };
  t.throws(() => machine.step({ kind: 'record-recovered', record }), {
    instanceOf: RecoveryRejectedError,
  });
  t.deepEqual(machine.step({ kind: 'recovery-finished', now: later }), []);
});

test('recovery rejects a second begin and keeps the first', (t) => {
  const machine = new CoordinatorMachine(config);
  recover(machine, [beginRecord()]);
  t.throws(() => machine.step({ kind: 'record-recovered', record: beginRecord(txId, now + 1) }), {
    instanceOf: RecoveryRejectedError,
  });
  t.deepEqual(machine.inspect(now + 1)[0]?.ageMs, 1);
});

test('recovery rejects a second decision', (t) => {
  const machine = new CoordinatorMachine(config);
  recover(machine, [beginRecord(), { kind: 'decided', txId, decision: 'commit', decidedAt: now }]);
  const record: JournalRecord = { kind: 'decided', txId, decision: 'abort', decidedAt: now };
  t.throws(() => machine.step({ kind: 'record-recovered', record }), {
    instanceOf: RecoveryRejectedError,
  });
  t.is(machine.inspect(now)[0]?.phase, 'committing');
});

test('recovery rejects the completion of an undecided transaction', (t) => {
  const machine = new CoordinatorMachine(config);
  recover(machine, [beginRecord()]);
  const record: JournalRecord = { kind: 'completed', txId, completedAt: now };
  t.throws(() => machine.step({ kind: 'record-recovered', record }), {
    instanceOf: RecoveryRejectedError,
  });
  t.true(machine.isInFlight(txId));
});

test('recovery rejects the completion of a transaction without a begin', (t) => {
  const machine = new CoordinatorMachine(config);
  const record: JournalRecord = { kind: 'completed', txId, completedAt: now };
  t.throws(() => machine.step({ kind: 'record-recovered', record }), {
    instanceOf: RecoveryRejectedError,
  });
});

test('normal inputs before recovery-finished throw', (t) => {
  const machine = new CoordinatorMachine(config);
  t.throws(() => pay(machine), { instanceOf: AssertionError });
  t.throws(() => machine.step({ kind: 'tick', now }), { instanceOf: AssertionError });
  t.throws(() => vote(machine, 'bank', 'yes'), { instanceOf: AssertionError });
  t.is(machine.inFlightCount, 0);
});

test('journal records after recovery-finished throw', (t) => {
  const machine = ready(t);
  t.throws(() => machine.step({ kind: 'record-recovered', record: beginRecord() }), {
    instanceOf: AssertionError,
  });
  t.false(machine.isInFlight(txId));
});

test('recovery finishes only once', (t) => {
  const machine = ready(t);
  t.throws(() => machine.step({ kind: 'recovery-finished', now }), { instanceOf: AssertionError });
});

// ---------------------------------------------------------------------------------------------
// Illegal transitions leave the state as it was.

test('a fresh transaction id already in flight throws and changes nothing', (t) => {
  const machine = ready(t);
  pay(machine);
  vote(machine, 'bank', 'yes');
  const before = machine.inspect(now + 100);
  const deadlineBefore = machine.nextDeadline();
  const request = payRequest(otherKey, otherPayment);
  t.throws(() => pay(machine, { at: now + 50, requestRef: 2, request, newTxId: txId }), {
    instanceOf: AssertionError,
  });
  t.deepEqual(machine.inspect(now + 100), before);
  t.is(machine.nextDeadline(), deadlineBefore);
  // The key that failed to start is still free: it begins normally with a fresh id.
  t.is(pay(machine, { requestRef: 2, request, newTxId: otherTxId }).length, 4);
});

test('a stored undecided transaction that is not in flight throws and changes nothing', (t) => {
  const machine = ready(t);
  const stored: StoredPayment = {
    txId,
    clientId: 'shop',
    idempotencyKey: key,
    fingerprint: paymentFingerprint(payment),
  };
  t.throws(() => pay(machine, { newTxId: otherTxId, stored }), { instanceOf: AssertionError });
  t.deepEqual(machine.inspect(now), []);
  t.is(machine.nextDeadline(), undefined);
});

// ---------------------------------------------------------------------------------------------
// Waiting: in-progress answers, the cap on waiters, and the strict deadline.

function inProgress(requestRef: number, retryAfterMs: number): CoordinatorEffect {
  return {
    kind: 'reply',
    requestRef,
    reply: { v: 1, kind: 'in-progress', txId, idempotencyKey: key, retryAfterMs },
  };
}

test('a joined request with waitMs 0 is answered in progress at once', (t) => {
  const machine = ready(t);
  pay(machine);
  const effects = pay(machine, {
    requestRef: 2,
    at: now + 100,
    request: { ...payRequest(), waitMs: 0 },
  });
  t.deepEqual(effects, [inProgress(2, 1_000)]);
});

test('a waiter whose wait runs out is answered in progress with a hint bounded by the deadline', (t) => {
  const machine = ready(t);
  pay(machine, { request: { ...payRequest(), waitMs: 300, timeoutMs: 800 } });
  t.is(machine.nextDeadline(), now + 300);
  t.deepEqual(machine.step({ kind: 'tick', now: now + 299 }), []);
  t.deepEqual(machine.step({ kind: 'tick', now: now + 300 }), [inProgress(1, 500)]);
  // The payment goes on: when it is decided, nobody is left to answer.
  vote(machine, 'bank', 'yes', now + 310);
  vote(machine, 'vendor', 'yes', now + 310);
  const effects = vote(machine, 'customer', 'yes', now + 310);
  t.false(effects.some((effect) => effect.kind === 'reply'));
});

test('more waiters than the cap on one payment are answered in progress at once', (t) => {
  const machine = ready(t);
  pay(machine);
  for (let requestRef = 2; requestRef <= config.waitersPerTransactionMax; requestRef += 1) {
    t.deepEqual(pay(machine, { requestRef }), []);
  }
  const overflow = config.waitersPerTransactionMax + 1;
  t.deepEqual(pay(machine, { requestRef: overflow }), [inProgress(overflow, 1_000)]);
});

test('a vote that arrives after the deadline, before any tick, aborts instead of committing', (t) => {
  const machine = ready(t);
  pay(machine);
  vote(machine, 'bank', 'yes');
  vote(machine, 'vendor', 'yes');
  const effects = vote(machine, 'customer', 'yes', now + timeoutMs);
  t.like(effects[0], {
    kind: 'journal',
    forced: true,
    record: { kind: 'decided', decision: 'abort', abortedBy: 'coordinator' },
  });
  t.regex(JSON.stringify(effects[0]), /deadline passed without a vote from customer/);
});
