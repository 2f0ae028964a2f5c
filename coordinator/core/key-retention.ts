/**
 * How often the coordinator purges payments completed longer ago than the key retention
 * (coordinator/service.ts), shared with the simulator's model of it
 * (test/sim/coordinator-shell.ts): half the retention, so a key outlives it by at most half;
 * never more often than every 50 ms or less often than once a minute.
 */
export function keyPurgeIntervalMs(retentionMs: number): number {
  return Math.max(50, Math.min(60_000, Math.floor(retentionMs / 2)));
}
