/**
 * The chaos report's picture (test/chaos/report.ts): every label lies inside it, whatever the
 * number of fault kinds in the legend and however close to the end the run's marks come (the
 * 30-minute run's legend lost its last row and its marks their labels before this was checked).
 */
import test from 'ava';
import { faultKinds } from '../chaos/faults.ts';
import { Timeline, renderSvg } from '../chaos/report.ts';

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
