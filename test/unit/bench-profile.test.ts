/**
 * The allocation profile's summary (bench/profile.ts): bytes by function, by area, and by the
 * innermost frame of our own code, so that what nats.js allocates for one of our lines is laid at
 * that line's door.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summarizeHeapProfile } from '../../bench/profile.ts';

interface Node {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: Node[];
}

const frame =
  (functionName: string, url: string, lineNumber: number, selfSize: number) =>
  (...children: Node[]): Node => ({
    callFrame: { functionName, url, lineNumber },
    selfSize,
    children,
  });

test('lays what a library allocates at the door of the innermost frame of ours', (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'continuum-heap-'));
  t.teardown(() => rmSync(directory, { recursive: true, force: true }));
  const nats = 'file:///repo/node_modules/@nats-io/nats-core/lib/msg.js';
  const head = frame(
    '(root)',
    '',
    -1,
    0,
  )(
    frame(
      'handle',
      'file:///repo/coordinator/shell.ts',
      9,
      100,
    )(
      frame('decode', 'file:///repo/common/codec.ts', 19, 300)(frame('respond', nats, 4, 1_000)()),
      frame('publish', nats, 7, 500)(),
    ),
    frame('(GC)', '', -1, 100)(),
  );
  const file = join(directory, 'Heap.x.heapprofile');
  writeFileSync(file, JSON.stringify({ head }));

  const summary = summarizeHeapProfile(file, 'coordinator');
  t.is(summary.bytes, 2_000);
  const byName = (entries: readonly { name: string; bytes: number }[]): Record<string, number> =>
    Object.fromEntries(entries.map((entry) => [entry.name, entry.bytes]));
  t.deepEqual(byName(summary.byOurFrame), {
    'decode common/codec.ts:20': 1_300,
    'handle coordinator/shell.ts:10': 600,
    '(no frame of ours)': 100,
  });
  t.deepEqual(byName(summary.byArea), {
    'nats.js': 1_500,
    'common/codec.ts': 300,
    'coordinator/shell.ts': 100,
    '(GC)': 100,
  });
  t.is(summary.topFunctions[0]?.name, 'respond nats.js:5');
  t.is(summary.topFunctions[0]?.percent, 50);
});
