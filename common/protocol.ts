/**
 * The wire protocol: every message that crosses a process boundary, its subject, and the decoder
 * that turns untrusted bytes into a typed value or a ValidationError.
 *
 * Messages are JSON objects with a version `v` and a `kind`. Every message names its transaction,
 * so a stale, duplicated or reordered one can be recognised and ignored (the network drops,
 * duplicates, delays and reorders; see docs/protocol.md). Decoders check sizes before parsing,
 * reject unknown kinds, and never trust a field they have not checked.
 */
import { currencyCodes } from './currencies.ts';
import { errorCodes, ValidationError, type ErrorCode } from './errors.ts';

export const protocolVersion = 1;

/** Caps on what a peer may send us. A message over the size cap is refused before parsing. */
export const messageBytesMax = 64 * 1024;
export const amountMinorMax = 1_000_000_000_000;
export const orderLineCountMax = 100;
export const quantityMax = 1_000_000;
export const paymentTimeoutMsDefault = 5_000;
export const paymentTimeoutMsMin = 100;
export const paymentTimeoutMsMax = 60_000;
/**
 * How long the client library keeps retrying one payment by default (`deadlineMs`); the
 * coordinator warns about a key retention shorter than this (coordinator/core/key-retention.ts).
 */
export const clientDeadlineMsDefault = 30_000;
/** How long one attempt may wait for its outcome before it is told "in progress". */
export const waitMsMax = 60_000;

/** Identifiers of customers, vendors, orders and items: 1-64 of [a-z0-9._-]. */
export const identifierPattern = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/**
 * Client ids: 1-64 of [a-z0-9_-], starting with a letter or digit. Stricter than other identifiers
 * because a client id is the last token of the client's NATS subjects and part of its inbox
 * prefix: it must be exactly one NATS token, so no `.` (a token separator), no `*` or `>`
 * (wildcards) and no whitespace. NATS permissions then name one client's subjects exactly.
 */
export const clientIdPattern = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** Idempotency keys: 16-64 of [A-Za-z0-9_-], so a ULID (26) and a UUID (36) both fit. */
export const idempotencyKeyPattern = /^[A-Za-z0-9_-]{16,64}$/;
/**
 * Transaction ids are ULIDs: 26 characters of Crockford base 32, the first at most 7 (a ULID's
 * 48-bit time ends there), so that every id that passes has a creation time to decode.
 */
export const transactionIdPattern = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;

export const participantNames = ['bank', 'vendor', 'customer'] as const;
export type ParticipantName = (typeof participantNames)[number];

const clientPayPrefix = 'continuum.coordinator.pay.';
const clientStatusPrefix = 'continuum.coordinator.status.';

/** A client id checked before it becomes part of a subject, so it can never add a token. */
function checkedClientId(clientId: string): string {
  if (!clientIdPattern.test(clientId)) {
    throw new ValidationError('clientId', `must match ${String(clientIdPattern)}`);
  }
  return clientId;
}

/**
 * Subjects. A client's requests travel on subjects that end with its client id, so that NATS
 * permissions, which allow or deny subjects, decide which client id a connection may speak for
 * (docs/idempotency.md). The coordinator takes the client id from the subject, never from the
 * body alone.
 */
/** Built once: the coordinator sends to one of these with every message. */
const participantSubjects = Object.fromEntries(
  participantNames.map((name) => [name, `continuum.participant.${name}`]),
) as Readonly<Record<ParticipantName, string>>;

export const subjects = {
  /** Where client `clientId` sends its payments. Throws ValidationError for a bad client id. */
  clientPay: (clientId: string): string => `${clientPayPrefix}${checkedClientId(clientId)}`,
  /** Where client `clientId` asks about its own payments, by key or by transaction id. */
  clientStatus: (clientId: string): string => `${clientStatusPrefix}${checkedClientId(clientId)}`,
  /** What the coordinator subscribes to: every client's pay subject. */
  clientPayAll: `${clientPayPrefix}*`,
  clientStatusAll: `${clientStatusPrefix}*`,
  /**
   * The service status subject: any transaction by id, or any client's key. For participants in
   * doubt and operators' tools only; clients are not allowed to publish here.
   */
  status: 'continuum.coordinator.status',
  /** Operators' view of the transactions in flight (read-only). */
  inFlight: 'continuum.coordinator.in-flight',
  /** Which coordinator is active, in which term (read-only). */
  leader: 'continuum.coordinator.leader',
  participant: (name: ParticipantName): string => participantSubjects[name],
} as const;

/**
 * The client id that a client's pay or status subject names (its last token); a ValidationError
 * (`invalid-request`) if the subject is not such a subject or its last token is no client id.
 */
export function clientIdOfSubject(subject: string, kind: 'pay' | 'status'): string {
  const prefix = kind === 'pay' ? clientPayPrefix : clientStatusPrefix;
  const clientId = subject.startsWith(prefix) ? subject.slice(prefix.length) : '';
  if (!clientIdPattern.test(clientId)) {
    throw new ValidationError('subject', `${subject} must be ${prefix}<client id>`);
  }
  return clientId;
}

/**
 * The inbox prefix of client `clientId`: its replies arrive on `_INBOX_<clientId>.…`, so NATS can
 * allow it to subscribe to its own replies only (a shared `_INBOX.>` would let every client read
 * every other client's replies).
 */
export function clientInboxPrefix(clientId: string): string {
  return `_INBOX_${checkedClientId(clientId)}`;
}

export interface OrderLine {
  readonly sku: string;
  readonly quantity: number;
  readonly unitPriceMinor: number;
}

/** What is paid: the same object travels from the client to every participant. */
export interface Payment {
  readonly payer: string;
  readonly payee: string;
  readonly amountMinor: number;
  readonly currency: string;
  readonly orderId: string;
  readonly lines: readonly OrderLine[];
}

export interface PayRequest {
  readonly v: 1;
  readonly kind: 'pay';
  readonly clientId: string;
  readonly idempotencyKey: string;
  readonly payment: Payment;
  readonly timeoutMs?: number;
  /**
   * How long this attempt waits for the outcome. Past it, an undecided payment is answered with
   * `in-progress` and a retry hint; 0 answers at once. Without it, the attempt waits for the
   * decision, which the payment's deadline bounds.
   */
  readonly waitMs?: number;
}

export type StatusRequest =
  | { readonly v: 1; readonly kind: 'status'; readonly txId: string }
  | {
      readonly v: 1;
      readonly kind: 'status';
      readonly clientId: string;
      readonly idempotencyKey: string;
    };

export type Decision = 'commit' | 'abort';
export type Outcome = 'committed' | 'aborted';

/** Who caused an abort: a participant that voted NO, or the coordinator (deadline, recovery). */
export type AbortSource = ParticipantName | 'coordinator';

/** The definitive answer for a payment. `replay` is set when it was answered from the journal. */
export interface OutcomeReply {
  readonly v: 1;
  readonly kind: 'outcome';
  readonly txId: string;
  readonly idempotencyKey: string;
  readonly outcome: Outcome;
  readonly abortedBy?: AbortSource;
  readonly reason?: string;
  readonly receipt?: string;
  readonly replay: boolean;
}

/** The payment is being decided; ask again with the same key after `retryAfterMs`. */
export interface InProgressReply {
  readonly v: 1;
  readonly kind: 'in-progress';
  readonly txId: string;
  readonly idempotencyKey: string;
  readonly retryAfterMs: number;
}

export type TransactionState = 'unknown' | 'preparing' | 'committed' | 'aborted';

export interface StatusReply {
  readonly v: 1;
  readonly kind: 'status';
  readonly txId: string | null;
  readonly state: TransactionState;
  readonly abortedBy?: AbortSource;
  readonly reason?: string;
}

export interface ErrorReply {
  readonly v: 1;
  readonly kind: 'error';
  readonly code: ErrorCode;
  readonly message: string;
}

export interface PrepareMessage {
  readonly v: 1;
  readonly kind: 'prepare';
  readonly txId: string;
  readonly payment: Payment;
}

export interface DecisionMessage {
  readonly v: 1;
  readonly kind: 'decision';
  readonly txId: string;
  readonly decision: Decision;
}

export type ParticipantMessage = PrepareMessage | DecisionMessage;

/**
 * Most messages one batch carries. A batch, `{ v: 1, kind: 'batch', messages: [...] }`, is several
 * PREPAREs and decisions for one participant in one NATS message (encodeBatch): what one turn of
 * the coordinator sends it, so that under load a participant receives, and answers, one message
 * per turn instead of one per transaction. Each element is a whole message, checked on its own.
 * With this count, and the coordinator's byte cap on a batch, the answers to every element fit
 * in one message too.
 */
export const batchMessagesMax = 32;

/**
 * A participant's answers to some elements of a batch, each under the element's index. Answers
 * leave when they are ready, so one batch may be answered by several of these.
 */
export interface BatchReplies {
  readonly v: 1;
  readonly kind: 'replies';
  readonly replies: readonly { readonly index: number; readonly reply: ParticipantReply }[];
}

/**
 * The coordinator's term of leadership, stamped on everything it sends to participants and on its
 * status answers. A participant refuses anything from an older term than the newest it has seen:
 * a coordinator that lost its lease (paused, cut off) can then do no harm. See docs/failover.md.
 */
export interface Fenced {
  readonly epoch: number;
}

export const epochMax = Number.MAX_SAFE_INTEGER;

interface VoteFields {
  readonly v: 1;
  readonly kind: 'vote';
  readonly txId: string;
  readonly participant: ParticipantName;
}

/** A NO vote always says why, so the client learns which participant refused and for what. */
export type VoteReply =
  | (VoteFields & { readonly vote: 'yes' })
  | (VoteFields & { readonly vote: 'no'; readonly reason: string });

export interface AckReply {
  readonly v: 1;
  readonly kind: 'ack';
  readonly txId: string;
  readonly participant: ParticipantName;
  readonly decision: Decision;
}

export type ParticipantReply = VoteReply | AckReply | ErrorReply;
export type PayReply = OutcomeReply | InProgressReply | ErrorReply;

// ---------------------------------------------------------------------------------------------
// Decoding. Each decoder takes the raw bytes, enforces the size cap, parses, and checks every
// field. The result is a fresh object holding only the known fields, so nothing unchecked leaks.

type Fields = Readonly<Record<string, unknown>>;

/** One decoder for every message: a whole-buffer decode keeps no state between calls. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function parseMessage(bytes: Uint8Array): Fields {
  if (bytes.byteLength > messageBytesMax) {
    throw new ValidationError(
      'message',
      `${bytes.byteLength} bytes exceeds ${messageBytesMax}`,
      'payload-too-large',
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch {
    throw new ValidationError('message', 'not valid UTF-8 JSON');
  }
  return asMessage(value);
}

/** A message's fields: an object of this protocol's version (a batch's elements are too). */
function asMessage(value: unknown): Fields {
  const fields = asObject(value, 'message');
  if (fields['v'] !== protocolVersion) {
    throw new ValidationError('v', `must be ${protocolVersion}`);
  }
  return fields;
}

/** A batch's list: 1 to batchMessagesMax elements, each left for its own check. */
function readList(fields: Fields, key: string): readonly unknown[] {
  const list = fields[key];
  if (!Array.isArray(list) || list.length === 0 || list.length > batchMessagesMax) {
    throw new ValidationError(key, `must be a list of 1 to ${batchMessagesMax}`);
  }
  return list;
}

function asObject(value: unknown, field: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError(field, 'must be an object');
  }
  return value as Fields;
}

function readString(fields: Fields, key: string, pattern: RegExp, path = key): string {
  const value = fields[key];
  if (typeof value !== 'string') throw new ValidationError(path, 'must be a string');
  if (!pattern.test(value)) throw new ValidationError(path, `must match ${String(pattern)}`);
  return value;
}

function readInteger(fields: Fields, key: string, min: number, max: number, path = key): number {
  const value = fields[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new ValidationError(path, 'must be an integer');
  }
  if (value < min || value > max) {
    throw new ValidationError(path, `must be between ${min} and ${max}`);
  }
  return value;
}

/** Reads a field that must be one of a fixed set of strings (`kind` unless another is named). */
function readOneOf<K extends string>(fields: Fields, values: readonly K[], key = 'kind'): K {
  const value = fields[key];
  if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) {
    throw new ValidationError(key, `must be one of ${values.join(', ')}`);
  }
  return value as K;
}

function readBoolean(fields: Fields, key: string): boolean {
  const value = fields[key];
  if (typeof value !== 'boolean') throw new ValidationError(key, 'must be true or false');
  return value;
}

function readOrderLine(value: unknown, path: string): OrderLine {
  const fields = asObject(value, path);
  return {
    sku: readString(fields, 'sku', identifierPattern, `${path}.sku`),
    quantity: readInteger(fields, 'quantity', 1, quantityMax, `${path}.quantity`),
    unitPriceMinor: readInteger(
      fields,
      'unitPriceMinor',
      0,
      amountMinorMax,
      `${path}.unitPriceMinor`,
    ),
  };
}

export function readPayment(value: unknown, path = 'payment'): Payment {
  const fields = asObject(value, path);
  const currency = fields['currency'];
  if (typeof currency !== 'string' || !currencyCodes.has(currency)) {
    throw new ValidationError(`${path}.currency`, 'must be an ISO 4217 currency code');
  }
  const lines = fields['lines'];
  if (!Array.isArray(lines) || lines.length === 0 || lines.length > orderLineCountMax) {
    throw new ValidationError(`${path}.lines`, `must be 1 to ${orderLineCountMax} order lines`);
  }
  return {
    payer: readString(fields, 'payer', identifierPattern, `${path}.payer`),
    payee: readString(fields, 'payee', identifierPattern, `${path}.payee`),
    amountMinor: readInteger(fields, 'amountMinor', 1, amountMinorMax, `${path}.amountMinor`),
    currency,
    orderId: readString(fields, 'orderId', identifierPattern, `${path}.orderId`),
    lines: lines.map((line, index) => readOrderLine(line, `${path}.lines[${index}]`)),
  };
}

export function decodePayRequest(bytes: Uint8Array): PayRequest {
  const fields = parseMessage(bytes);
  readOneOf(fields, ['pay']);
  const request: PayRequest = {
    v: 1,
    kind: 'pay',
    clientId: readString(fields, 'clientId', clientIdPattern),
    idempotencyKey: readString(fields, 'idempotencyKey', idempotencyKeyPattern),
    payment: readPayment(fields['payment']),
  };
  return {
    ...request,
    ...(fields['timeoutMs'] === undefined
      ? {}
      : { timeoutMs: readInteger(fields, 'timeoutMs', paymentTimeoutMsMin, paymentTimeoutMsMax) }),
    ...(fields['waitMs'] === undefined
      ? {}
      : { waitMs: readInteger(fields, 'waitMs', 0, waitMsMax) }),
  };
}

export function decodeStatusRequest(bytes: Uint8Array): StatusRequest {
  const fields = parseMessage(bytes);
  readOneOf(fields, ['status']);
  if (fields['txId'] !== undefined) {
    return { v: 1, kind: 'status', txId: readString(fields, 'txId', transactionIdPattern) };
  }
  return {
    v: 1,
    kind: 'status',
    clientId: readString(fields, 'clientId', clientIdPattern),
    idempotencyKey: readString(fields, 'idempotencyKey', idempotencyKeyPattern),
  };
}

export function decodeParticipantMessage(bytes: Uint8Array): ParticipantMessage & Fenced {
  return readParticipantMessage(parseMessage(bytes));
}

/**
 * What arrives on a participant's subject: one PREPARE or decision, or a batch of them whose
 * elements are left unchecked, so that a bad element spoils only its own answer
 * (readParticipantMessage checks each). Throws ValidationError if the message as a whole is bad.
 */
export type ParticipantDelivery =
  | { readonly kind: 'single'; readonly message: ParticipantMessage & Fenced }
  | { readonly kind: 'batch'; readonly elements: readonly unknown[] };

export function decodeParticipantDelivery(bytes: Uint8Array): ParticipantDelivery {
  const fields = parseMessage(bytes);
  if (fields['kind'] === 'batch') return { kind: 'batch', elements: readList(fields, 'messages') };
  return { kind: 'single', message: readParticipantMessage(fields) };
}

/** A PREPARE or decision, alone or a batch's element. */
export function readParticipantMessage(value: unknown): ParticipantMessage & Fenced {
  const fields = asMessage(value);
  const kind = readOneOf(fields, ['prepare', 'decision']);
  const txId = readString(fields, 'txId', transactionIdPattern);
  const epoch = readInteger(fields, 'epoch', 1, epochMax);
  if (kind === 'prepare') {
    return { v: 1, kind, txId, payment: readPayment(fields['payment']), epoch };
  }
  return { v: 1, kind, txId, decision: readOneOf(fields, decisions, 'decision'), epoch };
}

const decisions = ['commit', 'abort'] as const;
const reasonPattern = /^[a-z0-9][a-z0-9 ._:,()'<>=/-]{0,199}$/i;

function readParticipant(fields: Fields): ParticipantName {
  const value = fields['participant'];
  if (!participantNames.includes(value as ParticipantName)) {
    throw new ValidationError('participant', `must be one of ${participantNames.join(', ')}`);
  }
  return value as ParticipantName;
}

export function decodeParticipantReply(bytes: Uint8Array): ParticipantReply {
  return readParticipantReply(parseMessage(bytes));
}

/**
 * What answers a batch: answers to some of its elements, by index, each left unchecked
 * (readParticipantReply checks it), or an error that refuses the whole batch.
 */
export type ParticipantReplies =
  | { readonly kind: 'error'; readonly error: ErrorReply }
  | {
      readonly kind: 'replies';
      readonly replies: readonly { readonly index: number; readonly reply: unknown }[];
    };

export function decodeParticipantReplies(bytes: Uint8Array): ParticipantReplies {
  const fields = parseMessage(bytes);
  const kind = readOneOf(fields, ['replies', 'error']);
  if (kind === 'error') return { kind, error: decodeErrorFields(fields) };
  const replies = readList(fields, 'replies').map((value, at) => {
    const entry = asObject(value, `replies[${at}]`);
    const index = readInteger(entry, 'index', 0, batchMessagesMax - 1, `replies[${at}].index`);
    return { index, reply: entry['reply'] };
  });
  return { kind, replies };
}

/** A vote, acknowledgement or error, alone or a batch's answer. */
export function readParticipantReply(value: unknown): ParticipantReply {
  const fields = asMessage(value);
  const kind = readOneOf(fields, ['vote', 'ack', 'error']);
  if (kind === 'error') return decodeErrorFields(fields);
  const txId = readString(fields, 'txId', transactionIdPattern);
  const participant = readParticipant(fields);
  if (kind === 'ack') {
    return {
      v: 1,
      kind,
      txId,
      participant,
      decision: readOneOf(fields, decisions, 'decision'),
    };
  }
  const vote = readOneOf(fields, ['yes', 'no'], 'vote');
  if (vote === 'yes') return { v: 1, kind, txId, participant, vote };
  return {
    v: 1,
    kind,
    txId,
    participant,
    vote,
    reason: readString(fields, 'reason', reasonPattern),
  };
}

function decodeErrorFields(fields: Fields): ErrorReply {
  const message = fields['message'];
  return {
    v: 1,
    kind: 'error',
    code: readOneOf(fields, errorCodes, 'code'),
    message: typeof message === 'string' ? message.slice(0, 500) : '',
  };
}

export function decodeStatusReply(bytes: Uint8Array): (StatusReply & Fenced) | ErrorReply {
  const fields = parseMessage(bytes);
  const kind = readOneOf(fields, ['status', 'error']);
  if (kind === 'error') return decodeErrorFields(fields);
  const state = readOneOf(fields, ['unknown', 'preparing', 'committed', 'aborted'], 'state');
  const txId = fields['txId'] === null ? null : readString(fields, 'txId', transactionIdPattern);
  const epoch = readInteger(fields, 'epoch', 1, epochMax);
  return { v: 1, kind, txId, state, ...readOutcomeDetails(fields), epoch };
}

export function decodePayReply(bytes: Uint8Array): PayReply {
  const fields = parseMessage(bytes);
  const kind = readOneOf(fields, ['outcome', 'in-progress', 'error']);
  if (kind === 'error') return decodeErrorFields(fields);
  if (kind === 'in-progress') {
    return {
      v: 1,
      kind,
      txId: readString(fields, 'txId', transactionIdPattern),
      idempotencyKey: readString(fields, 'idempotencyKey', idempotencyKeyPattern),
      retryAfterMs: readInteger(fields, 'retryAfterMs', 0, waitMsMax),
    };
  }
  const reply: OutcomeReply = {
    v: 1,
    kind,
    txId: readString(fields, 'txId', transactionIdPattern),
    idempotencyKey: readString(fields, 'idempotencyKey', idempotencyKeyPattern),
    outcome: readOneOf(fields, ['committed', 'aborted'], 'outcome'),
    replay: readBoolean(fields, 'replay'),
  };
  return { ...reply, ...readOutcomeDetails(fields) };
}

const abortSources: readonly AbortSource[] = [...participantNames, 'coordinator'];

/** The optional details of an outcome or status: who aborted, why, and the receipt. */
export function readOutcomeDetails(fields: Fields): {
  abortedBy?: AbortSource;
  reason?: string;
  receipt?: string;
} {
  const details: { abortedBy?: AbortSource; reason?: string; receipt?: string } = {};
  if (fields['abortedBy'] !== undefined) {
    details.abortedBy = readOneOf(fields, abortSources, 'abortedBy');
  }
  if (fields['reason'] !== undefined) details.reason = readString(fields, 'reason', reasonPattern);
  if (fields['receipt'] !== undefined) {
    details.receipt = readString(fields, 'receipt', /^rcpt-[0-9A-HJKMNP-TV-Z]{26}$/);
  }
  return details;
}

/** The receipt a committed payment carries; the coordinator and the customer's records agree. */
export function receiptFor(txId: string): string {
  return `rcpt-${txId}`;
}

const encoder = new TextEncoder();

/**
 * A message as UTF-8 JSON. `Buffer.from` carves short strings out of Node's shared 8 KiB pool,
 * where `TextEncoder.encode` made an ArrayBuffer of its own for every message, and V8 frees each
 * of those inside a scavenge: in the coordinator that freeing was a fifth to a third of each
 * scavenge's pause (docs/performance.md, "What changed", ninth round). Nothing writes into an
 * encoded message afterwards, so sharing the pool's memory is safe.
 */
export function encodeMessage(message: object): Uint8Array {
  return Buffer.from(JSON.stringify(message), 'utf8');
}

const batchHead = encoder.encode('{"v":1,"kind":"batch","messages":[');
const batchTail = encoder.encode(']}');
const comma = 44;

/**
 * A batch (see batchMessagesMax) of messages already encoded (encodeMessage), without decoding
 * them again: the coordinator encodes a message once for all the participants it goes to.
 */
export function encodeBatch(messages: readonly Uint8Array[]): Uint8Array {
  let length = batchHead.length + batchTail.length + messages.length - 1;
  for (const message of messages) length += message.length;
  // From the same pool when small; every byte is written below, so unzeroed memory is fine.
  const bytes = Buffer.allocUnsafe(length);
  bytes.set(batchHead, 0);
  let at = batchHead.length;
  messages.forEach((message, index) => {
    if (index > 0) bytes[at++] = comma;
    bytes.set(message, at);
    at += message.length;
  });
  bytes.set(batchTail, at);
  return bytes;
}

export function errorReply(code: ErrorCode, message: string): ErrorReply {
  return { v: 1, kind: 'error', code, message };
}

/**
 * A canonical fingerprint of what a payment request asks for: the same payment always gives the
 * same string whatever the field order on the wire, and any difference in payer, payee, amount,
 * currency, order or lines gives a different one. Stored with the idempotency key.
 */
export function paymentFingerprint(payment: Payment): string {
  const lines = payment.lines
    .map((line) => `${line.sku}*${line.quantity}@${line.unitPriceMinor}`)
    .sort()
    .join(',');
  return [
    payment.payer,
    payment.payee,
    payment.amountMinor,
    payment.currency,
    payment.orderId,
    lines,
  ].join('|');
}
