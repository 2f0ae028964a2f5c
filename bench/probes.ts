/**
 * What the throughput benchmark reads from outside the code it measures: CPU time and resident
 * memory of each process from /proc, message counts from nats-server's monitoring endpoint
 * (/varz), and the services' own work counters (SQLite commits, batches), which they expose on
 * request when started with CONTINUUM_STATS=1 (common/stats.ts).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { statsSubject, type ServiceStats } from '../common/stats.ts';
import type { NatsConnection } from '../common/nats.ts';

/** Clock ticks per second, the unit of utime and stime in /proc/<pid>/stat. */
const ticksPerSecond = ((): number => {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isSafeInteger(value) && value > 0 ? value : 100;
  } catch {
    return 100;
  }
})();

/** User plus system CPU time of a process so far, in ms (utime + stime of /proc/<pid>/stat). */
export function cpuTimeMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces; the fields after its closing parenthesis
  // start at field 3 (state), so utime (field 14) and stime (field 15) are at 11 and 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1_000) / ticksPerSecond;
}

/** Resident set size of a process, in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return match?.[1] === undefined ? Number.NaN : Number(match[1]) * 1_024;
}

export interface NatsCounts {
  readonly inMsgs: number;
  readonly outMsgs: number;
  readonly inBytes: number;
  readonly outBytes: number;
}

/** Message and byte totals since the server started, from its monitoring endpoint. */
export async function natsCounts(httpPort: number): Promise<NatsCounts> {
  const response = await fetch(`http://127.0.0.1:${httpPort}/varz`, {
    signal: AbortSignal.timeout(5_000),
  });
  const varz = (await response.json()) as Record<string, unknown>;
  const count = (key: string): number => {
    const value = varz[key];
    if (typeof value !== 'number') throw new Error(`/varz has no number ${key}`);
    return value;
  };
  return {
    inMsgs: count('in_msgs'),
    outMsgs: count('out_msgs'),
    inBytes: count('in_bytes'),
    outBytes: count('out_bytes'),
  };
}

/** A service's work counters and memory; needs CONTINUUM_STATS=1 in its environment. */
export async function serviceStats(nats: NatsConnection, service: string): Promise<ServiceStats> {
  const reply = await nats.request(statsSubject(service), '', { timeout: 5_000 });
  return JSON.parse(new TextDecoder().decode(reply.data)) as ServiceStats;
}
