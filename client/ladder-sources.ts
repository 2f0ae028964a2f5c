/**
 * Turns what the parties recorded into ladder events (`client/ladder.ts`): the services' trace
 * lines (`common/trace.ts`, written with CONTINUUM_TRACE=1) and the client's attempt events.
 *
 * Each source names a message the way its own code does; this file maps both ends to one
 * `match` string so the renderer can pair them: the coordinator's `reply committed` and the
 * client's `answered outcome` are both `outcome`. Pure: text and values in, events out.
 */
import type { AttemptEvent } from './index.ts';
import { ladderColumns, type LadderColumn, type LadderEvent } from './ladder.ts';

/** One line a service wrote with CONTINUUM_TRACE=1. */
export interface TraceLine {
  readonly at: number;
  readonly service: string;
  readonly step: 'receive' | 'send' | 'reply' | 'journal' | 'local';
  readonly peer?: string;
  readonly txId?: string;
  readonly idempotencyKey?: string;
  readonly what: string;
}

const traceSteps: readonly string[] = ['receive', 'send', 'reply', 'journal', 'local'];

/** The trace lines of a log file; every other line (logs, half-written lines) is skipped. */
export function parseTraceLines(text: string): TraceLine[] {
  const lines: TraceLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{"event":"trace"')) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    const trace = readTraceLine(value);
    if (trace !== undefined) lines.push(trace);
  }
  return lines;
}

function readTraceLine(value: unknown): TraceLine | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const fields = value as Record<string, unknown>;
  const { at, service, step, what } = fields;
  if (typeof at !== 'number' || typeof service !== 'string' || typeof what !== 'string') {
    return undefined;
  }
  if (typeof step !== 'string' || !traceSteps.includes(step)) return undefined;
  const optional = (key: string): Record<string, string> => {
    const text = fields[key];
    return typeof text === 'string' ? { [key]: text } : {};
  };
  return {
    at,
    service,
    step: step as TraceLine['step'],
    what,
    ...optional('peer'),
    ...optional('txId'),
    ...optional('idempotencyKey'),
  };
}

export interface TraceSelection {
  /** Only lines from this time on (epoch ms)... */
  readonly fromAt: number;
  /** ...up to this time. */
  readonly toAt: number;
  /** The scenario's idempotency keys; the transactions they started are found from them. */
  readonly idempotencyKeys: ReadonlySet<string>;
  /** Transaction ids known from elsewhere (the client's outcomes). */
  readonly txIds: ReadonlySet<string>;
}

/**
 * The lines of one scenario: inside its time window, and naming one of its keys or transactions.
 * The coordinator's replies carry both a key and a transaction id, which links the two; the link
 * may come from outside the window (an answer that came after it).
 */
export function selectTraceLines(
  lines: readonly TraceLine[],
  selection: TraceSelection,
): TraceLine[] {
  const txIds = new Set(selection.txIds);
  for (const line of lines) {
    const key = line.idempotencyKey;
    if (key !== undefined && selection.idempotencyKeys.has(key) && line.txId !== undefined) {
      txIds.add(line.txId);
    }
  }
  return lines.filter(
    (line) =>
      line.at >= selection.fromAt &&
      line.at <= selection.toAt &&
      ((line.txId !== undefined && txIds.has(line.txId)) ||
        (line.idempotencyKey !== undefined && selection.idempotencyKeys.has(line.idempotencyKey))),
  );
}

function column(name: string | undefined): LadderColumn | undefined {
  return ladderColumns.find((candidate) => candidate === name);
}

/** A participant's local steps, named to fit a lane; the mark itself says "durable write". */
const localLabels: Readonly<Record<string, string>> = {
  'yes durable': 'voted yes',
  'no durable': 'voted no',
  'commit applied': 'committed',
  'abort applied': 'aborted',
};

/** The ladder event for one trace line, or undefined for a line that draws nothing. */
export function traceToLadderEvent(line: TraceLine): LadderEvent | undefined {
  const self = column(line.service);
  if (self === undefined) return undefined;
  const { at, what } = line;
  const ref = line.txId ?? line.idempotencyKey ?? '';
  const peer = column(line.peer);
  switch (line.step) {
    case 'journal':
      return { kind: 'mark', at, column: self, mark: 'write', label: what };
    case 'local':
      return { kind: 'mark', at, column: self, mark: 'write', label: localLabels[what] ?? what };
    case 'send':
    case 'reply': {
      if (peer === undefined) return undefined;
      if (peer === 'client') return replyToClient(line, self);
      // A participant's status query is answered by the coordinator without a trace line.
      const receiptTraced = what !== 'status?';
      return {
        kind: 'send',
        at,
        from: self,
        to: peer,
        ref,
        match: what,
        label: what,
        receiptTraced,
      };
    }
    case 'receive': {
      if (peer === undefined) return undefined;
      if (peer === 'client') {
        const key = line.idempotencyKey ?? '';
        return { kind: 'receive', at, from: 'client', to: self, ref: key, match: what };
      }
      if (what.startsWith('no answer')) {
        // Drawn on the silent party's lane, where the eye looks for it; the note says who saw it.
        const detail = `${self}: ${what.replace('no answer', `no answer from ${peer}`)}`;
        return { kind: 'mark', at, column: peer, mark: 'wait', label: 'no answer', detail };
      }
      if (what.startsWith('status ')) {
        const label = what.slice('status '.length);
        return { kind: 'receive', at, from: peer, to: self, ref, match: what, label };
      }
      return { kind: 'receive', at, from: peer, to: self, ref, match: what };
    }
  }
}

/** The coordinator's answer to a client: an outcome or "in progress", keyed by the client's key. */
function replyToClient(line: TraceLine, self: LadderColumn): LadderEvent {
  const match = line.what === 'in progress' ? 'in-progress' : 'outcome';
  const ref = line.idempotencyKey ?? line.txId ?? '';
  const label = line.what;
  return {
    kind: 'send',
    at: line.at,
    from: self,
    to: 'client',
    ref,
    match,
    label,
    receiptTraced: true,
  };
}

export interface ClientEventContext {
  readonly at: number;
  readonly idempotencyKey: string;
  /** Tells concurrent submissions of one key apart on the arrows, e.g. `submit 2`. */
  readonly tag?: string;
}

/**
 * The ladder event for one of the client's attempt events. An attempt after the first is labelled
 * as a retry with the same key. "In progress" and "overloaded" draw no mark of their own: the
 * answer's arrow already shows them, and the retry follows.
 */
export function clientEventToLadderEvent(
  event: AttemptEvent,
  context: ClientEventContext,
): LadderEvent | undefined {
  const { at, idempotencyKey: ref } = context;
  const tag = context.tag === undefined ? '' : ` (${context.tag})`;
  switch (event.kind) {
    case 'sent': {
      const retry = event.attempt > 1 ? ' same key' : '';
      const label = `pay #${event.attempt}${tag}${retry}`;
      const to = 'coordinator';
      return {
        kind: 'send',
        at,
        from: 'client',
        to,
        ref,
        match: 'pay',
        label,
        receiptTraced: true,
      };
    }
    case 'answered': {
      const match = event.answer === 'in-progress' ? 'in-progress' : event.answer;
      return { kind: 'receive', at, from: 'coordinator', to: 'client', ref, match };
    }
    case 'failed': {
      if (event.failure === 'in-progress' || event.failure === 'overloaded') return undefined;
      const label = event.failure === 'never-delivered' ? 'no responders' : 'no answer';
      const meaning =
        event.failure === 'never-delivered'
          ? 'never delivered'
          : 'outcome unknown, retry with the same key';
      const detail = `attempt ${event.attempt}${tag}: ${meaning} (${event.detail})`;
      return { kind: 'mark', at, column: 'client', mark: 'fault', label, detail };
    }
  }
}
