/**
 * The chaos report's picture (test/chaos/report.ts): every label lies inside it, whatever the
 * number of fault kinds in the legend and however close to the end the run's marks come (the
 * 30-minute run's legend lost its last row and its marks their labels before this was checked).
 * And `npm run chaos -- report <dir>` (test/chaos/redraw.ts), which draws a finished run's report
 * again from its history: the same picture the run drew, the same marks.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { faultKinds } from '../chaos/faults.ts';
import type { HistoryEvent } from '../chaos/history.ts';
import { replayTimeline } from '../chaos/redraw.ts';
import { Timeline, renderSvg, type ChaosSummary } from '../chaos/report.ts';

const nsPerS = 1_000_000_000;

function svgSize(svg: string): { width: number; height: number } {
  const match = /<svg [^>]*width="(\d+)" height="(\d+)"/.exec(svg);
  if (match === null) throw new Error('no svg element');
  return { width: Number(match[1]), height: Number(match[2]) };
}

/** Every <text>: where it is anchored, how it is anchored and what it says. */
function texts(svg: string): { x: number; y: number; anchor: string; text: string }[] {
  return [...svg.matchAll(/<text x="([\d.]+)" y="([\d.]+)"([^>]*)>([^<]*)<\/text>/g)].map(
    (match) => ({
      x: Number(match[1]),
      y: Number(match[2]),
      anchor: /text-anchor="(\w+)"/.exec(match[3] ?? '')?.[1] ?? 'start',
      text: match[4] ?? '',
    }),
  );
}

test('every fault kind is in the legend, and every label inside the picture', (t) => {
  const timeline = new Timeline();
  for (const [index, kind] of faultKinds.entries()) {
    const time = (index + 1) * nsPerS;
    const value = { fault: index + 1, target: 'bank', phase: 'start' };
    timeline.observe({
      index,
      type: 'invoke',
      f: kind,
      process: 'nemesis',
      time,
      value,
      error: null,
    });
    const stop = { ...value, phase: 'stop' };
    const later = time + nsPerS / 2;
    timeline.observe({
      index,
      type: 'info',
      f: kind,
      process: 'nemesis',
      time: later,
      value: stop,
      error: null,
    });
  }
  const endS = faultKinds.length + 2;
  for (const [offset, label] of ['heal', 'decided', 'restart'].entries()) {
    timeline.mark(label, (endS - 0.3 + offset * 0.1) * nsPerS);
  }
  const svg = renderSvg(timeline, endS);
  const { width, height } = svgSize(svg);
  const labels = texts(svg);
  const legend = new Set(labels.map((label) => label.text));
  t.deepEqual(
    faultKinds.filter((kind) => !legend.has(kind)),
    [],
    'every kind has its entry',
  );
  // Where a label's text runs from and to, at 8 px per character: more than the 10-11 px
  // sans-serif font takes.
  const extent = ({ x, anchor, text }: { x: number; anchor: string; text: string }) => {
    const length = 8 * text.length;
    if (anchor === 'end') return [x - length, x];
    if (anchor === 'middle') return [x - length / 2, x + length / 2];
    return [x, x + length];
  };
  const outside = labels.filter((label) => {
    const [from = 0, to = 0] = extent(label);
    return label.y > height - 2 || from < 0 || to > width;
  });
  t.deepEqual(outside, [], 'no label leaves the picture');
});

/**
 * A small finished run: two payments, one fault, the heal, everything decided 250 ms after it,
 * and the final restart; its history as the run writes it now, or as it did before the `settled`
 * event (commit 47f64b5). Returns the timeline the run itself observed.
 */
function fakeRun(dir: string, history: 'now' | 'before-settled'): Timeline {
  const events: Omit<HistoryEvent, 'index'>[] = [
    { type: 'invoke', f: 'pay', process: 0, time: 0.5e9, value: {}, error: null },
    {
      type: 'invoke',
      f: 'link-duplicate',
      process: 'nemesis',
      time: 1e9,
      value: { fault: 1, target: 'bank', phase: 'start' },
      error: null,
    },
    { type: 'ok', f: 'pay', process: 0, time: 1.5e9, value: { outcome: 'committed' }, error: null },
    { type: 'invoke', f: 'pay', process: 0, time: 2e9, value: {}, error: null },
    {
      type: 'fail',
      f: 'pay',
      process: 0,
      time: 2.5e9,
      value: { outcome: 'aborted', abortedBy: 'vendor' },
      error: null,
    },
    {
      type: 'info',
      f: 'link-duplicate',
      process: 'nemesis',
      time: 3e9,
      value: { fault: 1, target: 'bank', phase: 'stop', copied: 4 },
      error: null,
    },
    {
      type: 'invoke',
      f: 'heal',
      process: 'nemesis',
      time: 4e9,
      value: { phase: 'start' },
      error: null,
    },
    {
      type: 'info',
      f: 'heal',
      process: 'nemesis',
      time: 4.5e9,
      value: { phase: 'stop', failed: [] },
      error: null,
    },
    ...(history === 'now'
      ? [
          {
            type: 'info',
            f: 'settled',
            process: 'nemesis',
            time: 4.75e9,
            value: { afterHealMs: 250 },
            error: null,
          } as const,
        ]
      : []),
    {
      type: 'invoke',
      f: 'final-restart',
      process: 'nemesis',
      time: 6e9,
      value: { target: 'services' },
      error: null,
    },
    { type: 'ok', f: 'read', process: 'reader', time: 7e9, value: { pass: 2 }, error: null },
  ];
  const lines = events.map((event, index) => JSON.stringify({ index, ...event }));
  writeFileSync(join(dir, 'history.jsonl'), `${lines.join('\n')}\n`);
  const summary: Partial<ChaosSummary> = {
    seed: 1,
    durationS: 5,
    clients: 1,
    faultKinds: ['link-duplicate'],
    mutations: [],
    lease: 'nats',
    runDir: dir,
    historyFile: join(dir, 'history.jsonl'),
    reportFile: join(dir, 'report.html'),
    payments: {
      invoked: 2,
      keys: 2,
      committed: 1,
      aborted: 1,
      abortedBy: { vendor: 1 },
      refused: {},
      unknown: 0,
      unknownResolvedAs: {},
    },
    faults: { total: 1, byKind: { 'link-duplicate': 1 } },
    unexpectedExits: [],
    throughput: { meanPerS: 0.4, peakPerS: 1 },
    latencyMs: { p50: 500, p99: 500, max: 500 },
    healMs: 500,
    healToDecidedMs: 250,
    settledInTime: true,
    settleBoundS: 60,
    violations: { total: 0, byKind: {}, first: [] },
    elapsedS: 7,
  };
  writeFileSync(join(dir, 'summary.json'), JSON.stringify(summary));
  writeFileSync(join(dir, 'violations.txt'), '\n');
  // What the run itself observed, event by event (run.ts hands every event to its timeline).
  const timeline = new Timeline();
  for (const [index, event] of events.entries()) timeline.observe({ index, ...event });
  return timeline;
}

const marks = [
  { label: 'heal', atS: 4 },
  { label: 'decided', atS: 4.75 },
  { label: 'restart', atS: 6 },
];

test("the run's phases in its history are the picture's marks", (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'continuum-redraw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.deepEqual(fakeRun(dir, 'now').marks, marks);
});

for (const history of ['now', 'before-settled'] as const) {
  test(`a run replayed from its history draws the picture the run drew (history ${history})`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'continuum-redraw-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    fakeRun(dir, history);
    const live = fakeRun(mkdtempSync(join(dir, 'live-')), 'now');
    const replayed = await replayTimeline(join(dir, 'history.jsonl'), 250);
    t.deepEqual(replayed.timeline.marks, marks, 'heal, decided 250 ms after, restart');
    t.is(replayed.endS, 7);
    t.deepEqual(replayed.timeline.counts, live.counts);
    t.is(renderSvg(replayed.timeline, replayed.endS), renderSvg(live, 7));
  });
}

test('npm run chaos -- report redraws a run directory and refuses one without a run', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'continuum-redraw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const chaos = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'test/chaos/cli.ts', 'report', ...args], {
      encoding: 'utf8',
    });
  const empty = chaos(dir);
  t.is(empty.status, 2, empty.stderr);
  t.regex(empty.stderr, /is not a finished chaos run: it has no history\.jsonl/);
  t.is(chaos().status, 2, 'no directory');
  t.is(chaos(dir, 'extra').status, 2, 'an extra argument');
  fakeRun(dir, 'now');
  const svg = join(dir, 'picture.svg');
  const done = chaos(dir, '--svg', svg);
  t.is(done.status, 0, done.stderr);
  const report = readFileSync(join(dir, 'report.html'), 'utf8');
  t.true(existsSync(svg));
  t.true(report.includes(readFileSync(svg, 'utf8')), 'the report holds the same picture');
  t.regex(report, /1 committed, 1 aborted/);
});
