/**
 * How often a participant purges its barrier of finished transactions older than the retention
 * (participants/service.ts), shared with the simulator's model of it (test/sim/participant-shell.ts):
 * a tenth of the retention, so rows outlive it by at most a tenth; never more often than every
 * 50 ms or less often than once a minute.
 */
export function barrierPurgeIntervalMs(retentionMs: number): number {
  return Math.max(50, Math.min(60_000, Math.floor(retentionMs / 10)));
}
