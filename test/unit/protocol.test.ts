/**
 * The wire protocol's decoders and the payment fingerprint. Every decoder must turn valid bytes
 * into a fresh object of known fields only, and refuse anything else with a ValidationError that
 * names the offending field and carries the error code the peer will see.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { ValidationError } from '../../common/errors.ts';
import type { ErrorCode } from '../../common/errors.ts';
import {
  amountMinorMax,
  clientIdOfSubject,
  clientIdPattern,
  batchMessagesMax,
  clientInboxPrefix,
  decodeParticipantDelivery,
  decodeParticipantMessage,
  decodeParticipantReplies,
  decodeParticipantReply,
  encodeBatch,
  encodeMessage,
  decodePayReply,
  decodePayRequest,
  decodeStatusReply,
  decodeStatusRequest,
  messageBytesMax,
  orderLineCountMax,
  paymentFingerprint,
  readParticipantMessage,
  readParticipantReply,
  subjects,
} from '../../common/protocol.ts';
import type { OrderLine, Payment, PayRequest } from '../../common/protocol.ts';

const txId = '01HZX3V2M8Q4J7K9N0P5R6S7T8';
const key = 'key-0000000000000001';

const widgets: OrderLine = { sku: 'widget', quantity: 2, unitPriceMinor: 1_000 };
const gadget: OrderLine = { sku: 'gadget', quantity: 1, unitPriceMinor: 500 };

const payment: Payment = {
  payer: 'alice',
  payee: 'acme',
  amountMinor: 2_500,
  currency: 'EUR',
  orderId: 'order-1',
  lines: [widgets, gadget],
};

const payRequest: PayRequest = {
  v: 1,
  kind: 'pay',
  clientId: 'shop',
  idempotencyKey: key,
  payment,
};

function bytesOf(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

type Decoder = (bytes: Uint8Array) => unknown;

function rejects(
  t: ExecutionContext,
  decode: Decoder,
  bytes: Uint8Array,
  field: string,
  code: ErrorCode = 'invalid-request',
): void {
  const error = t.throws(() => decode(bytes), { instanceOf: ValidationError });
  t.is(error.field, field, error.message);
  t.is(error.code, code);
}

/** A pay request whose payment has `changes` applied; `undefined` removes a field. */
function payWith(changes: Record<string, unknown>): Uint8Array {
  return bytesOf({ ...payRequest, payment: { ...payment, ...changes } });
}

function lines(count: number): OrderLine[] {
  return Array.from({ length: count }, (_, index) => ({
    sku: `sku-${index}`,
    quantity: 1,
    unitPriceMinor: 1,
  }));
}

const committedOutcome = {
  v: 1,
  kind: 'outcome',
  txId,
  idempotencyKey: key,
  outcome: 'committed',
  receipt: `rcpt-${txId}`,
  replay: false,
};

/** Every decoder with a message it accepts, for the checks that all of them share. */
const decoders: readonly { name: string; decode: Decoder; valid: Record<string, unknown> }[] = [
  { name: 'decodePayRequest', decode: decodePayRequest, valid: { ...payRequest } },
  {
    name: 'decodeStatusRequest',
    decode: decodeStatusRequest,
    valid: { v: 1, kind: 'status', txId },
  },
  {
    name: 'decodeParticipantMessage',
    decode: decodeParticipantMessage,
    valid: { v: 1, kind: 'decision', txId, decision: 'commit', epoch: 3 },
  },
  {
    name: 'decodeParticipantReply',
    decode: decodeParticipantReply,
    valid: { v: 1, kind: 'vote', txId, participant: 'bank', vote: 'yes' },
  },
  {
    name: 'decodeStatusReply',
    decode: decodeStatusReply,
    valid: { v: 1, kind: 'status', txId, state: 'preparing', epoch: 3 },
  },
  { name: 'decodePayReply', decode: decodePayReply, valid: { ...committedOutcome } },
];

// ---------------------------------------------------------------------------------------------
// Checks every decoder shares.

test('every decoder accepts its valid message', (t) => {
  for (const { decode, valid } of decoders) t.deepEqual(decode(bytesOf(valid)), valid);
});

test('every decoder rejects malformed JSON', (t) => {
  for (const { decode } of decoders) {
    rejects(t, decode, new TextEncoder().encode('{"v":1,'), 'message');
    rejects(t, decode, new Uint8Array(), 'message');
  }
});

test('every decoder rejects bytes that are not UTF-8', (t) => {
  // A JSON string holding a lone continuation byte: valid JSON once decoded leniently.
  const bytes = new Uint8Array([0x7b, 0x22, 0x76, 0x22, 0x3a, 0x22, 0x80, 0x22, 0x7d]);
  for (const { decode } of decoders) rejects(t, decode, bytes, 'message');
});

test('every decoder rejects JSON that is not an object', (t) => {
  for (const { decode } of decoders) {
    for (const value of [null, [], 'pay', 1]) rejects(t, decode, bytesOf(value), 'message');
  }
});

test('every decoder rejects a missing or wrong protocol version', (t) => {
  for (const { decode, valid } of decoders) {
    for (const v of [undefined, 0, 2, '1', 1.5]) rejects(t, decode, bytesOf({ ...valid, v }), 'v');
  }
});

test('every decoder rejects an unknown or missing kind', (t) => {
  for (const { decode, valid } of decoders) {
    for (const kind of ['refund', undefined, 1, 'PAY']) {
      rejects(t, decode, bytesOf({ ...valid, kind }), 'kind');
    }
  }
});

test('every decoder refuses a message over 64 KiB as payload-too-large', (t) => {
  for (const { decode } of decoders) {
    rejects(t, decode, new Uint8Array(messageBytesMax + 1), 'message', 'payload-too-large');
  }
});

test('a message of exactly 64 KiB is parsed', (t) => {
  const json = JSON.stringify(payRequest);
  const padded = json.slice(0, -1) + ' '.repeat(messageBytesMax - json.length) + '}';
  const bytes = new TextEncoder().encode(padded);
  t.is(bytes.byteLength, messageBytesMax);
  t.deepEqual(decodePayRequest(bytes), payRequest);
});

// ---------------------------------------------------------------------------------------------
// Pay requests.

test('a pay request keeps a valid timeout', (t) => {
  for (const timeoutMs of [100, 60_000]) {
    t.deepEqual(decodePayRequest(bytesOf({ ...payRequest, timeoutMs })), {
      ...payRequest,
      timeoutMs,
    });
  }
});

test('a pay request rejects a timeout out of range or not an integer', (t) => {
  for (const timeoutMs of [99, 60_001, 1_000.5, '1000', null]) {
    rejects(t, decodePayRequest, bytesOf({ ...payRequest, timeoutMs }), 'timeoutMs');
  }
});

test('a pay request drops unknown fields at every level', (t) => {
  const bytes = bytesOf({
    ...payRequest,
    admin: true,
    payment: {
      ...payment,
      discount: 100,
      lines: payment.lines.map((line) => ({ ...line, note: 'gift' })),
    },
  });
  t.deepEqual(decodePayRequest(bytes), payRequest);
});

test('a pay request rejects missing fields, naming each', (t) => {
  for (const field of ['clientId', 'idempotencyKey', 'payment'] as const) {
    rejects(t, decodePayRequest, bytesOf({ ...payRequest, [field]: undefined }), field);
  }
  for (const field of ['payer', 'payee', 'amountMinor', 'currency', 'orderId', 'lines']) {
    rejects(t, decodePayRequest, payWith({ [field]: undefined }), `payment.${field}`);
  }
});

test('a pay request rejects a payment that is not an object', (t) => {
  for (const value of ['alice', [], null, 5]) {
    rejects(t, decodePayRequest, bytesOf({ ...payRequest, payment: value }), 'payment');
  }
});

test('the amount accepts 1 and amountMinorMax', (t) => {
  for (const amountMinor of [1, amountMinorMax]) {
    t.deepEqual(decodePayRequest(payWith({ amountMinor })), {
      ...payRequest,
      payment: { ...payment, amountMinor },
    });
  }
});

test('the amount rejects zero', (t) => {
  rejects(t, decodePayRequest, payWith({ amountMinor: 0 }), 'payment.amountMinor');
});

test('the amount rejects a negative value', (t) => {
  rejects(t, decodePayRequest, payWith({ amountMinor: -100 }), 'payment.amountMinor');
});

test('the amount rejects a fraction: money is an integer count of minor units', (t) => {
  rejects(t, decodePayRequest, payWith({ amountMinor: 10.5 }), 'payment.amountMinor');
});

test('the amount rejects an unsafe integer', (t) => {
  const amountMinor = Number.MAX_SAFE_INTEGER + 1;
  rejects(t, decodePayRequest, payWith({ amountMinor }), 'payment.amountMinor');
});

test('the amount rejects a value over amountMinorMax', (t) => {
  const amountMinor = amountMinorMax + 1;
  rejects(t, decodePayRequest, payWith({ amountMinor }), 'payment.amountMinor');
});

test('the amount rejects a string', (t) => {
  rejects(t, decodePayRequest, payWith({ amountMinor: '2500' }), 'payment.amountMinor');
});

test('the currency must be an active ISO 4217 code', (t) => {
  for (const currency of ['EUX', 'eur', 'EURO', '', 978]) {
    rejects(t, decodePayRequest, payWith({ currency }), 'payment.currency');
  }
  t.is(decodePayRequest(payWith({ currency: 'JPY' })).payment.currency, 'JPY');
});

test('identifiers must be 1-64 of lower-case letters, digits, dot, dash, underscore', (t) => {
  const bad = ['', 'Alice', 'al ice', '-alice', 'alice!', 'a'.repeat(65), 'ålice'];
  for (const value of bad) {
    rejects(t, decodePayRequest, bytesOf({ ...payRequest, clientId: value }), 'clientId');
    rejects(t, decodePayRequest, payWith({ payer: value }), 'payment.payer');
    rejects(t, decodePayRequest, payWith({ payee: value }), 'payment.payee');
    rejects(t, decodePayRequest, payWith({ orderId: value }), 'payment.orderId');
  }
  for (const value of ['a', 'a'.repeat(64), 'order_1.b-2', '9lives']) {
    t.is(decodePayRequest(payWith({ orderId: value })).payment.orderId, value);
  }
});

test('a client id is one NATS token: no dot, wildcard or whitespace', (t) => {
  const bad = ['shop.eu', 'shop*', '*', '>', 'shop>', 'sh op', 'shop\t', 'shop\n', 'Shop', ''];
  for (const value of bad) {
    t.false(clientIdPattern.test(value), value);
    rejects(t, decodePayRequest, bytesOf({ ...payRequest, clientId: value }), 'clientId');
    const status = { v: 1, kind: 'status', clientId: value, idempotencyKey: key };
    rejects(t, decodeStatusRequest, bytesOf(status), 'clientId');
    t.throws(() => subjects.clientPay(value), { instanceOf: ValidationError });
    t.throws(() => subjects.clientStatus(value), { instanceOf: ValidationError });
    t.throws(() => clientInboxPrefix(value), { instanceOf: ValidationError });
  }
  // Other identifiers keep their dot: an order id is never part of a subject.
  t.is(decodePayRequest(payWith({ orderId: 'order.1' })).payment.orderId, 'order.1');
  for (const value of ['a', 'shop_eu-1', 'x'.repeat(64)]) {
    t.is(decodePayRequest(bytesOf({ ...payRequest, clientId: value })).clientId, value);
  }
});

test('a client subject names its client as its last token, and only so', (t) => {
  t.is(subjects.clientPay('shop-1'), 'continuum.coordinator.pay.shop-1');
  t.is(subjects.clientStatus('shop-1'), 'continuum.coordinator.status.shop-1');
  t.is(clientInboxPrefix('shop-1'), '_INBOX_shop-1');
  t.is(clientIdOfSubject(subjects.clientPay('shop-1'), 'pay'), 'shop-1');
  t.is(clientIdOfSubject(subjects.clientStatus('shop-1'), 'status'), 'shop-1');
  const bad: [string, 'pay' | 'status'][] = [
    [subjects.clientStatus('shop-1'), 'pay'],
    [subjects.clientPay('shop-1'), 'status'],
    ['continuum.coordinator.pay.', 'pay'],
    ['continuum.coordinator.pay.Shop', 'pay'],
    ['continuum.coordinator.pay.a.b', 'pay'],
    [subjects.status, 'status'],
    ['continuum.coordinator.payshop', 'pay'],
  ];
  for (const [subject, kind] of bad) {
    const error = t.throws(() => clientIdOfSubject(subject, kind), { instanceOf: ValidationError });
    t.is(error.field, 'subject', subject);
    t.is(error.code, 'invalid-request');
  }
});

test('an idempotency key shorter than 16 characters is rejected', (t) => {
  const bytes = bytesOf({ ...payRequest, idempotencyKey: 'k'.repeat(15) });
  rejects(t, decodePayRequest, bytes, 'idempotencyKey');
});

test('an idempotency key longer than 64 characters is rejected', (t) => {
  const bytes = bytesOf({ ...payRequest, idempotencyKey: 'k'.repeat(65) });
  rejects(t, decodePayRequest, bytes, 'idempotencyKey');
});

test('an idempotency key with characters outside [A-Za-z0-9_-] is rejected', (t) => {
  for (const idempotencyKey of [
    'key.0000000000000001',
    'key 0000000000000001',
    'kéy-000000000000001',
  ]) {
    rejects(t, decodePayRequest, bytesOf({ ...payRequest, idempotencyKey }), 'idempotencyKey');
  }
});

test('idempotency keys of 16 and 64 characters, a ULID and a UUID are accepted', (t) => {
  const keys = [
    'k'.repeat(16),
    'K'.repeat(64),
    '01HZX3V2M8Q4J7K9N0P5R6S7T8',
    '123e4567-e89b-12d3-a456-426614174000',
  ];
  for (const idempotencyKey of keys) {
    const decoded = decodePayRequest(bytesOf({ ...payRequest, idempotencyKey }));
    t.is(decoded.idempotencyKey, idempotencyKey);
  }
});

test('a payment needs at least one order line', (t) => {
  rejects(t, decodePayRequest, payWith({ lines: [] }), 'payment.lines');
  rejects(t, decodePayRequest, payWith({ lines: { sku: 'widget' } }), 'payment.lines');
});

test('a payment takes at most orderLineCountMax order lines', (t) => {
  const most = lines(orderLineCountMax);
  t.is(decodePayRequest(payWith({ lines: most })).payment.lines.length, orderLineCountMax);
  rejects(t, decodePayRequest, payWith({ lines: lines(orderLineCountMax + 1) }), 'payment.lines');
});

test('an order line that is not an object is rejected with its index', (t) => {
  const bytes = payWith({ lines: [widgets, 'widget'] });
  rejects(t, decodePayRequest, bytes, 'payment.lines[1]');
});

test('an order line rejects a bad sku', (t) => {
  const bytes = payWith({ lines: [{ sku: 'Widget', quantity: 1, unitPriceMinor: 1 }] });
  rejects(t, decodePayRequest, bytes, 'payment.lines[0].sku');
});

test('an order line rejects a quantity of zero, a fraction or over the cap', (t) => {
  for (const quantity of [0, -1, 1.5, 1_000_001]) {
    const bytes = payWith({ lines: [{ sku: 'widget', quantity, unitPriceMinor: 1 }] });
    rejects(t, decodePayRequest, bytes, 'payment.lines[0].quantity');
  }
});

test('an order line rejects a bad unit price, naming the unitPriceMinor field', (t) => {
  for (const unitPriceMinor of [-1, 0.5, amountMinorMax + 1, '1']) {
    const bytes = payWith({
      lines: [widgets, { sku: 'gadget', quantity: 1, unitPriceMinor }],
    });
    rejects(t, decodePayRequest, bytes, 'payment.lines[1].unitPriceMinor');
  }
});

test('an order line accepts a unit price of zero (a free item)', (t) => {
  const line = { sku: 'sticker', quantity: 1, unitPriceMinor: 0 };
  t.deepEqual(decodePayRequest(payWith({ lines: [line] })).payment.lines, [line]);
});

// ---------------------------------------------------------------------------------------------
// Status requests.

test('a status request by idempotency key is accepted', (t) => {
  const request = { v: 1, kind: 'status', clientId: 'shop', idempotencyKey: key };
  t.deepEqual(decodeStatusRequest(bytesOf({ ...request, extra: 1 })), request);
});

test('a status request rejects a transaction id that is not a ULID', (t) => {
  // `8…` is 26 valid characters, but past a ULID's 48-bit time: no creation time to decode.
  const tooLate = `8${txId.slice(1)}`;
  const bad = [txId.toLowerCase(), txId.slice(1), `${txId}0`, `${txId.slice(0, 25)}U`, tooLate, 7];
  for (const value of bad) {
    rejects(t, decodeStatusRequest, bytesOf({ v: 1, kind: 'status', txId: value }), 'txId');
  }
});

test('a status request without a transaction id needs a client and key', (t) => {
  rejects(t, decodeStatusRequest, bytesOf({ v: 1, kind: 'status' }), 'clientId');
  const noKey = { v: 1, kind: 'status', clientId: 'shop' };
  rejects(t, decodeStatusRequest, bytesOf(noKey), 'idempotencyKey');
});

// ---------------------------------------------------------------------------------------------
// Messages to participants.

test('a PREPARE carries its checked payment and drops unknown fields', (t) => {
  const message = { v: 1, kind: 'prepare', txId, payment, epoch: 3 };
  const bytes = bytesOf({ ...message, payment: { ...payment, extra: 1 }, epoch: 3 });
  t.deepEqual(decodeParticipantMessage(bytes), message);
});

test('a PREPARE rejects a bad payment and a bad transaction id', (t) => {
  const message = { v: 1, kind: 'prepare', txId, payment, epoch: 3 };
  const badAmount = bytesOf({ ...message, payment: { ...payment, amountMinor: 0 } });
  rejects(t, decodeParticipantMessage, badAmount, 'payment.amountMinor');
  rejects(t, decodeParticipantMessage, bytesOf({ ...message, txId: 'tx-1' }), 'txId');
});

test('a decision message accepts abort', (t) => {
  const message = { v: 1, kind: 'decision', txId, decision: 'abort', epoch: 3 };
  t.deepEqual(decodeParticipantMessage(bytesOf(message)), message);
});

test('a decision message rejects an unknown decision, naming the decision field', (t) => {
  for (const decision of ['maybe', undefined, 'COMMIT']) {
    const bytes = bytesOf({ v: 1, kind: 'decision', txId, decision, epoch: 3 });
    rejects(t, decodeParticipantMessage, bytes, 'decision');
  }
});

// ---------------------------------------------------------------------------------------------
// Batches: several PREPAREs and decisions for one participant in one message, and their answers.

const prepare = { v: 1, kind: 'prepare', txId, payment, epoch: 3 };
const commit = { v: 1, kind: 'decision', txId, decision: 'commit', epoch: 3 };

test('a batch encoded from encoded messages decodes to the same messages, element by element', (t) => {
  const bytes = encodeBatch([encodeMessage(commit), encodeMessage(prepare)]);
  t.deepEqual(JSON.parse(new TextDecoder().decode(bytes)), {
    v: 1,
    kind: 'batch',
    messages: [commit, prepare],
  });
  const delivery = decodeParticipantDelivery(bytes);
  if (delivery.kind !== 'batch') return t.fail('not a batch');
  t.deepEqual(delivery.elements.map(readParticipantMessage), [commit, prepare]);
});

/**
 * Encoded messages share Node's Buffer pool (no ArrayBuffer of their own, which V8 would have to
 * free in a scavenge), and sharing must never let one message's bytes overwrite another's, even
 * while thousands are held at once, as the coordinator holds a batch's sends.
 */
test('encoded messages share pooled memory and each keeps its own bytes', (t) => {
  const messages = Array.from({ length: 2_000 }, (_, index) => ({
    ...prepare,
    payment: { ...payment, orderId: `order-${index}`, amountMinor: index + 1 },
  }));
  const encoded = messages.map((message) => encodeMessage(message));
  const batches = [0, 1, 2].map((start) => encodeBatch(encoded.slice(start * 30, start * 30 + 30)));
  const buffers = new Set(encoded.map((bytes) => bytes.buffer));
  t.true(
    buffers.size * 10 < encoded.length,
    `${encoded.length} messages in ${buffers.size} ArrayBuffers`,
  );
  const decoder = new TextDecoder();
  encoded.forEach((bytes, index) => {
    t.deepEqual(JSON.parse(decoder.decode(bytes)), messages[index]);
  });
  batches.forEach((bytes, batch) => {
    const decoded = JSON.parse(decoder.decode(bytes)) as { messages: unknown[] };
    t.deepEqual(decoded.messages, messages.slice(batch * 30, batch * 30 + 30));
  });
});

test('a message alone is delivered checked, as decodeParticipantMessage decodes it', (t) => {
  t.deepEqual(decodeParticipantDelivery(bytesOf(prepare)), { kind: 'single', message: prepare });
  rejects(t, decodeParticipantDelivery, bytesOf({ ...prepare, txId: 'tx-1' }), 'txId');
  rejects(t, decodeParticipantDelivery, bytesOf({ ...prepare, kind: 'refund' }), 'kind');
});

test('a batch holds 1 to batchMessagesMax elements', (t) => {
  const batch = (messages: unknown) => bytesOf({ v: 1, kind: 'batch', messages });
  for (const messages of [[], undefined, commit, Array(batchMessagesMax + 1).fill(commit)]) {
    rejects(t, decodeParticipantDelivery, batch(messages), 'messages');
  }
  const full = decodeParticipantDelivery(batch(Array(batchMessagesMax).fill(commit)));
  t.is(full.kind === 'batch' ? full.elements.length : 0, batchMessagesMax);
  rejects(t, decodeParticipantDelivery, bytesOf({ v: 2, kind: 'batch', messages: [commit] }), 'v');
});

test("a batch's elements are left for their own check, which refuses a bad one", (t) => {
  const bytes = bytesOf({ v: 1, kind: 'batch', messages: [commit, { ...prepare, v: 2 }, 7] });
  const delivery = decodeParticipantDelivery(bytes);
  if (delivery.kind !== 'batch') return t.fail('not a batch');
  const [good, badVersion, notObject] = delivery.elements;
  t.deepEqual(readParticipantMessage(good), commit);
  t.is(
    t.throws(() => readParticipantMessage(badVersion), { instanceOf: ValidationError }).field,
    'v',
  );
  t.is(
    t.throws(() => readParticipantMessage(notObject), { instanceOf: ValidationError }).field,
    'message',
  );
});

test("a batch's answers come by index, each left for its own check", (t) => {
  const yes = { v: 1, kind: 'vote', txId, participant: 'bank', vote: 'yes' };
  const bad = { ...yes, vote: 'perhaps' };
  const decoded = decodeParticipantReplies(
    bytesOf({
      v: 1,
      kind: 'replies',
      replies: [
        { index: 1, reply: yes },
        { index: 0, reply: bad },
      ],
    }),
  );
  if (decoded.kind !== 'replies') return t.fail('not replies');
  t.deepEqual(
    decoded.replies.map(({ index }) => index),
    [1, 0],
  );
  t.deepEqual(readParticipantReply(decoded.replies[0]?.reply), yes);
  const error = t.throws(() => readParticipantReply(decoded.replies[1]?.reply), {
    instanceOf: ValidationError,
  });
  t.is(error.field, 'vote');
});

test('an error refuses a whole batch; answers with a bad index or shape are refused', (t) => {
  const error = { v: 1, kind: 'error', code: 'payload-too-large', message: 'too big' };
  t.deepEqual(decodeParticipantReplies(bytesOf(error)), { kind: 'error', error });
  const replies = (list: unknown) => bytesOf({ v: 1, kind: 'replies', replies: list });
  const reply = { v: 1, kind: 'ack', txId, participant: 'bank', decision: 'commit' };
  for (const index of [-1, batchMessagesMax, 1.5, '0', undefined]) {
    rejects(t, decodeParticipantReplies, replies([{ index, reply }]), 'replies[0].index');
  }
  rejects(t, decodeParticipantReplies, replies([{ index: 0, reply }, null]), 'replies[1]');
  rejects(t, decodeParticipantReplies, replies([]), 'replies');
  rejects(t, decodeParticipantReplies, bytesOf({ ...error, kind: 'vote' }), 'kind');
  rejects(
    t,
    decodeParticipantReplies,
    new Uint8Array(messageBytesMax + 1),
    'message',
    'payload-too-large',
  );
});

// ---------------------------------------------------------------------------------------------
// Participants' replies.

test('a NO vote keeps its reason; an ack and an error reply are accepted', (t) => {
  const no = { v: 1, kind: 'vote', txId, participant: 'vendor', vote: 'no', reason: 'no stock' };
  t.deepEqual(decodeParticipantReply(bytesOf(no)), no);
  const ack = { v: 1, kind: 'ack', txId, participant: 'customer', decision: 'abort' };
  t.deepEqual(decodeParticipantReply(bytesOf(ack)), ack);
  const error = { v: 1, kind: 'error', code: 'invalid-request', message: 'bad' };
  t.deepEqual(decodeParticipantReply(bytesOf(error)), error);
});

test('a YES vote drops a reason it does not need', (t) => {
  const yes = { v: 1, kind: 'vote', txId, participant: 'bank', vote: 'yes' };
  t.deepEqual(decodeParticipantReply(bytesOf({ ...yes, reason: 'fine' })), yes);
});

test('a NO vote must say why, in plain words', (t) => {
  const no = { v: 1, kind: 'vote', txId, participant: 'vendor', vote: 'no' };
  for (const reason of [undefined, '', ' leading space', 'line\nbreak', 'r'.repeat(201)]) {
    rejects(t, decodeParticipantReply, bytesOf({ ...no, reason }), 'reason');
  }
});

test('a reply from an unknown participant is rejected', (t) => {
  for (const participant of ['mallory', undefined, 'BANK']) {
    const bytes = bytesOf({ v: 1, kind: 'vote', txId, participant, vote: 'yes' });
    rejects(t, decodeParticipantReply, bytes, 'participant');
  }
});

test('a vote other than yes or no is rejected, naming the vote field', (t) => {
  const bytes = bytesOf({ v: 1, kind: 'vote', txId, participant: 'bank', vote: 'perhaps' });
  rejects(t, decodeParticipantReply, bytes, 'vote');
});

test('an ack of an unknown decision is rejected, naming the decision field', (t) => {
  const bytes = bytesOf({ v: 1, kind: 'ack', txId, participant: 'bank', decision: 'maybe' });
  rejects(t, decodeParticipantReply, bytes, 'decision');
});

test('an error reply with an unknown code is rejected, naming the code field', (t) => {
  const bytes = bytesOf({ v: 1, kind: 'error', code: 'teapot', message: 'short and stout' });
  rejects(t, decodeParticipantReply, bytes, 'code');
});

test('an error reply keeps at most 500 characters of its message', (t) => {
  const bytes = bytesOf({ v: 1, kind: 'error', code: 'internal', message: 'x'.repeat(600) });
  t.deepEqual(decodeParticipantReply(bytes), {
    v: 1,
    kind: 'error',
    code: 'internal',
    message: 'x'.repeat(500),
  });
});

// ---------------------------------------------------------------------------------------------
// Replies to clients.

test('a status reply for an unknown key has a null transaction id', (t) => {
  const reply = { v: 1, kind: 'status', txId: null, state: 'unknown', epoch: 3 };
  t.deepEqual(decodeStatusReply(bytesOf(reply)), reply);
});

test('a status reply keeps who aborted and why', (t) => {
  const reply = {
    v: 1,
    kind: 'status',
    txId,
    state: 'aborted',
    abortedBy: 'coordinator',
    reason: 'deadline passed without a vote from vendor, customer',
    epoch: 3,
  };
  t.deepEqual(decodeStatusReply(bytesOf({ ...reply, debug: 'x' })), reply);
});

test('a status reply with an unknown state is rejected, naming the state field', (t) => {
  const bytes = bytesOf({ v: 1, kind: 'status', txId, state: 'pending', epoch: 3 });
  rejects(t, decodeStatusReply, bytes, 'state');
});

test('an outcome reply keeps an abort with its details and replay flag', (t) => {
  const reply = {
    v: 1,
    kind: 'outcome',
    txId,
    idempotencyKey: key,
    outcome: 'aborted',
    abortedBy: 'bank',
    reason: 'insufficient funds',
    replay: true,
  };
  t.deepEqual(decodePayReply(bytesOf(reply)), reply);
});

test('an outcome reply rejects a receipt of another form', (t) => {
  const reply = { ...committedOutcome, receipt: 'receipt-1' };
  rejects(t, decodePayReply, bytesOf(reply), 'receipt');
});

test('an outcome reply with an unknown outcome is rejected, naming the outcome field', (t) => {
  const reply = { ...committedOutcome, outcome: 'pending' };
  rejects(t, decodePayReply, bytesOf(reply), 'outcome');
});

test('an outcome reply with an unknown abort source is rejected, naming abortedBy', (t) => {
  const reply = { ...committedOutcome, outcome: 'aborted', abortedBy: 'mallory' };
  rejects(t, decodePayReply, bytesOf(reply), 'abortedBy');
});

// ---------------------------------------------------------------------------------------------
// The payment fingerprint.

test('the fingerprint does not depend on the order of lines or of fields', (t) => {
  const reordered: Payment = {
    lines: [...payment.lines].reverse(),
    orderId: payment.orderId,
    currency: payment.currency,
    amountMinor: payment.amountMinor,
    payee: payment.payee,
    payer: payment.payer,
  };
  t.is(paymentFingerprint(reordered), paymentFingerprint(payment));
});

test('the fingerprint of a decoded payment equals that of the payment sent', (t) => {
  t.is(
    paymentFingerprint(decodePayRequest(bytesOf(payRequest)).payment),
    paymentFingerprint(payment),
  );
});

test('the fingerprint changes when any field of the payment changes', (t) => {
  const variants: Record<string, Payment> = {
    payer: { ...payment, payer: 'bob' },
    payee: { ...payment, payee: 'acme-2' },
    amountMinor: { ...payment, amountMinor: 2_501 },
    currency: { ...payment, currency: 'USD' },
    orderId: { ...payment, orderId: 'order-2' },
    sku: { ...payment, lines: [{ ...widgets, sku: 'widget-2' }, gadget] },
    quantity: { ...payment, lines: [{ ...widgets, quantity: 3 }, gadget] },
    unitPriceMinor: { ...payment, lines: [{ ...widgets, unitPriceMinor: 1_001 }, gadget] },
    'line removed': { ...payment, lines: [widgets] },
    'line added': { ...payment, lines: [widgets, gadget, gadget] },
    'line split': {
      ...payment,
      lines: [{ ...widgets, quantity: 1 }, { ...widgets, quantity: 1 }, gadget],
    },
    'values swapped between fields': { ...payment, payer: 'acme', payee: 'alice' },
    'quantity and price swapped': {
      ...payment,
      lines: [{ ...widgets, quantity: 1_000, unitPriceMinor: 2 }, gadget],
    },
  };
  const seen = new Map<string, string>([[paymentFingerprint(payment), 'original']]);
  for (const [change, variant] of Object.entries(variants)) {
    const fingerprint = paymentFingerprint(variant);
    t.is(
      seen.get(fingerprint),
      undefined,
      `${change} collides with ${seen.get(fingerprint) ?? ''}`,
    );
    seen.set(fingerprint, change);
  }
});

test('coordinator messages and status answers must carry their term (epoch)', (t) => {
  const decision = { v: 1, kind: 'decision', txId, decision: 'commit' };
  rejects(t, decodeParticipantMessage, bytesOf(decision), 'epoch');
  rejects(t, decodeParticipantMessage, bytesOf({ ...decision, epoch: 0 }), 'epoch');
  rejects(t, decodeParticipantMessage, bytesOf({ ...decision, epoch: 1.5 }), 'epoch');
  const status = { v: 1, kind: 'status', txId, state: 'committed' };
  rejects(t, decodeStatusReply, bytesOf(status), 'epoch');
  t.like(decodeStatusReply(bytesOf({ ...status, epoch: 7 })), { epoch: 7 });
});
