/**
 * An open-loop level over time, as a standalone SVG written by hand: the latency of the window's
 * payments against the time each was scheduled (per 20 ms: the range from fastest to slowest,
 * and the median), the p99 and its target drawn in, and beneath, one lane per JavaScript process
 * with its garbage-collection pauses of 1 ms or more and its write transactions of 2 ms or more.
 * It shows whether the slow payments are spread evenly (queueing) or come in bursts, and what
 * each burst lines up with.
 */
import type { GcKind } from '../common/stats.ts';
import { axisTop, font, line, linearTicks, text } from './chart.ts';
import { percentile } from './report.ts';
import type { LevelResult, NodeProcessName } from './throughput.ts';

const width = 1_000;
const plotX = 90;
const plotWidth = 860;
const plotTop = 80;
const plotHeight = 280;
const laneTop = plotTop + plotHeight + 40;
const laneHeight = 16;
const lanes: readonly NodeProcessName[] = ['coordinator', 'bank', 'vendor', 'customer', 'loader'];
const bucketMs = 20;
const kindColors: Readonly<Record<GcKind | 'commit', string>> = {
  major: '#c0392b',
  incremental: '#e67e22',
  minor: '#7f8c8d',
  weak: '#bdc3c7',
  commit: '#2471a3',
};
const legend: readonly [GcKind | 'commit', string][] = [
  ['major', 'major GC'],
  ['incremental', 'incremental marking'],
  ['minor', 'minor GC'],
  ['commit', 'write transaction ≥ 2 ms'],
];

/** Fastest, median and slowest latency of the payments scheduled in each 20 ms. */
function buckets(
  samples: readonly (readonly [number, number])[],
): [number, number, number, number][] {
  const byBucket = new Map<number, number[]>();
  for (const [atMs, latencyMs] of samples) {
    const index = Math.floor(atMs / bucketMs);
    const list = byBucket.get(index) ?? [];
    list.push(latencyMs);
    byBucket.set(index, list);
  }
  return [...byBucket.entries()]
    .sort(([a], [b]) => a - b)
    .map(([index, list]) => {
      list.sort((a, b) => a - b);
      return [index * bucketMs, list[0] as number, percentile(list, 0.5), list.at(-1) as number];
    });
}

export interface TimelineChartInput {
  readonly level: LevelResult;
  readonly subtitle: string;
  readonly targetP99Ms: number;
}

/** The SVG, or undefined for a level without samples (a closed loop). */
export function renderTimeline({ level, subtitle, targetP99Ms }: TimelineChartInput) {
  const samples = level.window.samples;
  const tail = level.tail;
  if (samples === undefined || tail === undefined || samples.length === 0) return undefined;
  const spanMs = level.window.seconds * 1_000;
  const { p50Ms, p99Ms, maxMs } = level.window.latency;
  const yMax = axisTop(Math.max(maxMs, targetP99Ms) * 1.05);
  const x = (ms: number): number =>
    plotX + (Math.min(Math.max(ms, 0), spanMs) / spanMs) * plotWidth;
  const y = (ms: number): number => plotTop + plotHeight - (ms / yMax) * plotHeight;
  const parts: string[] = [];
  const height = laneTop + lanes.length * laneHeight + 86;
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    text(
      width / 2,
      28,
      `Open loop at ${level.load.toLocaleString('en-US')} payments/s: every payment's latency over time, GC pauses and slow commits`,
      '',
      16,
    ),
    text(width / 2, 48, subtitle, '', 11),
  );
  // Axes and grid.
  for (const ms of linearTicks(yMax)) {
    parts.push(
      line(plotX, y(ms), plotX + plotWidth, y(ms), 'stroke="#eee"'),
      text(plotX - 8, y(ms) + 4, `${ms}`, '', 11, 'end'),
    );
  }
  const seconds = Math.round(spanMs / 1_000);
  for (let s = 0; s <= seconds; s += 1) {
    parts.push(
      line(
        x(s * 1_000),
        plotTop + plotHeight,
        x(s * 1_000),
        plotTop + plotHeight + 4,
        'stroke="#444"',
      ),
      text(x(s * 1_000), plotTop + plotHeight + 17, `${s}`, '', 11),
    );
  }
  parts.push(
    line(plotX, plotTop, plotX, plotTop + plotHeight, 'stroke="#444"'),
    line(plotX, plotTop + plotHeight, plotX + plotWidth, plotTop + plotHeight, 'stroke="#444"'),
    `<text x="24" y="${(plotTop + plotHeight / 2).toFixed(1)}" ${font} font-size="12" text-anchor="middle" transform="rotate(-90 24 ${(plotTop + plotHeight / 2).toFixed(1)})">latency, ms</text>`,
    text(
      plotX + plotWidth / 2,
      plotTop + plotHeight + 32,
      'scheduled at, s after the window began',
      '',
      12,
    ),
  );
  // Latency: per 20 ms, fastest to slowest as a bar, the median as a dot.
  for (const [atMs, fastest, median, slowest] of buckets(samples)) {
    const cx = x(atMs + bucketMs / 2);
    parts.push(
      line(cx, y(fastest), cx, y(slowest), 'stroke="#9ecae1" stroke-width="1.6"'),
      `<circle cx="${cx.toFixed(1)}" cy="${y(median).toFixed(1)}" r="1.3" fill="#1f6fb4"/>`,
    );
  }
  // p99 and its target.
  parts.push(
    line(plotX, y(p99Ms), plotX + plotWidth, y(p99Ms), 'stroke="#1f6fb4" stroke-dasharray="6 3"'),
    text(plotX + plotWidth - 4, y(p99Ms) - 4, `p99 ${p99Ms} ms (p50 ${p50Ms} ms)`, '', 11, 'end'),
    line(
      plotX,
      y(targetP99Ms),
      plotX + plotWidth,
      y(targetP99Ms),
      'stroke="#2e8b57" stroke-dasharray="2 3"',
    ),
    text(plotX + 4, y(targetP99Ms) - 4, `target p99 ${targetP99Ms} ms`, '', 11, 'start'),
  );
  // GC lanes.
  lanes.forEach((process, index) => {
    const top = laneTop + index * laneHeight;
    parts.push(
      `<rect x="${plotX}" y="${top + 2}" width="${plotWidth}" height="${laneHeight - 4}" fill="#f6f6f6"/>`,
      text(plotX - 8, top + laneHeight - 4, process, '', 11, 'end'),
    );
    for (const pause of tail.pauses) {
      if (pause.process !== process) continue;
      const left = x(pause.atMs);
      const span = Math.max(1.2, x(pause.atMs + pause.ms) - left);
      parts.push(
        `<rect x="${left.toFixed(1)}" y="${top + 2}" width="${span.toFixed(1)}" height="${laneHeight - 4}" fill="${kindColors[pause.kind]}"/>`,
      );
    }
  });
  const legendY = laneTop + lanes.length * laneHeight + 22;
  parts.push(text(plotX, legendY, 'Event loop stopped by (GC ≥ 1 ms):', '', 11, 'start'));
  legend.forEach(([kind, label], index) => {
    const left = plotX + 205 + index * 150;
    parts.push(
      `<rect x="${left}" y="${legendY - 9}" width="12" height="10" fill="${kindColors[kind]}"/>`,
      text(left + 17, legendY, label, '', 11, 'start'),
    );
  });
  const percent = (part: number): string => `${Math.round((part / Math.max(1, tail.all)) * 100)} %`;
  const overlapped =
    `Of the ${tail.slow} payments at or above p99, a GC pause in some process overlapped ` +
    `${tail.slowDuringPause}, a slow write transaction ${tail.slowDuringCommit}, either ` +
    `${tail.slowDuringEither} (of all payments: ${percent(tail.allDuringPause)}, ` +
    `${percent(tail.allDuringCommit)}, ${percent(tail.allDuringEither)}).`;
  parts.push(
    text(plotX, legendY + 20, overlapped, '', 11, 'start'),
    text(
      plotX,
      legendY + 36,
      'Bars: fastest to slowest payment scheduled in each 20 ms; dots: the median.',
      '',
      11,
      'start',
    ),
    '</svg>',
  );
  return `${parts.join('\n')}\n`;
}
