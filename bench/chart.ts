/**
 * The throughput benchmark's chart as a standalone SVG, written by hand (no dependency): committed
 * payments per second against concurrency on the left, latency (p50 and p99, log scale) against
 * concurrency on the right, one line per variant, with the messaging bound and the targets drawn
 * in. Concurrency is on a log scale, as the levels are 1, 16, 64, 256 and 1,024.
 */

export interface ChartPoint {
  readonly concurrency: number;
  readonly committedPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface ChartSeries {
  readonly label: string;
  readonly color: string;
  readonly points: readonly ChartPoint[];
}

export interface ChartInput {
  readonly title: string;
  readonly subtitle: string;
  readonly series: readonly ChartSeries[];
  /** Payments per second the messaging bound allows (request/replies per second / 7). */
  readonly boundPerSecond: number | undefined;
  readonly targetPerSecond: { readonly concurrency: number; readonly value: number };
  readonly targetP99Ms: { readonly concurrency: number; readonly value: number };
  readonly targetP50Ms: { readonly concurrency: number; readonly value: number };
  /** Lines of text under the panels (open loop, bounds). */
  readonly notes: readonly string[];
}

const width = 1_000;
const panelTop = 90;
const panelHeight = 300;
const panelWidth = 380;
const leftPanelX = 80;
const rightPanelX = 570;
export const font = 'font-family="DejaVu Sans, Arial, Helvetica, sans-serif"';

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function text(
  x: number,
  y: number,
  content: string,
  attributes = '',
  size = 12,
  anchor = 'middle',
): string {
  const position = `x="${x.toFixed(1)}" y="${y.toFixed(1)}"`;
  return `<text ${position} ${font} font-size="${size}" text-anchor="${anchor}" ${attributes}>${escapeXml(content)}</text>`;
}

export function line(x1: number, y1: number, x2: number, y2: number, attributes: string): string {
  const ends = `x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}"`;
  return `<line ${ends} ${attributes}/>`;
}

/** Round tick steps (1, 2, 5 × 10^n) giving about `count` ticks from 0 to max. */
export function linearTicks(max: number, count = 5): number[] {
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * magnitude >= raw) ?? 10) * magnitude;
  const ticks: number[] = [];
  for (let value = 0; value <= max + step / 2; value += step) ticks.push(value);
  return ticks;
}

/** The top of an axis: the last of its round ticks (linearTicks) at or above `value`. */
export function axisTop(value: number): number {
  const ticks = linearTicks(value);
  const last = ticks.at(-1) ?? value;
  return last >= value ? last : last + (ticks[1] ?? value);
}

function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let exponent = Math.floor(Math.log10(min)); 10 ** exponent <= max * 1.001; exponent++) {
    for (const mantissa of [1, 2, 5]) {
      const value = mantissa * 10 ** exponent;
      if (value >= min * 0.999 && value <= max * 1.001) ticks.push(value);
    }
  }
  return ticks;
}

function formatNumber(value: number): string {
  if (value >= 1_000) return Math.round(value).toLocaleString('en-US');
  if (value >= 1) return String(Math.round(value * 10) / 10);
  return String(Math.round(value * 100) / 100);
}

interface Axes {
  readonly x: (concurrency: number) => number;
  readonly y: (value: number) => number;
}

function concurrencyAxis(x0: number, concurrencies: readonly number[]): Axes['x'] {
  const low = Math.log2(Math.min(...concurrencies));
  const high = Math.log2(Math.max(...concurrencies));
  const span = Math.max(1, high - low);
  return (concurrency) => x0 + 20 + ((Math.log2(concurrency) - low) / span) * (panelWidth - 40);
}

function frame(x0: number, title: string, yLabel: string, xs: readonly number[], axes: Axes) {
  const bottom = panelTop + panelHeight;
  const parts = [
    `<rect x="${x0}" y="${panelTop}" width="${panelWidth}" height="${panelHeight}" fill="#fafafa" stroke="#444"/>`,
    text(x0 + panelWidth / 2, panelTop - 12, title, 'font-weight="bold"', 14),
    text(x0 + panelWidth / 2, bottom + 40, 'concurrency (clients, log scale)', '', 12),
    text(
      x0 - 55,
      panelTop + panelHeight / 2,
      yLabel,
      `transform="rotate(-90 ${x0 - 55} ${panelTop + panelHeight / 2})"`,
      12,
    ),
  ];
  for (const concurrency of xs) {
    const x = axes.x(concurrency);
    parts.push(line(x, bottom, x, bottom + 5, 'stroke="#444"'));
    parts.push(text(x, bottom + 19, String(concurrency), '', 12));
  }
  return parts;
}

function polyline(points: readonly [number, number][], color: string, dashed: boolean): string {
  const path = points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
  const dash = dashed ? ' stroke-dasharray="6 4"' : '';
  const markers = points
    .map(([x, y]) => `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="${color}"/>`)
    .join('');
  return `<polyline points="${path}" fill="none" stroke="${color}" stroke-width="2.2"${dash}/>${markers}`;
}

function targetMark(x: number, y: number, label: string): string[] {
  return [
    `<path d="M${x - 6},${y - 6} L${x + 6},${y + 6} M${x - 6},${y + 6} L${x + 6},${y - 6}" stroke="#c00" stroke-width="2.5"/>`,
    text(x + 9, y + 4, label, 'fill="#c00"', 11, 'start'),
  ];
}

function throughputPanel(input: ChartInput, xs: readonly number[]): string[] {
  const values = input.series.flatMap((s) => s.points.map((p) => p.committedPerSecond));
  // Headroom above the highest line, so the bound's label never meets the panel's title.
  const top = Math.max(...values, input.boundPerSecond ?? 0, input.targetPerSecond.value) * 1.15;
  const ticks = linearTicks(top);
  const max = ticks.at(-1) ?? top;
  const axes: Axes = {
    x: concurrencyAxis(leftPanelX, xs),
    y: (value) => panelTop + panelHeight - (value / max) * panelHeight,
  };
  const parts = frame(leftPanelX, 'Throughput', 'committed payments per second', xs, axes);
  for (const tick of ticks) {
    const y = axes.y(tick);
    parts.push(line(leftPanelX, y, leftPanelX + panelWidth, y, 'stroke="#ddd"'));
    parts.push(text(leftPanelX - 6, y + 4, formatNumber(tick), '', 11, 'end'));
  }
  if (input.boundPerSecond !== undefined) {
    const y = axes.y(input.boundPerSecond);
    parts.push(
      line(leftPanelX, y, leftPanelX + panelWidth, y, 'stroke="#777" stroke-dasharray="3 3"'),
    );
    const label = `messaging bound ${formatNumber(input.boundPerSecond)}/s`;
    parts.push(text(leftPanelX + 8, y - 5, label, 'fill="#555"', 11, 'start'));
  }
  for (const series of input.series) {
    const points = series.points.map((p): [number, number] => [
      axes.x(p.concurrency),
      axes.y(p.committedPerSecond),
    ]);
    parts.push(polyline(points, series.color, false));
  }
  const target = input.targetPerSecond;
  const label = `target ≥ ${formatNumber(target.value)}/s`;
  parts.push(...targetMark(axes.x(target.concurrency), axes.y(target.value), label));
  return parts;
}

function latencyPanel(input: ChartInput, xs: readonly number[]): string[] {
  const values = input.series.flatMap((s) => s.points.flatMap((p) => [p.p50Ms, p.p99Ms]));
  const low = Math.min(...values.filter((v) => v > 0), input.targetP50Ms.value) * 0.8;
  const high = Math.max(...values, input.targetP99Ms.value) * 1.25;
  const min = 10 ** Math.floor(Math.log10(low));
  const max = 10 ** Math.ceil(Math.log10(high));
  const span = Math.log10(max) - Math.log10(min);
  const axes: Axes = {
    x: concurrencyAxis(rightPanelX, xs),
    y: (value) =>
      panelTop + panelHeight - ((Math.log10(value) - Math.log10(min)) / span) * panelHeight,
  };
  const parts = frame(rightPanelX, 'Latency', 'milliseconds (log scale)', xs, axes);
  for (const tick of logTicks(min, max)) {
    const y = axes.y(tick);
    parts.push(line(rightPanelX, y, rightPanelX + panelWidth, y, 'stroke="#ddd"'));
    parts.push(text(rightPanelX - 6, y + 4, formatNumber(tick), '', 11, 'end'));
  }
  for (const series of input.series) {
    for (const [key, dashed] of [
      ['p99Ms', false],
      ['p50Ms', true],
    ] as const) {
      const points = series.points.map((p): [number, number] => [
        axes.x(p.concurrency),
        axes.y(Math.max(min, p[key])),
      ]);
      parts.push(polyline(points, series.color, dashed));
    }
  }
  const p99 = input.targetP99Ms;
  parts.push(...targetMark(axes.x(p99.concurrency), axes.y(p99.value), `p99 ≤ ${p99.value} ms`));
  const p50 = input.targetP50Ms;
  parts.push(...targetMark(axes.x(p50.concurrency), axes.y(p50.value), `p50 ≤ ${p50.value} ms`));
  return parts;
}

function legend(input: ChartInput, y: number): string[] {
  const parts: string[] = [];
  let x = leftPanelX;
  for (const series of input.series) {
    parts.push(line(x, y, x + 28, y, `stroke="${series.color}" stroke-width="2.5"`));
    parts.push(text(x + 34, y + 4, series.label, '', 12, 'start'));
    x += 60 + series.label.length * 7;
  }
  parts.push(line(x, y, x + 28, y, 'stroke="#333" stroke-width="2"'));
  parts.push(text(x + 34, y + 4, 'p99', '', 12, 'start'));
  x += 70;
  parts.push(line(x, y, x + 28, y, 'stroke="#333" stroke-width="2" stroke-dasharray="6 4"'));
  parts.push(text(x + 34, y + 4, 'p50', '', 12, 'start'));
  x += 70;
  parts.push(...targetMark(x + 6, y, 'target'));
  return parts;
}

export function renderChart(input: ChartInput): string {
  const xs = [...new Set(input.series.flatMap((s) => s.points.map((p) => p.concurrency)))].sort(
    (a, b) => a - b,
  );
  const notesTop = panelTop + panelHeight + 90;
  const height = notesTop + input.notes.length * 18 + 20;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    text(width / 2, 28, input.title, 'font-weight="bold"', 18),
    text(width / 2, 50, input.subtitle, 'fill="#444"', 12),
    ...throughputPanel(input, xs),
    ...latencyPanel(input, xs),
    ...legend(input, panelTop + panelHeight + 62),
    ...input.notes.map((note, index) =>
      text(leftPanelX, notesTop + 10 + index * 18, note, 'fill="#222"', 12, 'start'),
    ),
    '</svg>',
  ];
  return `${parts.join('\n')}\n`;
}
