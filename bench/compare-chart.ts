/**
 * A chart of two throughput results, after and before a change:
 * `npm run bench -- chart <after.json> <before.json> <out.svg>`. The "before" lines are grey;
 * the bounds and the open-loop notes are the "after" run's, plus the "before" open loop at the
 * target rate.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { renderChart } from './chart.ts';
import type { ThroughputResult } from './throughput.ts';
import { chartInput } from './throughput-report.ts';

function read(file: string): ThroughputResult {
  return JSON.parse(readFileSync(file, 'utf8')) as ThroughputResult;
}

export function writeCompareChart(afterFile: string, beforeFile: string, out: string): void {
  const after = read(afterFile);
  const before = read(beforeFile);
  const a = chartInput(after);
  const b = chartInput(before);
  const [afterCommit, afterNo] = a.series;
  const [beforeCommit, beforeNo] = b.series;
  if (!afterCommit || !afterNo || !beforeCommit || !beforeNo) {
    throw new Error('both results need the closed-loop levels of both variants');
  }
  const open = before.levels.find((level) => level.loop === 'open' && level.load === 1_000);
  const [openTitle = '', ...rest] = a.notes;
  const input = {
    ...a,
    subtitle:
      `after: commit ${after.machine.commit}, load ${after.machine.loadAverage1m} at start; ` +
      `before: commit ${before.machine.commit}, load ${before.machine.loadAverage1m}; ` +
      'one nats-server, 10 s per level',
    series: [
      afterCommit,
      afterNo,
      { ...beforeCommit, label: 'before: all commit', color: '#8c8c8c' },
      { ...beforeNo, label: 'before: 10 % NO', color: '#c4c4c4' },
    ],
    notes: [
      `After. ${openTitle}`,
      ...rest.slice(0, 3).map((note) => note.trim()),
      ...(open
        ? [
            `Before, open loop 1,000/s: p50 ${open.window.latency.p50Ms} ms, ` +
              `p99 ${open.window.latency.p99Ms} ms.`,
          ]
        : []),
      ...rest.slice(3),
    ],
  };
  writeFileSync(out, renderChart(input));
}
