/**
 * The record of a run: every event with its virtual time and step, kept in a ring buffer of the
 * last entries (or all of them, for replay comparisons). Entries hold references to the messages
 * and inputs themselves and are turned into text only when printed, so tracing costs a run almost
 * nothing until it fails.
 */

interface Entry {
  readonly atMs: number;
  readonly step: number;
  readonly node: string;
  readonly what: string;
  readonly detail: unknown;
}

export class Trace {
  readonly #capacity: number;
  readonly #keepAll: boolean;
  readonly #entries: Entry[] = [];
  #next = 0;

  constructor(capacity: number, keepAll: boolean) {
    this.#capacity = Math.max(1, capacity);
    this.#keepAll = keepAll;
  }

  add(atMs: number, step: number, node: string, what: string, detail: unknown): void {
    const entry = { atMs, step, node, what, detail };
    if (this.#keepAll || this.#entries.length < this.#capacity) {
      this.#entries.push(entry);
      return;
    }
    this.#entries[this.#next] = entry;
    this.#next = (this.#next + 1) % this.#capacity;
  }

  /** The last `count` entries as text, oldest first. */
  tail(count: number): string[] {
    const ordered = this.#keepAll
      ? this.#entries
      : [...this.#entries.slice(this.#next), ...this.#entries.slice(0, this.#next)];
    return ordered.slice(Math.max(0, ordered.length - count)).map(formatEntry);
  }

  /** Every entry as text; the whole run when kept, else the ring's content. */
  all(): string[] {
    return this.tail(Number.POSITIVE_INFINITY);
  }
}

function formatEntry(entry: Entry): string {
  const time = `${entry.atMs}ms`.padStart(9);
  const step = `#${entry.step}`.padStart(7);
  const text = `${entry.node.padEnd(11)} ${entry.what.padEnd(8)} ${describe(entry.detail)}`;
  return shorten(`${time} ${step} ${text}`.trimEnd());
}

/** Transaction ids and keys are long and zero-padded; `tx12` and `key7` read better. */
export function shorten(text: string): string {
  return text.replace(/0TX0*(\d+)/g, 'tx$1').replace(/key-0*(\d+)/g, 'key$1');
}

/** Fields worth printing, in this order; nested objects are opened up to two levels. */
const shownFields = [
  'kind',
  'status',
  'txId',
  'clientId',
  'idempotencyKey',
  'participant',
  'vote',
  'decision',
  'state',
  'outcome',
  'abortedBy',
  'reason',
  'code',
  'error',
  'forced',
  'replay',
  'retryAfterMs',
  'waitMs',
  'requestRef',
] as const;
const openedFields = [
  'request',
  'message',
  'reply',
  'query',
  'record',
  'payment',
  'stored',
  'decided',
];

export function describe(detail: unknown, depth = 0): string {
  if (detail === undefined) return '';
  if (typeof detail === 'string') return detail;
  if (typeof detail !== 'object' || detail === null) return JSON.stringify(detail);
  if (Array.isArray(detail)) return `[${detail.map((item) => describe(item, depth)).join('; ')}]`;
  const fields = detail as Readonly<Record<string, unknown>>;
  if (fields['type'] === 'request' || fields['type'] === 'reply') return describePacket(fields);
  if (typeof fields['payer'] === 'string') {
    return `${fields['payer']}->${describe(fields['payee'])} ${describe(fields['amountMinor'])}`;
  }
  const parts: string[] = [];
  for (const name of shownFields) {
    const value = fields[name];
    if (value === undefined) continue;
    const text = describe(value, depth + 1);
    parts.push(name === 'kind' || name === 'status' ? text : `${name}=${text}`);
  }
  if (depth < 2) {
    for (const name of openedFields) {
      const value = fields[name];
      if (value !== undefined) parts.push(`${name}{${describe(value, depth + 1)}}`);
    }
  }
  return parts.join(' ');
}

/** `client-1 -> coordinator [req 7] pay ...`: who, to whom, which request, what. */
function describePacket(packet: Readonly<Record<string, unknown>>): string {
  const body = packet['body'] as Readonly<Record<string, unknown>>;
  const inner = body['request'] ?? body['message'] ?? body['reply'];
  const what =
    body['kind'] === 'no-responders'
      ? 'no responders'
      : body['query'] !== undefined
        ? `status ${describe(body['query'], 1)}`
        : describe(inner, 1);
  const { from, to, requestId } = packet;
  return `${String(from)} -> ${String(to)} [req ${String(requestId)}] ${what}`;
}
