/**
 * Work counters for benchmarks. Every process counts the SQLite write transactions it commits
 * (under `synchronous=FULL` each is one fsync of the WAL: a forced write), the batches its shell
 * handled and the inputs in them. Counting costs an increment and is always on; exposing the
 * counts is opt-in: with `CONTINUUM_STATS=1` a service answers any request on
 * `continuum.stats.<service>` with the counts, its memory, its garbage-collection pauses and its
 * slow write transactions. Off by default, so production subscribes to nothing extra and observes
 * no GC. The heap allocation among them is counted unless CONTINUUM_STATS_ALLOCATION=0.
 */
import { constants, performance, PerformanceObserver } from 'node:perf_hooks';
import { GCProfiler } from 'node:v8';
import { deliverOrStop, type NatsConnection, type Subscription } from './nats.ts';

export interface WorkCounters {
  /** SQLite write transactions committed by this process. */
  sqliteCommits: number;
  /** Wall time spent in the batches' write transactions (statements and fsync), in ms. */
  sqliteMs: number;
  /** Batches handled by the shell (one per event-loop turn with inputs). */
  batches: number;
  /** Inputs handled in those batches. */
  inputs: number;
}

/** The counts of this process: there is one service per process. */
export const workCounters: WorkCounters = { sqliteCommits: 0, sqliteMs: 0, batches: 0, inputs: 0 };

/** One write transaction that took at least `slowCommitMinMs`: when it began (epoch ms), its ms. */
export type SlowCommit = readonly [atMs: number, durationMs: number];

/**
 * Write transactions that took this long or longer are remembered with their times: a commit
 * blocks the event loop as a GC pause does, so the benchmark sets the slow ones beside latency.
 */
const slowCommitMinMs = 2;
const slowCommitsMax = 4_096;

/** The most recent slow write transactions of this process, oldest first. */
export const slowCommits: SlowCommit[] = [];

/** Counts one batch's write transaction, begun at `startedAt` (performance.now()). */
export function countCommit(startedAt: number): void {
  const durationMs = performance.now() - startedAt;
  workCounters.sqliteCommits += 1;
  workCounters.sqliteMs += durationMs;
  if (durationMs < slowCommitMinMs) return;
  slowCommits.push([performance.timeOrigin + startedAt, durationMs]);
  if (slowCommits.length > slowCommitsMax) slowCommits.shift();
}

export function statsSubject(service: string): string {
  return `continuum.stats.${service}`;
}

export type GcKind = 'minor' | 'major' | 'incremental' | 'weak';

/** One garbage-collection pause: when it began (epoch ms), how long it took (ms), its kind. */
export type GcPause = readonly [atMs: number, durationMs: number, kind: GcKind];

export interface GcCounters {
  /** Pauses since the watch started, and their total length in ms. */
  count: number;
  ms: number;
  /** Heap bytes the collections since the watch started freed (used before less used after). */
  freedBytes: number;
  /** Collections in the GC profiler's record when it was last drained (see drainGcProfiler). */
  collectionsInLastDrain: number;
  /** The most recent pauses of at least `gcRecentMinMs`, oldest first, at most `gcRecentMax`. */
  readonly recent: GcPause[];
}

const gcRecentMax = 4_096;
const gcRecentMinMs = 1;

/** This process's garbage-collection pauses, once `watchGc()` has started counting them. */
export const gcCounters: GcCounters = {
  count: 0,
  ms: 0,
  freedBytes: 0,
  collectionsInLastDrain: 0,
  recent: [],
};
let gcObserver: PerformanceObserver | undefined;
/** Records the heap's size before and after every collection, for `heapAllocatedBytes()`. */
let gcProfiler: GCProfiler | undefined;
/** The used heap when the watch started. */
let heapUsedAtWatch = 0;

function gcKind(kind: number | undefined): GcKind {
  if (kind === constants.NODE_PERFORMANCE_GC_MINOR) return 'minor';
  if (kind === constants.NODE_PERFORMANCE_GC_INCREMENTAL) return 'incremental';
  if (kind === constants.NODE_PERFORMANCE_GC_WEAKCB) return 'weak';
  return 'major';
}

/**
 * Counts this process's garbage-collection pauses from now on (once; a later call can only add
 * the allocation count). A pause stops the event loop like a long fsync does, so the benchmark
 * sets them beside latency.
 * With `allocation`, it also counts the heap allocated (`heapAllocatedBytes()`), through V8's GC
 * profiler, whose callbacks run inside every pause and whose records leave some C memory to the
 * next full collection (drainGcProfiler): the soak, which measures memory, goes without it.
 */
export function watchGc(allocation = true): void {
  if (allocation && gcProfiler === undefined) {
    heapUsedAtWatch = process.memoryUsage().heapUsed;
    gcProfiler = new GCProfiler();
    gcProfiler.start();
  }
  if (gcObserver !== undefined) return;
  gcObserver = new PerformanceObserver((list) => {
    drainGcProfiler();
    for (const entry of list.getEntries()) {
      gcCounters.count += 1;
      gcCounters.ms += entry.duration;
      if (entry.duration < gcRecentMinMs) continue;
      const { detail } = entry as { detail?: { kind?: number } };
      const kind = gcKind(detail?.kind);
      gcCounters.recent.push([performance.timeOrigin + entry.startTime, entry.duration, kind]);
      if (gcCounters.recent.length > gcRecentMax) gcCounters.recent.shift();
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });
}

/**
 * Bytes this process has allocated on the JavaScript heap since `watchGc()`: what the heap grew
 * by, plus what every collection freed. Allocation is what makes collections come, and unlike
 * their pauses it hardly depends on the machine's speed, so it is how changes that allocate less
 * are measured. Node exposes no allocation counter; V8's GC profiler records the used heap around
 * every collection, and its records are drained here (it keeps them until stopped).
 */
export function heapAllocatedBytes(): number {
  if (gcProfiler === undefined) return 0;
  drainGcProfiler();
  return process.memoryUsage().heapUsed - heapUsedAtWatch + gcCounters.freedBytes;
}

/**
 * Adds what the collections recorded since the last drain freed, and starts a fresh record. Done
 * after every collection, not now and then, because of how Node 20 stops a GC profiler: `stop()`
 * hands the native profiler over to the garbage collector with its GC callbacks still registered,
 * and until it is collected it goes on writing every collection's heap statistics (about 2 KB of
 * C memory V8 does not count) into a record nobody reads. One that lived through many collections
 * is old by then and waits for a full collection, which a participant runs every minute or two:
 * drained every 256 collections and at every stats request, such profilers piled up, held 25 MB
 * at the vendor's peak and made each pause longer (docs/performance.md, change 44). Drained after
 * every collection, most have lived through one or two and go with the next scavenge; the few
 * promoted first still wait for a full collection, about 13 MB of C heap in a participant's
 * sawtooth, so the soak goes without the profiler (watchGc's `allocation`).
 */
function drainGcProfiler(): void {
  if (gcProfiler === undefined) return;
  const record = gcProfiler.stop();
  gcProfiler.start();
  for (const { beforeGC, afterGC } of record.statistics) {
    gcCounters.freedBytes +=
      beforeGC.heapStatistics.usedHeapSize - afterGC.heapStatistics.usedHeapSize;
  }
  gcCounters.collectionsInLastDrain = record.statistics.length;
}

/** What a service answers on its stats subject. */
export interface ServiceStats extends WorkCounters {
  readonly service: string;
  readonly pid: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** Transactions held in memory: in flight at the coordinator, in doubt at a participant. */
  readonly inMemory: number;
  readonly gcCount: number;
  readonly gcMs: number;
  /** Heap bytes allocated since the watch started (`heapAllocatedBytes()`). */
  readonly heapAllocatedBytes: number;
  readonly gcRecent: readonly GcPause[];
  readonly slowCommits: readonly SlowCommit[];
}

/**
 * With CONTINUUM_STATS=1, answers stats requests for this service; undefined when off. The heap
 * allocation is counted unless CONTINUUM_STATS_ALLOCATION=0 (then `heapAllocatedBytes` is 0).
 */
export function serveStats(
  nats: NatsConnection,
  service: string,
  inMemory: () => number,
): Subscription | undefined {
  if (process.env['CONTINUUM_STATS'] !== '1') return undefined;
  watchGc(process.env['CONTINUUM_STATS_ALLOCATION'] !== '0');
  return nats.subscribe(statsSubject(service), {
    callback: deliverOrStop((msg) => {
      const memory = process.memoryUsage();
      const stats: ServiceStats = {
        service,
        pid: process.pid,
        ...workCounters,
        rssBytes: memory.rss,
        heapUsedBytes: memory.heapUsed,
        inMemory: inMemory(),
        gcCount: gcCounters.count,
        gcMs: gcCounters.ms,
        heapAllocatedBytes: heapAllocatedBytes(),
        gcRecent: gcCounters.recent,
        slowCommits,
      };
      msg.respond(JSON.stringify(stats));
    }),
  });
}
