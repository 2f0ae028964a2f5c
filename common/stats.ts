/**
 * Work counters for benchmarks. Every process counts the SQLite write transactions it commits
 * (under `synchronous=FULL` each is one fsync of the WAL: a forced write), the batches its shell
 * handled and the inputs in them. Counting costs an increment and is always on; exposing the
 * counts is opt-in: with `CONTINUUM_STATS=1` a service answers any request on
 * `continuum.stats.<service>` with the counts and its memory. Off by default, so production
 * subscribes to nothing extra.
 */
import { performance } from 'node:perf_hooks';
import type { NatsConnection, Subscription } from './nats.ts';

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

/** Counts one batch's write transaction, begun at `startedAt` (performance.now()). */
export function countCommit(startedAt: number): void {
  workCounters.sqliteCommits += 1;
  workCounters.sqliteMs += performance.now() - startedAt;
}

export function statsSubject(service: string): string {
  return `continuum.stats.${service}`;
}

/** What a service answers on its stats subject. */
export interface ServiceStats extends WorkCounters {
  readonly service: string;
  readonly pid: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** Transactions held in memory: in flight at the coordinator, in doubt at a participant. */
  readonly inMemory: number;
}

/** With CONTINUUM_STATS=1, answers stats requests for this service; undefined when off. */
export function serveStats(
  nats: NatsConnection,
  service: string,
  inMemory: () => number,
): Subscription | undefined {
  if (process.env['CONTINUUM_STATS'] !== '1') return undefined;
  return nats.subscribe(statsSubject(service), {
    callback: (_error, msg) => {
      const memory = process.memoryUsage();
      const stats: ServiceStats = {
        service,
        pid: process.pid,
        ...workCounters,
        rssBytes: memory.rss,
        heapUsedBytes: memory.heapUsed,
        inMemory: inMemory(),
      };
      msg.respond(JSON.stringify(stats));
    },
  });
}
