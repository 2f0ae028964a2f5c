/**
 * What a chaos run tells a person: live figures for the progress display, the summary (payments by
 * outcome, faults by kind, violations, time to decide after healing), and an HTML report with one
 * picture: throughput and latency per second with every fault drawn on the same time axis.
 */
import { writeFileSync } from 'node:fs';
import type { HistoryEvent } from './history.ts';

const nsPerS = 1_000_000_000;
const nsPerMs = 1_000_000;

interface Bucket {
  ok: number;
  fail: number;
  info: number;
  latenciesMs: number[];
}

export interface FaultInterval {
  readonly id: number;
  readonly kind: string;
  readonly target: string;
  readonly startS: number;
  endS: number | undefined;
}

/** Figures gathered from history events as they are written. */
export class Timeline {
  readonly buckets: Bucket[] = [];
  readonly faults: FaultInterval[] = [];
  readonly marks: { readonly label: string; readonly atS: number }[] = [];
  readonly counts = { invoked: 0, committed: 0, aborted: 0, refused: 0, unknown: 0 };
  readonly abortedBy = new Map<string, number>();
  readonly refusedBy = new Map<string, number>();
  readonly #invokedAt = new Map<number, number>();
  readonly #openFaults = new Map<number, FaultInterval>();

  observe(event: HistoryEvent): void {
    if (event.process === 'nemesis') {
      this.#observeNemesis(event);
      return;
    }
    if (event.f !== 'pay' || typeof event.process !== 'number') return;
    if (event.type === 'invoke') {
      this.counts.invoked += 1;
      this.#invokedAt.set(event.process, event.time);
      return;
    }
    const started = this.#invokedAt.get(event.process);
    this.#invokedAt.delete(event.process);
    const bucket = this.#bucket(event.time);
    bucket[event.type] += 1;
    if (started !== undefined && event.type !== 'info') {
      bucket.latenciesMs.push((event.time - started) / nsPerMs);
    }
    if (event.type === 'ok') this.counts.committed += 1;
    else if (event.type === 'info') this.counts.unknown += 1;
    else if (event.value['outcome'] === 'aborted') {
      this.counts.aborted += 1;
      increment(this.abortedBy, String(event.value['abortedBy']));
    } else {
      this.counts.refused += 1;
      increment(this.refusedBy, String(event.value['refused']));
    }
  }

  mark(label: string, timeNs: number): void {
    this.marks.push({ label, atS: timeNs / nsPerS });
  }

  /** The run's phases, as the run writes them into its history, are the picture's marks. */
  #observeNemesis(event: HistoryEvent): void {
    if (event.f === 'heal' && event.type === 'invoke') this.mark('heal', event.time);
    else if (event.f === 'settled') this.mark('decided', event.time);
    else if (event.f === 'final-restart' && event.type === 'invoke') {
      this.mark('restart', event.time);
    } else this.#observeFault(event);
  }

  #observeFault(event: HistoryEvent): void {
    const id = Number(event.value['fault']);
    if (!Number.isSafeInteger(id)) return;
    if (event.type === 'invoke' && event.value['phase'] === 'start') {
      const interval: FaultInterval = {
        id,
        kind: event.f,
        target: String(event.value['target']),
        startS: event.time / nsPerS,
        endS: undefined,
      };
      this.faults.push(interval);
      this.#openFaults.set(id, interval);
    } else if (event.type === 'info' && event.value['phase'] === 'stop') {
      const interval = this.#openFaults.get(id);
      if (interval) interval.endS = event.time / nsPerS;
      this.#openFaults.delete(id);
    }
  }

  #bucket(timeNs: number): Bucket {
    const second = Math.floor(timeNs / nsPerS);
    while (this.buckets.length <= second) {
      this.buckets.push({ ok: 0, fail: 0, info: 0, latenciesMs: [] });
    }
    return this.buckets[second] as Bucket;
  }

  /** Completed payments per second over the last `seconds` whole seconds. */
  recentRate(nowNs: number, seconds = 5): number {
    const current = Math.floor(nowNs / nsPerS);
    let total = 0;
    for (let second = current - seconds; second < current; second += 1) {
      const bucket = this.buckets[second];
      if (bucket) total += bucket.ok + bucket.fail + bucket.info;
    }
    return total / seconds;
  }

  latencyMs(): { p50: number; p99: number; max: number } {
    const all = this.buckets.flatMap((bucket) => bucket.latenciesMs).sort((a, b) => a - b);
    return { p50: percentile(all, 0.5), p99: percentile(all, 0.99), max: round(all.at(-1) ?? 0) };
  }

  throughput(untilS: number): { meanPerS: number; peakPerS: number } {
    const seconds = this.buckets.slice(0, Math.max(1, Math.ceil(untilS)));
    const totals = seconds.map((bucket) => bucket.ok + bucket.fail + bucket.info);
    const sum = totals.reduce((a, b) => a + b, 0);
    return { meanPerS: round(sum / Math.max(1, totals.length)), peakPerS: Math.max(0, ...totals) };
  }
}

function increment(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return round(sorted[rank - 1] ?? 0);
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

export interface ChaosSummary {
  readonly seed: number;
  readonly durationS: number;
  readonly clients: number;
  readonly faultKinds: readonly string[];
  readonly mutations: readonly string[];
  /** The participants' barrier retention when the run set one. */
  readonly barrierRetentionMs?: number;
  /** The coordinators' key retention when the run set one, and what it made them do. */
  readonly keyRetention?: {
    readonly ms: number;
    /** Payments the coordinators' purge forgot, from their `keys-purged` log lines. */
    readonly purged: number;
    /** Keys that named more than one payment over the run (answers and final reads). */
    readonly keysReused: number;
  };
  /** Where the coordinators' lease lived. */
  readonly lease: 'nats' | 'journal';
  readonly runDir: string;
  readonly historyFile: string;
  readonly reportFile: string;
  readonly payments: {
    readonly invoked: number;
    readonly keys: number;
    readonly committed: number;
    readonly aborted: number;
    readonly abortedBy: Readonly<Record<string, number>>;
    readonly refused: Readonly<Record<string, number>>;
    readonly unknown: number;
    readonly unknownResolvedAs: Readonly<Record<string, number>>;
  };
  readonly faults: { readonly total: number; readonly byKind: Readonly<Record<string, number>> };
  readonly unexpectedExits: readonly string[];
  readonly throughput: { readonly meanPerS: number; readonly peakPerS: number };
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** From the end of the load to everything running again, in-flight payments finished. */
  readonly healMs: number;
  /** From then until every payment is decided and every participant informed. */
  readonly healToDecidedMs: number | null;
  readonly settledInTime: boolean;
  readonly settleBoundS: number;
  readonly violations: {
    readonly total: number;
    readonly byKind: Readonly<Record<string, number>>;
    readonly first: readonly {
      readonly kind: string;
      readonly message: string;
      readonly txId?: string;
      readonly key?: string;
    }[];
  };
  readonly elapsedS: number;
}

/** The summary as the terminal shows it. */
export function formatSummary(summary: ChaosSummary): string {
  const { payments, faults, violations } = summary;
  const pairs = (record: Readonly<Record<string, number>>): string =>
    Object.entries(record)
      .sort(([, a], [, b]) => b - a)
      .map(([name, count]) => `${name} ${count}`)
      .join(', ') || 'none';
  const verdict =
    violations.total === 0
      ? 'no violations'
      : `${violations.total} VIOLATIONS (${pairs(violations.byKind)})`;
  return [
    `chaos run: seed ${summary.seed}, ${summary.durationS} s, ${summary.clients} clients` +
      (summary.lease === 'journal' ? ', lease in the journal' : '') +
      (summary.mutations.length > 0 ? `, mutations ${summary.mutations.join(',')}` : ''),
    `  payments  ${payments.invoked} requests on ${payments.keys} keys: ` +
      `${payments.committed} committed, ${payments.aborted} aborted, ` +
      `${sum(payments.refused)} refused, ${payments.unknown} unknown`,
    `  aborted by  ${pairs(payments.abortedBy)}`,
    `  refused     ${pairs(payments.refused)}`,
    `  unknown outcomes resolved by key as  ${pairs(payments.unknownResolvedAs)}`,
    ...(summary.keyRetention === undefined
      ? []
      : [
          `  key retention  ${summary.keyRetention.ms} ms: ${summary.keyRetention.purged} ` +
            `payments purged, ${summary.keyRetention.keysReused} keys named a later payment`,
        ]),
    `  faults    ${faults.total}: ${pairs(faults.byKind)}`,
    `  unexpected exits  ${summary.unexpectedExits.length === 0 ? 'none' : summary.unexpectedExits.join(', ')}`,
    `  throughput  ${summary.throughput.meanPerS}/s mean, ${summary.throughput.peakPerS}/s peak; ` +
      `latency p50 ${summary.latencyMs.p50} ms, p99 ${summary.latencyMs.p99} ms, max ${summary.latencyMs.max} ms`,
    `  heal took ${summary.healMs} ms; decided ` +
      (summary.healToDecidedMs === null
        ? `NOT within ${summary.settleBoundS} s`
        : `${summary.healToDecidedMs} ms after (bound ${summary.settleBoundS} s)`),
    `  verdict   ${verdict}`,
    `  run dir   ${summary.runDir}`,
    `  history   ${summary.historyFile}`,
    `  report    ${summary.reportFile}`,
    `  elapsed   ${summary.elapsedS} s`,
  ].join('\n');
}

function sum(record: Readonly<Record<string, number>>): number {
  return Object.values(record).reduce((a, b) => a + b, 0);
}

// ---- the picture -------------------------------------------------------------------------------

const faultColours: Readonly<Record<string, string>> = {
  'kill-participant': '#d62728',
  'kill-coordinator': '#8c1c13',
  'pause-participant': '#ff7f0e',
  'lock-participant': '#fdae6b',
  'pause-coordinator': '#b35900',
  'kill-nats': '#9467bd',
  'pause-nats': '#c5b0d5',
  'link-cut': '#1f77b4',
  'link-delay': '#17becf',
  'link-drop': '#6baed6',
  'link-stall': '#08519c',
  'link-one-way': '#9ecae1',
  'link-duplicate': '#5254a3',
  'retry-storm': '#e377c2',
  'restart-all': '#000000',
  'crash-point': '#bcbd22',
};

const width = 1100;
const left = 60;
const right = 20;
const panelHeight = 170;
const laneHeight = 9;

function escape(value: string): string {
  return value.replace(/[&<>"]/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** Greedy lanes so that overlapping faults are drawn on separate rows. */
function assignLanes(faults: readonly FaultInterval[], endS: number): number[] {
  const laneEnds: number[] = [];
  return faults.map((fault) => {
    const end = fault.endS ?? endS;
    let lane = laneEnds.findIndex((laneEnd) => laneEnd <= fault.startS);
    if (lane < 0) lane = laneEnds.length;
    laneEnds[lane] = end;
    return lane;
  });
}

export function renderSvg(timeline: Timeline, endS: number): string {
  const spanS = Math.max(1, endS);
  const x = (seconds: number): number => left + ((width - left - right) * seconds) / spanS;
  const lanes = assignLanes(timeline.faults, spanS);
  const laneCount = Math.max(1, ...lanes.map((lane) => lane + 1));
  const throughputTop = 20;
  const latencyTop = throughputTop + panelHeight + 30;
  const faultsTop = latencyTop + panelHeight + 30;
  const legendTop = faultsTop + laneCount * laneHeight + 28;
  const height = legendTop + legendRows * legendRowHeight;
  const parts: string[] = [];
  const totals = timeline.buckets.map((bucket) => bucket.ok + bucket.fail + bucket.info);
  const rateMax = Math.max(1, ...totals);
  const p99s = timeline.buckets.map((bucket) =>
    percentile(
      [...bucket.latenciesMs].sort((a, b) => a - b),
      0.99,
    ),
  );
  const latencyMax = Math.max(1, ...p99s);
  for (const [index, fault] of timeline.faults.entries()) {
    const start = x(fault.startS);
    const end = Math.max(start + 1, x(fault.endS ?? spanS));
    const colour = faultColours[fault.kind] ?? '#888888';
    const title = `<title>${escape(`#${fault.id} ${fault.kind} ${fault.target}: ${fault.startS.toFixed(1)}-${(fault.endS ?? spanS).toFixed(1)} s`)}</title>`;
    for (const top of [throughputTop, latencyTop]) {
      parts.push(
        `<rect x="${start}" y="${top}" width="${end - start}" height="${panelHeight}" fill="${colour}" opacity="0.08"/>`,
      );
    }
    const y = faultsTop + (lanes[index] ?? 0) * laneHeight;
    parts.push(
      `<rect x="${start}" y="${y}" width="${end - start}" height="${laneHeight - 2}" fill="${colour}">${title}</rect>`,
    );
  }
  parts.push(...throughputBars(timeline, x, throughputTop, rateMax));
  parts.push(...latencyLines(timeline, x, latencyTop, latencyMax, p99s));
  parts.push(
    ...axes(x, spanS, [throughputTop, latencyTop], faultsTop, laneCount, rateMax, latencyMax),
  );
  for (const [index, mark] of timeline.marks.entries()) {
    const at = x(mark.atS);
    const labelY = throughputTop + 12 + index * 12;
    // The marks come at the end of a run: a label that would leave the picture goes on the left.
    const label =
      at > width - right - 80
        ? `<text x="${at - 3}" y="${labelY}" font-size="11" text-anchor="end">`
        : `<text x="${at + 3}" y="${labelY}" font-size="11">`;
    parts.push(
      `<line x1="${at}" x2="${at}" y1="${throughputTop}" y2="${faultsTop + laneCount * laneHeight}" stroke="#333" stroke-dasharray="4 3"/>`,
      `${label}${escape(mark.label)}</text>`,
    );
  }
  parts.push(...legend(legendTop));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...parts,
    '</svg>',
  ].join('\n');
}

function throughputBars(
  timeline: Timeline,
  x: (seconds: number) => number,
  top: number,
  rateMax: number,
): string[] {
  const parts: string[] = [];
  const scale = panelHeight / rateMax;
  for (const [second, bucket] of timeline.buckets.entries()) {
    const barWidth = Math.max(1, x(second + 1) - x(second) - 0.5);
    let y = top + panelHeight;
    for (const [count, colour] of [
      [bucket.ok, '#2ca02c'],
      [bucket.fail, '#ff9896'],
      [bucket.info, '#7f7f7f'],
    ] as const) {
      if (count === 0) continue;
      const h = count * scale;
      y -= h;
      parts.push(
        `<rect x="${x(second)}" y="${y}" width="${barWidth}" height="${h}" fill="${colour}"/>`,
      );
    }
  }
  return parts;
}

function latencyLines(
  timeline: Timeline,
  x: (seconds: number) => number,
  top: number,
  latencyMax: number,
  p99s: readonly number[],
): string[] {
  const y = (ms: number): number => top + panelHeight - (panelHeight * ms) / latencyMax;
  const empty = timeline.buckets.map((bucket) => bucket.latenciesMs.length === 0);
  // A second in which nothing completed has no latency: the line breaks there instead of
  // dropping to zero.
  const lines = (values: readonly number[], colour: string): string[] => {
    const segments: string[][] = [[]];
    values.forEach((value, second) => {
      if (empty[second] === true) segments.push([]);
      else segments.at(-1)?.push(`${x(second + 0.5).toFixed(1)},${y(value).toFixed(1)}`);
    });
    return segments
      .filter((points) => points.length > 0)
      .map((points) => {
        if (points.length > 1) {
          const joined = points.join(' ');
          return `<polyline points="${joined}" fill="none" stroke="${colour}" stroke-width="1.5"/>`;
        }
        const [cx, cy] = (points[0] ?? '0,0').split(',');
        return `<circle cx="${cx}" cy="${cy}" r="2" fill="${colour}"/>`;
      });
  };
  const p50s = timeline.buckets.map((bucket) =>
    percentile(
      [...bucket.latenciesMs].sort((a, b) => a - b),
      0.5,
    ),
  );
  return [...lines(p50s, '#1f77b4'), ...lines(p99s, '#d62728')];
}

function axes(
  x: (seconds: number) => number,
  spanS: number,
  panels: readonly number[],
  faultsTop: number,
  laneCount: number,
  rateMax: number,
  latencyMax: number,
): string[] {
  const parts: string[] = [];
  const step = niceStep(spanS / 12);
  const bottom = faultsTop + laneCount * laneHeight;
  for (let second = 0; second <= spanS; second += step) {
    const at = x(second);
    parts.push(
      `<line x1="${at}" x2="${at}" y1="${bottom}" y2="${bottom + 4}" stroke="#333"/>`,
      `<text x="${at}" y="${bottom + 16}" font-size="10" text-anchor="middle">${second} s</text>`,
    );
  }
  const [throughputTop = 0, latencyTop = 0] = panels;
  const labels = [
    [throughputTop, `payments/s (max ${rateMax}): committed, aborted or refused, unknown`],
    [latencyTop, `latency ms (max ${latencyMax}): p50 blue, p99 red`],
    [faultsTop - 4, 'faults (one row per overlapping fault; hover for details)'],
  ] as const;
  for (const [top, label] of labels) {
    parts.push(`<text x="${left}" y="${top - 4}" font-size="11">${escape(label)}</text>`);
  }
  for (const top of panels) {
    parts.push(
      `<rect x="${left}" y="${top}" width="${width - left - right}" height="${panelHeight}" fill="none" stroke="#999"/>`,
    );
  }
  return parts;
}

const legendColumns = 7;
const legendRowHeight = 16;
const legendRows = Math.ceil(Object.keys(faultColours).length / legendColumns);

function legend(top: number): string[] {
  return Object.entries(faultColours).map(([kind, colour], index) => {
    const column = index % legendColumns;
    const row = Math.floor(index / legendColumns);
    const lx = left + column * 145;
    const ly = top + row * legendRowHeight;
    return (
      `<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${colour}"/>` +
      `<text x="${lx + 14}" y="${ly}" font-size="11">${kind}</text>`
    );
  });
}

function niceStep(raw: number): number {
  for (const step of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600]) if (step >= raw) return step;
  return 1_200;
}

/** Writes report.html (the picture, the summary, the violations) into the run's directory. */
export function writeReport(
  file: string,
  summary: ChaosSummary,
  timeline: Timeline,
  endS: number,
  violationsText: string,
): void {
  const html = [
    '<!doctype html>',
    '<html><head><meta charset="utf-8"><title>Continuum chaos run</title>',
    '<style>body{font-family:sans-serif;margin:24px}pre{background:#f6f6f6;padding:12px;overflow:auto}</style>',
    '</head><body>',
    `<h1>Continuum chaos run, seed ${summary.seed}</h1>`,
    renderSvg(timeline, endS),
    '<h2>Summary</h2>',
    `<pre>${escape(formatSummary(summary))}</pre>`,
    '<h2>Violations</h2>',
    `<pre>${escape(violationsText === '' ? 'none' : violationsText)}</pre>`,
    '<h2>Summary as JSON</h2>',
    `<pre>${escape(JSON.stringify(summary, null, 2))}</pre>`,
    '</body></html>',
  ].join('\n');
  writeFileSync(file, html);
}
