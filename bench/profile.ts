/**
 * Summaries of V8 CPU profiles (`node --cpu-prof`, one `.cpuprofile` per process): self time per
 * function and per area (our code by file, nats.js, better-sqlite3, Node internals, GC, idle), so
 * "where the time goes" can be read without a profiler UI. And of V8's sampling heap profiles
 * (`.heapprofile`, bench/cpu-profile-hook.ts): bytes allocated per function, per area, and per
 * nearest frame of our own code, so "where the garbage comes from" can be read the same way.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

export interface ProfileEntry {
  readonly name: string;
  readonly selfMs: number;
  readonly percent: number;
}

export interface ProfileSummary {
  readonly process: string;
  readonly file: string;
  /** Sampled time, idle excluded, in ms. */
  readonly busyMs: number;
  readonly byArea: readonly ProfileEntry[];
  readonly topFunctions: readonly ProfileEntry[];
}

/** Where a frame's code lives, coarsely: the question is which layer costs what. */
function areaOf(url: string, functionName: string): string {
  if (url === '') return functionName === '' ? '(native)' : functionName;
  if (url.includes('/node_modules/@nats-io/')) return 'nats.js';
  if (url.includes('/node_modules/better-sqlite3/')) return 'better-sqlite3 (JS side)';
  if (url.includes('/node_modules/ulid/')) return 'ulid';
  if (url.includes('/node_modules/')) return 'other packages';
  if (url.startsWith('node:')) return 'node internals';
  const match = /\/((?:coordinator|participants|common|client|bench|ops)\/.+\.ts)$/.exec(url);
  return match?.[1] ?? url;
}

/** The `count` largest entries of a map, each with its share of `total` in % (one decimal). */
function largest(
  map: ReadonlyMap<string, number>,
  total: number,
  count: number,
): { name: string; value: number; percent: number }[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, value]) => ({
      name,
      value,
      percent: Math.round((value / Math.max(1, total)) * 1_000) / 10,
    }));
}

/** The largest entries of a map of self time in µs, in ms. */
function top(map: ReadonlyMap<string, number>, busyMicros: number, count: number): ProfileEntry[] {
  return largest(map, busyMicros, count).map(({ name, value, percent }) => ({
    name,
    selfMs: Math.round(value / 1_000),
    percent,
  }));
}

export function summarizeProfile(file: string, processName: string): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMicros = new Map<number, number>();
  profile.samples.forEach((id, index) => {
    selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
  });
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let busyMicros = 0;
  for (const [id, micros] of selfMicros) {
    const frame = byId.get(id)?.callFrame;
    if (!frame || frame.functionName === '(idle)') continue;
    busyMicros += micros;
    const area = areaOf(frame.url, frame.functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + micros);
    const name = frameName(frame);
    byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
  }
  return {
    process: processName,
    file,
    busyMs: Math.round(busyMicros / 1_000),
    byArea: top(byArea, busyMicros, 15),
    topFunctions: top(byFunction, busyMicros, 25),
  };
}

/** Summaries of every CPU profile in a directory, named by the pid in the file name. */
export function summarizeProfiles(
  directory: string,
  names: ReadonlyMap<number, string>,
): ProfileSummary[] {
  return summarizeEach(
    directory,
    names,
    /^CPU\.[^.]+\.[^.]+\.(\d+)\..*\.cpuprofile$/,
    summarizeProfile,
  );
}

/** Every profile in a directory whose name matches `pattern` (the pid its first group). */
function summarizeEach<T>(
  directory: string,
  names: ReadonlyMap<number, string>,
  pattern: RegExp,
  summarize: (file: string, processName: string) => T,
): T[] {
  return readdirSync(directory).flatMap((file) => {
    const match = pattern.exec(file);
    if (match === null) return [];
    const pid = Number(match[1]);
    return [summarize(join(directory, file), names.get(pid) ?? `pid ${pid}`)];
  });
}

export function formatProfile(summary: ProfileSummary): string[] {
  const row = (entry: ProfileEntry): string =>
    `    ${String(entry.selfMs).padStart(7)} ms ${entry.percent.toFixed(1).padStart(5)} %  ${entry.name}`;
  return [
    `${summary.process}: ${summary.busyMs} ms busy (${summary.file})`,
    '  by area:',
    ...summary.byArea.map(row),
    '  top functions (self time):',
    ...summary.topFunctions.map(row),
  ];
}

interface HeapProfileNode {
  readonly callFrame: ProfileNode['callFrame'];
  /** Bytes the samples at this frame stand for (sampled sizes scaled by the sampling interval). */
  readonly selfSize: number;
  readonly children: readonly HeapProfileNode[];
}

export interface AllocationEntry {
  readonly name: string;
  readonly bytes: number;
  readonly percent: number;
}

export interface AllocationSummary {
  readonly process: string;
  readonly file: string;
  /** Bytes allocated in all, as the samples estimate them. */
  readonly bytes: number;
  readonly byArea: readonly AllocationEntry[];
  readonly topFunctions: readonly AllocationEntry[];
  /**
   * Bytes by the innermost frame of our own code (coordinator/, participants/, common/, client/,
   * bench/, ops/) on the allocating stack: which of our lines make the garbage that nats.js or
   * Node allocate on their behalf. `(no frame of ours)` for the rest.
   */
  readonly byOurFrame: readonly AllocationEntry[];
}

const ourCode = /\/(?:coordinator|participants|common|client|bench|ops)\/.+\.ts$/;

function frameName(frame: ProfileNode['callFrame']): string {
  const where = frame.url === '' ? '' : ` ${areaOf(frame.url, '')}:${frame.lineNumber + 1}`;
  return `${frame.functionName || '(anonymous)'}${where}`;
}

/** The largest entries of a map of bytes. */
function topBytes(
  map: ReadonlyMap<string, number>,
  total: number,
  count: number,
): AllocationEntry[] {
  return largest(map, total, count).map(({ name, value, percent }) => ({
    name,
    bytes: value,
    percent,
  }));
}

export function summarizeHeapProfile(file: string, processName: string): AllocationSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { head: HeapProfileNode };
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  const byOurFrame = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, bytes: number): void => {
    map.set(key, (map.get(key) ?? 0) + bytes);
  };
  let total = 0;
  const walk = (node: HeapProfileNode, ours: string): void => {
    const { callFrame } = node;
    const inner = ourCode.test(callFrame.url) ? frameName(callFrame) : ours;
    if (node.selfSize > 0) {
      total += node.selfSize;
      add(byArea, areaOf(callFrame.url, callFrame.functionName), node.selfSize);
      add(byFunction, frameName(callFrame), node.selfSize);
      add(byOurFrame, inner, node.selfSize);
    }
    for (const child of node.children) walk(child, inner);
  };
  walk(profile.head, '(no frame of ours)');
  return {
    process: processName,
    file,
    bytes: total,
    byArea: topBytes(byArea, total, 12),
    topFunctions: topBytes(byFunction, total, 20),
    byOurFrame: topBytes(byOurFrame, total, 20),
  };
}

/** Allocation summaries of every heap profile in a directory, named by the pid in the file name. */
export function summarizeHeapProfiles(
  directory: string,
  names: ReadonlyMap<number, string>,
): AllocationSummary[] {
  return summarizeEach(
    directory,
    names,
    /^Heap\.[^.]+\.[^.]+\.(\d+)\.heapprofile$/,
    summarizeHeapProfile,
  );
}

export function formatHeapProfile(summary: AllocationSummary): string[] {
  const mb = (bytes: number): string => (bytes / 1_048_576).toFixed(1).padStart(8);
  const row = (entry: AllocationEntry): string =>
    `    ${mb(entry.bytes)} MB ${entry.percent.toFixed(1).padStart(5)} %  ${entry.name}`;
  return [
    `${summary.process}: ${mb(summary.bytes).trim()} MB allocated (${summary.file})`,
    '  by area:',
    ...summary.byArea.map(row),
    '  top functions (self bytes):',
    ...summary.topFunctions.map(row),
    '  by the innermost frame of our code:',
    ...summary.byOurFrame.map(row),
  ];
}
