/**
 * Ladder diagrams (`client/ladder.ts`) and the sources that feed them (`client/ladder-sources.ts`):
 * pure functions, so each test feeds events or trace lines and compares the exact text or events.
 */
import test from 'ava';
import type { AttemptEvent } from '../../client/index.ts';
import { renderLadder, type LadderEvent } from '../../client/ladder.ts';
import {
  clientEventToLadderEvent,
  parseTraceLines,
  selectTraceLines,
  traceToLadderEvent,
  type TraceLine,
} from '../../client/ladder-sources.ts';

const key = 'key-0000000000000001';
const tx = '01HZX3V2M8Q4J7K9N0P5R6S7T8';
const otherTx = '01HZX3V2M8Q4J7K9N0P5R6S7T9';

type Send = Extract<LadderEvent, { kind: 'send' }>;
type Receive = Extract<LadderEvent, { kind: 'receive' }>;

function send(at: number, from: Send['from'], to: Send['to'], match: string, ref = tx): Send {
  return { kind: 'send', at, from, to, ref, match, label: match, receiptTraced: true };
}

function receive(at: number, from: Receive['from'], to: Receive['to'], match: string): Receive {
  return { kind: 'receive', at, from, to, ref: tx, match };
}

/** The drawn rows only: no header, no blank lane rows, no footnotes. */
function rows(text: string): string[] {
  return text.split('\n').filter((line) => /^ *\+\d/.test(line));
}

test('a payment draws one arrow per message and a mark per write or fault', (t) => {
  const events: LadderEvent[] = [
    { ...send(1000, 'client', 'coordinator', 'pay', key), label: 'pay #1' },
    { kind: 'receive', at: 1000.4, from: 'client', to: 'coordinator', ref: key, match: 'pay' },
    { kind: 'mark', at: 1001, column: 'coordinator', mark: 'write', label: 'begin' },
    send(1001.2, 'coordinator', 'bank', 'prepare'),
    send(1001.3, 'coordinator', 'customer', 'prepare'),
    receive(1002, 'coordinator', 'bank', 'prepare'),
    { kind: 'mark', at: 1003, column: 'bank', mark: 'write', label: 'voted yes' },
    send(1003.5, 'bank', 'coordinator', 'vote yes'),
    receive(1004, 'bank', 'coordinator', 'vote yes'),
    { kind: 'mark', at: 1010, column: 'client', mark: 'fault', label: 'node-1 killed' },
  ];
  t.is(
    renderLadder(events, { startAt: 1000 }),
    [
      '      ms client                 coordinator        bank          vendor        customer',
      '            │                        │               │              │              │',
      '    +0.0    ├─────── pay #1 ────────▶│               │              │              │',
      '    +1.0    │                        ● begin         │              │              │',
      '    +1.2    │                        ├── prepare ───▶│              │              │',
      '    +1.3    │                        ├───────────────┼─ prepare ────┼─────────────✗│',
      '    +3.0    │                        │               ● voted yes    │              │',
      '    +3.5    │                        │◀── vote yes ──┤              │              │',
      '   +10.0    ✗ node-1 killed          │               │              │              │',
      '            │                        │               │              │              │',
    ].join('\n'),
  );
});

test('rows are in time order whatever the input order; ties keep the input order', (t) => {
  const events: LadderEvent[] = [
    { kind: 'mark', at: 30, column: 'bank', mark: 'write', label: 'third' },
    { kind: 'mark', at: 10, column: 'bank', mark: 'write', label: 'first' },
    { kind: 'mark', at: 20, column: 'vendor', mark: 'write', label: 'second a' },
    { kind: 'mark', at: 20, column: 'customer', mark: 'write', label: 'second b' },
  ];
  const labels = rows(renderLadder(events)).map((row) => /● (.+?)\s*(│|$)/.exec(row)?.[1]);
  t.deepEqual(labels, ['first', 'second a', 'second b', 'third']);
  t.regex(rows(renderLadder(events))[0] ?? '', /^ {4}\+0\.0 /, 'time zero is the earliest event');
});

test('a re-sent message pairs with the copy that arrived; the earlier copy is drawn lost', (t) => {
  const text = renderLadder([
    send(0, 'coordinator', 'bank', 'prepare'),
    send(500, 'coordinator', 'bank', 'prepare'),
    receive(501, 'coordinator', 'bank', 'prepare'),
  ]);
  const [first, second] = rows(text);
  t.true(first?.includes('✗│'), 'the first copy never arrived');
  t.true(second?.includes('▶│'), 'the second copy arrived');
});

test('a receive stamped a moment before its send (clock skew) still pairs with it', (t) => {
  const text = renderLadder([
    send(10.5, 'bank', 'coordinator', 'vote yes'),
    receive(10, 'bank', 'coordinator', 'vote yes'),
  ]);
  t.is(rows(text).length, 1);
  t.true(rows(text)[0]?.includes('◀── vote yes ──┤'));
});

test('a receive without a send is drawn when it arrived, with its own label', (t) => {
  const answer: LadderEvent = {
    kind: 'receive',
    at: 7,
    from: 'coordinator',
    to: 'client',
    ref: key,
    match: 'error',
    label: 'error: key-mismatch',
  };
  const [row] = rows(renderLadder([answer], { startAt: 0 }));
  t.is(row, '    +7.0    │◀─ error: key-mismatch ─┤               │              │              │');
});

test('a send whose receiver does not trace it is not drawn as lost', (t) => {
  const query: LadderEvent = { ...send(0, 'bank', 'coordinator', 'status?'), receiptTraced: false };
  const [row] = rows(renderLadder([query]));
  t.true(row?.includes('◀── status? ───┤'));
  t.false(row?.includes('✗'));
});

test('the receiver may relabel an arrow: the client knows its answer was a replay', (t) => {
  const text = renderLadder([
    { ...send(0, 'coordinator', 'client', 'outcome', key), label: 'committed' },
    {
      kind: 'receive',
      at: 1,
      from: 'coordinator',
      to: 'client',
      ref: key,
      match: 'outcome',
      label: 'committed (replay)',
    },
  ]);
  t.true(rows(text)[0]?.includes('◀─ committed (replay) ──┤'));
});

test('messages pair only with the same sender, receiver, reference and kind', (t) => {
  const text = renderLadder([
    send(0, 'coordinator', 'bank', 'prepare', tx),
    { ...receive(1, 'coordinator', 'bank', 'prepare'), ref: otherTx },
    send(2, 'coordinator', 'vendor', 'commit'),
    receive(3, 'coordinator', 'vendor', 'abort'),
  ]);
  const drawn = rows(text);
  t.is(drawn.length, 4, 'nothing paired: two lost sends, two receives drawn alone');
  t.is(drawn.filter((row) => row.includes('✗')).length, 2);
});

test('lanes stay at fixed columns; a long label is cut with …, never drawn over a lane', (t) => {
  const long = 'a label much longer than the space between two lanes';
  const text = renderLadder([
    { kind: 'mark', at: 0, column: 'bank', mark: 'fault', label: long },
    { ...send(1, 'coordinator', 'bank', 'prepare'), label: long },
    { ...send(2, 'client', 'coordinator', 'pay', key), label: long },
  ]);
  const lines = text.split('\n').filter((line) => line.includes('│'));
  const lanes = (line: string): number[] =>
    Array.from(line).flatMap((char, index) => ('│├┤┼●✗▶◀'.includes(char) ? [index] : []));
  const reference = lanes(lines[0] ?? '');
  t.deepEqual(reference.length, 5);
  for (const line of lines) {
    for (const position of reference) t.not(line[position], ' ', `a lane at ${position}: ${line}`);
  }
  t.true(text.includes('…'));
  t.false(text.includes('two lanes'));
});

test('footnotes are numbered in row order', (t) => {
  const text = renderLadder([
    { kind: 'mark', at: 2, column: 'vendor', mark: 'restart', label: 'resumed', detail: 'second' },
    { kind: 'mark', at: 1, column: 'vendor', mark: 'pause', label: 'paused', detail: 'first' },
  ]);
  t.deepEqual(text.split('\n').slice(-2), ['[1] first', '[2] second']);
  t.regex(rows(text)[0] ?? '', /‖ paused .*\[1\]$/);
});

// ---------------------------------------------------------------------------------------------
// Sources.

/** Trace lines as a service writes them, with a log line and a torn last line among them. */
const traceText = [
  '{"time":"2026-11-23T11:00:00.000Z","level":"info","event":"ready"}',
  ...[
    { at: 100.5, step: 'receive', peer: 'client', idempotencyKey: key, what: 'pay' },
    { at: 101, step: 'journal', txId: tx, what: 'begin' },
    { at: 101.2, step: 'send', peer: 'bank', txId: tx, what: 'prepare' },
    { at: 120, step: 'reply', peer: 'client', txId: tx, idempotencyKey: key, what: 'committed' },
    { at: 130, step: 'journal', txId: otherTx, what: 'begin' },
    { at: 140, step: 'dance', what: 'x' },
  ].map(({ at, ...fields }) =>
    JSON.stringify({ event: 'trace', at, service: 'coordinator', ...fields }),
  ),
  '{"event":"trace","at":1',
].join('\n');

test('parseTraceLines keeps well-formed trace lines and skips logs and torn lines', (t) => {
  const lines = parseTraceLines(traceText);
  t.is(lines.length, 5);
  t.deepEqual(lines[0], {
    at: 100.5,
    service: 'coordinator',
    step: 'receive',
    peer: 'client',
    idempotencyKey: key,
    what: 'pay',
  });
});

test("selectTraceLines finds a key's transactions through the coordinator's reply", (t) => {
  const lines = parseTraceLines(traceText);
  const selection = { idempotencyKeys: new Set([key]), txIds: new Set<string>() };
  const all = selectTraceLines(lines, { ...selection, fromAt: 0, toAt: 1_000 });
  t.deepEqual(
    all.map((line) => line.at),
    [100.5, 101, 101.2, 120],
    'the other transaction is left out',
  );
  const window = selectTraceLines(lines, { ...selection, fromAt: 101, toAt: 119 });
  t.deepEqual(
    window.map((line) => line.at),
    [101, 101.2],
  );
});

function line(
  fields: Partial<TraceLine> & Pick<TraceLine, 'service' | 'step' | 'what'>,
): TraceLine {
  return { at: 5, ...fields };
}

test('trace lines become sends, receives and marks that name both ends alike', (t) => {
  const prepare = line({
    service: 'coordinator',
    step: 'send',
    peer: 'bank',
    txId: tx,
    what: 'prepare',
  });
  const got = line({
    service: 'bank',
    step: 'receive',
    peer: 'coordinator',
    txId: tx,
    what: 'prepare',
  });
  t.like(traceToLadderEvent(prepare), {
    kind: 'send',
    from: 'coordinator',
    to: 'bank',
    match: 'prepare',
  });
  t.like(traceToLadderEvent(got), {
    kind: 'receive',
    from: 'coordinator',
    to: 'bank',
    match: 'prepare',
  });
  const local = line({ service: 'bank', step: 'local', txId: tx, what: 'commit applied' });
  t.like(traceToLadderEvent(local), {
    kind: 'mark',
    column: 'bank',
    mark: 'write',
    label: 'committed',
  });
  const reply = line({
    service: 'coordinator',
    step: 'reply',
    peer: 'client',
    txId: tx,
    idempotencyKey: key,
    what: 'in progress',
  });
  t.like(traceToLadderEvent(reply), { kind: 'send', to: 'client', ref: key, match: 'in-progress' });
  const query = line({
    service: 'bank',
    step: 'send',
    peer: 'coordinator',
    txId: tx,
    what: 'status?',
  });
  t.like(traceToLadderEvent(query), { kind: 'send', receiptTraced: false });
  const silent = line({
    service: 'coordinator',
    step: 'receive',
    peer: 'vendor',
    txId: tx,
    what: 'no answer (no responders)',
  });
  t.like(traceToLadderEvent(silent), {
    kind: 'mark',
    column: 'vendor',
    mark: 'wait',
    detail: 'coordinator: no answer from vendor (no responders)',
  });
  t.is(traceToLadderEvent(line({ service: 'gateway', step: 'local', what: 'x' })), undefined);
});

test('client events: a retry says "same key", a failure is a mark, in-progress draws none', (t) => {
  const context = { at: 9, idempotencyKey: key };
  const event = (value: AttemptEvent): LadderEvent | undefined =>
    clientEventToLadderEvent(value, context);
  t.like(event({ kind: 'sent', attempt: 1, idempotencyKey: key }), {
    label: 'pay #1',
    match: 'pay',
  });
  t.like(event({ kind: 'sent', attempt: 2, idempotencyKey: key }), { label: 'pay #2 same key' });
  t.like(
    clientEventToLadderEvent(
      { kind: 'sent', attempt: 1, idempotencyKey: key },
      { ...context, tag: 'submit 2' },
    ),
    {
      label: 'pay #1 (submit 2)',
    },
  );
  t.like(event({ kind: 'answered', attempt: 1, answer: 'outcome' }), {
    kind: 'receive',
    match: 'outcome',
  });
  t.like(
    event({ kind: 'failed', attempt: 1, failure: 'unknown', detail: 'TimeoutError: timeout' }),
    {
      kind: 'mark',
      column: 'client',
      mark: 'fault',
      label: 'no answer',
    },
  );
  t.is(event({ kind: 'failed', attempt: 1, failure: 'in-progress', detail: tx }), undefined);
});

test('a reply lost with a killed server is drawn lost, and the retry gets the replay', (t) => {
  const trace = parseTraceLines(traceText).filter((entry) => entry.txId !== otherTx);
  const fromTrace = trace.flatMap((entry) => traceToLadderEvent(entry) ?? []);
  const client = (value: AttemptEvent, at: number): LadderEvent[] => {
    const drawn = clientEventToLadderEvent(value, { at, idempotencyKey: key });
    return drawn === undefined ? [] : [drawn];
  };
  const events: LadderEvent[] = [
    ...fromTrace,
    ...client({ kind: 'sent', attempt: 1, idempotencyKey: key }, 100),
    { kind: 'mark', at: 125, column: 'client', mark: 'fault', label: 'node-1 killed' },
    ...client({ kind: 'failed', attempt: 1, failure: 'unknown', detail: 'timeout' }, 2100),
    ...client({ kind: 'sent', attempt: 2, idempotencyKey: key }, 2150),
    { kind: 'receive', at: 2151, from: 'client', to: 'coordinator', ref: key, match: 'pay' },
    { ...send(2152, 'coordinator', 'client', 'outcome', key), label: 'committed' },
    {
      kind: 'receive',
      at: 2153,
      from: 'coordinator',
      to: 'client',
      ref: key,
      match: 'outcome',
      label: 'committed (replay)',
    },
  ];
  const drawn = rows(renderLadder(events, { startAt: 100 }));
  t.true(
    drawn.some((row) => row.includes('│✗────── committed ──────┤')),
    'the first answer is lost',
  );
  t.true(drawn.some((row) => row.includes('pay #2 same key')));
  t.true(drawn.some((row) => row.includes('◀─ committed (replay) ──┤')));
  t.regex(drawn.at(-1) ?? '', /^ +\+2052\.0 /, 'an arrow is drawn when it was sent');
});
