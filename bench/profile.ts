/**
 * Summaries of V8 CPU profiles (`node --cpu-prof`, one `.cpuprofile` per process): self time per
 * function and per area (our code by file, nats.js, better-sqlite3, Node internals, GC, idle), so
 * "where the time goes" can be read without a profiler UI.
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

function top(map: ReadonlyMap<string, number>, busyMs: number, count: number): ProfileEntry[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, micros]) => ({
      name,
      selfMs: Math.round(micros / 1_000),
      percent: Math.round((micros / 1_000 / busyMs) * 1_000) / 10,
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
    const where = frame.url === '' ? '' : ` ${areaOf(frame.url, '')}:${frame.lineNumber + 1}`;
    const name = `${frame.functionName || '(anonymous)'}${where}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
  }
  const busyMs = busyMicros / 1_000;
  return {
    process: processName,
    file,
    busyMs: Math.round(busyMs),
    byArea: top(byArea, busyMs, 15),
    topFunctions: top(byFunction, busyMs, 25),
  };
}

/** Summaries of every profile in a directory, named by the pid in the file name. */
export function summarizeProfiles(
  directory: string,
  names: ReadonlyMap<number, string>,
): ProfileSummary[] {
  return readdirSync(directory)
    .filter((file) => file.endsWith('.cpuprofile'))
    .map((file) => {
      const pid = Number(/^CPU\.[^.]+\.[^.]+\.(\d+)\./.exec(file)?.[1] ?? Number.NaN);
      return summarizeProfile(join(directory, file), names.get(pid) ?? `pid ${pid}`);
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
