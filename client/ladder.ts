/**
 * Ladder diagrams: what happened to a payment, as one lane per party and one row per event.
 *
 * The input is a list of events that each party observed on its own: a message sent, a message
 * received, a durable write, a kill, a restart. Both ends of a message report it, so the renderer
 * first pairs each receive with the latest unpaired send of the same message (same sender,
 * receiver, reference and kind) sent before it, and draws the pair as one arrow at the time it
 * was sent. The latest, because a sender that re-sends after a loss is answered for the copy that
 * arrived. A send that nobody reported receiving is drawn ending in ✗: it was lost, unless its
 * sender says that the receiver does not trace such messages. A receive without a send is drawn
 * at the time it arrived. Marks (writes, kills, restarts) sit on their party's lane; their longer
 * explanations become numbered notes under the diagram, so rows stay within 100 columns.
 *
 * This file is pure: events in, text out. It reads no clock and no files, so the same events give
 * the same diagram, and the unit tests compare exact text.
 */

export const ladderColumns = ['client', 'coordinator', 'bank', 'vendor', 'customer'] as const;
export type LadderColumn = (typeof ladderColumns)[number];

/** What a mark on a lane means; each kind has one symbol (see `markSymbols`). */
export type MarkKind = 'write' | 'fault' | 'restart' | 'pause' | 'wait' | 'info';

export const markSymbols: Readonly<Record<MarkKind, string>> = {
  write: '●',
  fault: '✗',
  restart: '↻',
  pause: '‖',
  wait: '…',
  info: '·',
};

interface MessageFields {
  /** Epoch milliseconds, fractional; every party's clock is the same host clock. */
  readonly at: number;
  readonly from: LadderColumn;
  readonly to: LadderColumn;
  /** Pairs the two ends of a message, together with `match`: a transaction id or a key. */
  readonly ref: string;
  /** The kind of message, as both ends name it (`pay`, `prepare`, `vote yes`, `outcome`). */
  readonly match: string;
  /** Extra text for the note column at the right of the diagram. */
  readonly detail?: string;
}

export type LadderEvent =
  | (MessageFields & {
      readonly kind: 'send';
      /** Drawn on the arrow. */
      readonly label: string;
      /** False when the receiver does not report this message, so a missing receive is no loss. */
      readonly receiptTraced: boolean;
    })
  | (MessageFields & {
      readonly kind: 'receive';
      /** When set, replaces the sender's label: the receiver may know more (a replay, a code). */
      readonly label?: string;
    })
  | {
      readonly kind: 'mark';
      readonly at: number;
      readonly column: LadderColumn;
      readonly mark: MarkKind;
      readonly label: string;
      readonly detail?: string;
    };

export interface LadderOptions {
  /** Time zero of the label column; the earliest event when omitted. */
  readonly startAt?: number;
}

/** One drawn row: an arrow or a mark, at a time. */
type Row =
  | {
      readonly kind: 'arrow';
      readonly at: number;
      readonly from: LadderColumn;
      readonly to: LadderColumn;
      readonly label: string;
      readonly lost: boolean;
      readonly detail: string | undefined;
    }
  | {
      readonly kind: 'mark';
      readonly at: number;
      readonly column: LadderColumn;
      readonly symbol: string;
      readonly label: string;
      readonly detail: string | undefined;
    };

/** Where each lane's line is drawn, in characters from the start of the diagram area. */
const lanePositions: Readonly<Record<LadderColumn, number>> = {
  client: 3,
  coordinator: 28,
  bank: 44,
  vendor: 59,
  customer: 74,
};
/** The last lane plus room for its marks' labels; footnote numbers follow. */
const diagramWidth = 86;
const timeWidth = 8;
/** A receive may be stamped this much before its send: each process reads the clock itself. */
const clockSkewMs = 2;
const lane = '│';

export function renderLadder(events: readonly LadderEvent[], options: LadderOptions = {}): string {
  const rows = toRows(events);
  const startAt = options.startAt ?? Math.min(...events.map((event) => event.at));
  const lines = [header(), emptyRow()];
  const notes: string[] = [];
  for (const row of rows) {
    let line = renderRow(row, startAt);
    if (row.detail !== undefined) {
      notes.push(`[${notes.length + 1}] ${row.detail}`);
      line = `${line.padEnd(timeWidth + 1 + diagramWidth)} [${notes.length}]`;
    }
    lines.push(line);
  }
  lines.push(emptyRow());
  if (notes.length > 0) lines.push('', ...notes);
  return lines.map((line) => line.trimEnd()).join('\n');
}

type SendEvent = Extract<LadderEvent, { kind: 'send' }>;
type ReceiveEvent = Extract<LadderEvent, { kind: 'receive' }>;

/**
 * Pairs every receive with the latest unpaired send of the same message before it. The latest,
 * not the oldest: when a sender re-sends after a loss, it is the re-sent copy that arrived.
 */
function pairMessages(ordered: readonly LadderEvent[]): Map<SendEvent, ReceiveEvent> {
  const pairs = new Map<SendEvent, ReceiveEvent>();
  const sends = ordered.filter((event): event is SendEvent => event.kind === 'send');
  for (const receive of ordered) {
    if (receive.kind !== 'receive') continue;
    const key = messageKey(receive);
    const candidates = sends.filter(
      (send) => !pairs.has(send) && messageKey(send) === key && send.at <= receive.at + clockSkewMs,
    );
    const send = candidates.at(-1);
    if (send !== undefined) pairs.set(send, receive);
  }
  return pairs;
}

/** Pairs sends with receives and returns the rows in time order (ties keep input order). */
function toRows(events: readonly LadderEvent[]): Row[] {
  const ordered = events
    .map((event, index) => ({ event, index }))
    .sort((a, b) => a.event.at - b.event.at || a.index - b.index)
    .map(({ event }) => event);
  const pairs = pairMessages(ordered);
  const paired = new Set(pairs.values());
  const rows: Row[] = [];
  for (const event of ordered) {
    const { at, detail } = event;
    if (event.kind === 'mark') {
      const { column, label } = event;
      rows.push({ kind: 'mark', at, column, symbol: markSymbols[event.mark], label, detail });
    } else if (event.kind === 'send') {
      const receive = pairs.get(event);
      const lost = receive === undefined && event.receiptTraced;
      const label = receive?.label ?? event.label;
      const { from, to } = event;
      rows.push({ kind: 'arrow', at, from, to, label, lost, detail: receive?.detail ?? detail });
    } else if (!paired.has(event)) {
      const { from, to } = event;
      const label = event.label ?? event.match;
      rows.push({ kind: 'arrow', at, from, to, label, lost: false, detail });
    }
  }
  return rows;
}

function messageKey(event: MessageFields): string {
  return JSON.stringify([event.from, event.to, event.ref, event.match]);
}

function header(): string {
  const cells = blankCells(false);
  for (const column of ladderColumns) {
    const start = lanePositions[column] - Math.floor(column.length / 2);
    write(cells, start, column);
  }
  return `${'ms'.padStart(timeWidth)} ${cells.join('')}`;
}

function emptyRow(): string {
  return `${''.padStart(timeWidth)} ${blankCells(true).join('')}`;
}

function renderRow(row: Row, startAt: number): string {
  const cells = blankCells(true);
  if (row.kind === 'mark') {
    const position = lanePositions[row.column];
    cells[position] = row.symbol;
    write(cells, position + 2, fit(row.label, labelRoom(row.column)));
  } else {
    drawArrow(cells, row);
  }
  const time = `+${(row.at - startAt).toFixed(1)}`.padStart(timeWidth);
  return `${time} ${cells.join('')}`;
}

/** How much of a mark's label fits before the next lane (or the end of the diagram). */
function labelRoom(column: LadderColumn): number {
  const index = ladderColumns.indexOf(column);
  const next = ladderColumns[index + 1];
  const end = next === undefined ? diagramWidth : lanePositions[next] - 1;
  return end - (lanePositions[column] + 2);
}

/**
 * Draws `├──label──▶` from the sender's lane to the receiver's (mirrored when it goes left). The
 * lanes in between are crossed with `┼`, and a lost message ends in `✗` instead of a head.
 */
function drawArrow(cells: string[], row: Row & { kind: 'arrow' }): void {
  const from = lanePositions[row.from];
  const to = lanePositions[row.to];
  const rightward = to > from;
  const [low, high] = rightward ? [from, to] : [to, from];
  for (let x = low + 1; x < high; x++) cells[x] = cells[x] === lane ? '┼' : '─';
  cells[from] = rightward ? '├' : '┤';
  const head = row.lost ? '✗' : rightward ? '▶' : '◀';
  cells[rightward ? high - 1 : low + 1] = head;
  // The label sits in the middle of the shaft, with at least one dash on each side.
  const shaft = high - low - 2;
  const label = fit(` ${row.label} `, shaft - 2);
  const start = low + 1 + Math.floor((shaft - label.length) / 2) + (rightward ? 0 : 1);
  write(cells, start, label);
}

function fit(text: string, room: number): string {
  if (text.length <= room) return text;
  return room <= 1 ? text.slice(0, Math.max(0, room)) : `${text.slice(0, room - 1)}…`;
}

function blankCells(withLanes: boolean): string[] {
  const cells = Array.from({ length: diagramWidth }, () => ' ');
  if (withLanes) for (const column of ladderColumns) cells[lanePositions[column]] = lane;
  return cells;
}

function write(cells: string[], start: number, text: string): void {
  // Code points, one per cell: every symbol drawn here is one column wide.
  let x = start;
  for (const char of text) {
    if (x >= 0 && x < cells.length) cells[x] = char;
    x += 1;
  }
}
