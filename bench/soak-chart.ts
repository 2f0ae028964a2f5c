/**
 * A soak over time, as a standalone SVG written by hand: three panels on one time axis, each with
 * a line per service, from the samples the soak took every 5 s. Resident memory, the JavaScript
 * heap in use, and the database files with their WAL. Flat memory is the issue's target; the
 * heap in use tells a JavaScript leak from memory a runtime or SQLite holds, and the files tell
 * a retention that works (the journal stops growing) from records that are kept (the parties').
 */
import type { ServiceName } from '../ops/stack.ts';
import { axisTop, font, line, linearTicks, text } from './chart.ts';
import type { SoakResult, SoakSample } from './soak.ts';

const width = 1_000;
const plotX = 90;
const plotWidth = 700;
const legendX = plotX + plotWidth + 30;
const top = 80;
const panelHeight = 170;
const panelGap = 60;
const services: readonly ServiceName[] = ['coordinator', 'bank', 'vendor', 'customer'];
const colors: Readonly<Record<ServiceName, string>> = {
  coordinator: '#1f6fb4',
  bank: '#2ca02c',
  vendor: '#d62728',
  customer: '#9467bd',
};

interface Panel {
  readonly title: string;
  readonly value: (sample: SoakSample) => Readonly<Record<ServiceName, number>>;
}

const panels: readonly Panel[] = [
  { title: 'resident memory, MB', value: (sample) => sample.rssMb },
  { title: 'JavaScript heap in use, MB', value: (sample) => sample.heapMb },
  { title: 'database file and WAL, MB', value: (sample) => sample.databaseMb },
];

/** Minutes for a long soak, seconds for a short one. */
function timeUnit(spanS: number): { readonly seconds: number; readonly name: string } {
  return spanS >= 600 ? { seconds: 60, name: 'min' } : { seconds: 1, name: 's' };
}

export function renderSoakChart(result: SoakResult, subtitle: string): string {
  const samples = [...result.samples].sort((a, b) => a.atS - b.atS);
  const spanS = Math.max(result.seconds, ...samples.map((sample) => sample.atS), 1);
  const unit = timeUnit(spanS);
  const x = (atS: number): number =>
    plotX + (Math.min(Math.max(atS, 0), spanS) / spanS) * plotWidth;
  const height = top + panels.length * (panelHeight + panelGap) + 10;
  const { window } = result;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    text(
      width / 2,
      28,
      `Soak: ${result.ratePerSecond.toLocaleString('en-US')} payments/s offered for ${Math.round(spanS / unit.seconds)} ${unit.name}, memory and files over time`,
      'font-weight="bold"',
      16,
    ),
    text(width / 2, 48, subtitle, 'fill="#444"', 11),
    text(
      width / 2,
      64,
      `${window.committed.toLocaleString('en-US')} committed, ${window.failed} failed; p50 ${window.latency.p50Ms} ms, p99 ${window.latency.p99Ms} ms`,
      'fill="#444"',
      11,
    ),
  ];
  panels.forEach((panel, index) => {
    const panelTop = top + index * (panelHeight + panelGap);
    const bottom = panelTop + panelHeight;
    // A sample a service did not answer for has NaN in its place: no point is drawn for it.
    const values = samples.flatMap((sample) => services.map((name) => panel.value(sample)[name]));
    const max = axisTop(Math.max(1, ...values.filter(Number.isFinite)));
    const y = (value: number): number => bottom - (value / max) * panelHeight;
    parts.push(text(plotX, panelTop - 8, panel.title, 'font-weight="bold"', 12, 'start'));
    for (const tick of linearTicks(max)) {
      parts.push(
        line(plotX, y(tick), plotX + plotWidth, y(tick), 'stroke="#eee"'),
        text(plotX - 8, y(tick) + 4, `${tick}`, '', 11, 'end'),
      );
    }
    for (const tick of linearTicks(spanS / unit.seconds, 10)) {
      const at = x(tick * unit.seconds);
      parts.push(
        line(at, bottom, at, bottom + 4, 'stroke="#444"'),
        text(at, bottom + 17, `${tick}`, '', 11),
      );
    }
    parts.push(
      line(plotX, panelTop, plotX, bottom, 'stroke="#444"'),
      line(plotX, bottom, plotX + plotWidth, bottom, 'stroke="#444"'),
      text(plotX + plotWidth / 2, bottom + 32, `${unit.name} into the soak`, 'fill="#444"', 11),
    );
    for (const name of services) {
      const points = samples
        .filter((sample) => Number.isFinite(panel.value(sample)[name]))
        .map((sample) => `${x(sample.atS).toFixed(1)},${y(panel.value(sample)[name]).toFixed(1)}`)
        .join(' ');
      parts.push(
        `<polyline data-service="${name}" fill="none" stroke="${colors[name]}" stroke-width="1.5" points="${points}"/>`,
      );
    }
  });
  services.forEach((name, index) => {
    const y = top + 10 + index * 20;
    parts.push(
      line(legendX, y, legendX + 24, y, `stroke="${colors[name]}" stroke-width="3"`),
      `<text x="${legendX + 30}" y="${y + 4}" ${font} font-size="12">${name}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
