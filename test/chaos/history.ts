/**
 * The run's history, one JSON object per line in Jepsen's shape (REFERENCE.md § Fault testing):
 *
 *   {"index":0,"type":"invoke","f":"pay","process":3,"time":1203000000,"value":{…},"error":null}
 *
 * - `type`: `invoke` when an operation starts; `ok` (it took effect: committed), `fail` (it
 *   certainly did not: aborted, or refused as a key mismatch) or `info` (unknown) when it ends.
 * - `process`: a client's number. A client whose last operation ended `info` continues under a
 *   new number, as in Jepsen, because it may still have that operation in flight. The nemesis is
 *   `"nemesis"`; the final reads by key are `"reader"`.
 * - `f`: `pay` or `read` for clients; the fault kind for the nemesis, whose actions are `invoke`
 *   and `info` pairs with `value.phase` `start` or `stop`.
 * - `time`: nanoseconds since the run started (monotonic clock), as Jepsen records it.
 *
 * Faults are in the same file as the operations, so one file shows what broke while what ran.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';

export type OpType = 'invoke' | 'ok' | 'fail' | 'info';
export type ProcessId = number | 'nemesis' | 'reader';

export interface HistoryEvent {
  readonly index: number;
  readonly type: OpType;
  readonly f: string;
  readonly process: ProcessId;
  readonly time: number;
  readonly value: Readonly<Record<string, unknown>>;
  readonly error: string | null;
}

/** Appends events to the history file; keeps nothing in memory but a few counters. */
export class HistoryWriter {
  readonly file: string;
  readonly #stream: WriteStream;
  readonly #startedAt: bigint;
  readonly #listeners: ((event: HistoryEvent) => void)[] = [];
  #index = 0;
  #closed = false;

  constructor(file: string, startedAt: bigint = process.hrtime.bigint()) {
    this.file = file;
    this.#startedAt = startedAt;
    this.#stream = createWriteStream(file, { flags: 'wx' });
  }

  get count(): number {
    return this.#index;
  }

  /** Nanoseconds since the run started. */
  now(): number {
    return Number(process.hrtime.bigint() - this.#startedAt);
  }

  /** Every appended event is also handed to listeners (progress display, statistics). */
  onEvent(listener: (event: HistoryEvent) => void): void {
    this.#listeners.push(listener);
  }

  append(
    type: OpType,
    f: string,
    process: ProcessId,
    value: Readonly<Record<string, unknown>>,
    error: string | null = null,
  ): HistoryEvent {
    const index = this.#index;
    const event: HistoryEvent = { index, type, f, process, time: this.now(), value, error };
    this.#index += 1;
    if (!this.#closed) this.#stream.write(`${JSON.stringify(event)}\n`);
    for (const listener of this.#listeners) listener(event);
    return event;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await new Promise<void>((resolve, reject) => {
      this.#stream.once('error', reject);
      this.#stream.end(() => resolve());
    });
  }
}

export class HistoryFormatError extends Error {
  override readonly name = 'HistoryFormatError';
  readonly line: number;
  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.line = line;
  }
}

const opTypes: readonly string[] = ['invoke', 'ok', 'fail', 'info'];

/** Checks one parsed line; a history the checker cannot trust must stop it, not be skipped. */
export function readEvent(file: string, lineNumber: number, text: string): HistoryEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new HistoryFormatError(file, lineNumber, 'not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null) {
    throw new HistoryFormatError(file, lineNumber, 'not an object');
  }
  const event = parsed as Record<string, unknown>;
  const { index, type, f, process, time, value, error } = event;
  const fail = (what: string): never => {
    throw new HistoryFormatError(file, lineNumber, what);
  };
  if (typeof index !== 'number' || !Number.isSafeInteger(index)) fail('index');
  if (typeof type !== 'string' || !opTypes.includes(type)) fail('type');
  if (typeof f !== 'string') fail('f');
  if (typeof process !== 'number' && process !== 'nemesis' && process !== 'reader') fail('process');
  if (typeof time !== 'number') fail('time');
  if (typeof value !== 'object' || value === null) fail('value');
  if (error !== null && typeof error !== 'string') fail('error');
  return event as unknown as HistoryEvent;
}

/** Streams a history file, event by event, checking each line and that indexes run in order. */
export async function forEachEvent(
  file: string,
  visit: (event: HistoryEvent) => void,
): Promise<number> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let lineNumber = 0;
  for await (const text of lines) {
    lineNumber += 1;
    if (text.trim() === '') continue;
    const event = readEvent(file, lineNumber, text);
    if (event.index !== lineNumber - 1) {
      throw new HistoryFormatError(file, lineNumber, `index ${event.index} out of order`);
    }
    visit(event);
  }
  return lineNumber;
}

/** The events at the given indexes (for printing a violation with its history lines). */
export async function eventsAt(
  file: string,
  indexes: ReadonlySet<number>,
): Promise<Map<number, HistoryEvent>> {
  const found = new Map<number, HistoryEvent>();
  if (indexes.size === 0) return found;
  await forEachEvent(file, (event) => {
    if (indexes.has(event.index)) found.set(event.index, event);
  });
  return found;
}

/** One history line as the file holds it. */
export function formatEvent(event: HistoryEvent): string {
  return JSON.stringify(event);
}
