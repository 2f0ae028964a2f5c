/**
 * The soak's chart (bench/soak-chart.ts): one line per service in each of its three panels, every
 * sample a point, a sample a service did not answer for left out rather than drawn as NaN, and
 * every point inside its panel.
 */
import test from 'ava';
import { renderSoakChart } from '../../bench/soak-chart.ts';
import type { SoakResult, SoakSample } from '../../bench/soak.ts';

function sample(atS: number, rss: number, heap: number): SoakSample {
  const each = (value: number) => ({
    coordinator: value,
    bank: value,
    vendor: value,
    customer: value,
  });
  return {
    atS,
    rssMb: each(rss),
    heapMb: { ...each(heap), vendor: atS === 600 ? Number.NaN : heap },
    inMemory: each(3),
    databaseMb: each(atS / 10),
  };
}

const result = {
  machine: { commit: 'abc1234', cores: 2 },
  seconds: 1_200,
  ratePerSecond: 600,
  window: { committed: 720_000, failed: 0, latency: { p50Ms: 4.5, p99Ms: 13.2 } },
  samples: [sample(1_200, 150, 20), sample(5, 100, 10), sample(600, 140, 25)],
} as unknown as SoakResult;

function polylines(svg: string): { service: string; points: [number, number][] }[] {
  return [...svg.matchAll(/<polyline data-service="(\w+)"[^>]* points="([^"]*)"/g)].map((m) => ({
    service: m[1] ?? '',
    points: (m[2] ?? '')
      .split(' ')
      .filter((p) => p !== '')
      .map((p) => p.split(',').map(Number) as [number, number]),
  }));
}

test('three panels of one line per service, every answered sample a point, in time order', (t) => {
  const svg = renderSoakChart(result, 'subtitle');
  t.false(svg.includes('NaN'));
  t.regex(svg, /Soak: 600 payments\/s offered for 20 min/);
  t.regex(svg, /720,000 committed, 0 failed; p50 4.5 ms, p99 13.2 ms/);
  const lines = polylines(svg);
  t.is(lines.length, 12);
  const order = ['coordinator', 'bank', 'vendor', 'customer'];
  t.deepEqual(
    lines.map((l) => l.service),
    [0, 1, 2].flatMap(() => order),
  );
  const counts = lines.map((l) => l.points.length);
  t.deepEqual(counts, [3, 3, 3, 3, 3, 3, 2, 3, 3, 3, 3, 3], 'the vendor lost one heap sample');
  for (const { points } of lines) {
    const xs = points.map(([x]) => x);
    t.deepEqual(
      xs,
      [...xs].sort((a, b) => a - b),
      'points in time order',
    );
  }
});

test('every point lies inside its panel, the largest value at most at the top', (t) => {
  const lines = polylines(renderSoakChart(result, 'subtitle'));
  const panelTop = (index: number): number => 80 + index * 230;
  lines.forEach(({ points }, index) => {
    const top = panelTop(Math.floor(index / 4));
    for (const [x, y] of points) {
      t.true(x >= 90 && x <= 790, `x ${x} inside`);
      t.true(y >= top && y <= top + 170, `y ${y} inside panel ${Math.floor(index / 4)}`);
    }
  });
});
