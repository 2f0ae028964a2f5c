import { clientDeadlineMsDefault } from '../../common/protocol.ts';

/**
 * How often the coordinator purges payments completed longer ago than the key retention
 * (coordinator/service.ts), shared with the simulator's model of it
 * (test/sim/coordinator-shell.ts): half the retention, so a key outlives it by at most half;
 * never more often than every 50 ms or less often than once a minute.
 */
export function keyPurgeIntervalMs(retentionMs: number): number {
  return Math.max(50, Math.min(60_000, Math.floor(retentionMs / 2)));
}

/**
 * Why a retention is risky, or undefined. Shorter than a client keeps retrying, a key may expire
 * between two attempts, and a client whose answer was lost then pays again on its next attempt
 * (docs/idempotency.md). Values this short are for tests, so they are allowed, with a warning.
 */
export function keyRetentionRisk(retentionMs: number): string | undefined {
  if (retentionMs >= clientDeadlineMsDefault) return undefined;
  return (
    `--key-retention-ms ${retentionMs} is shorter than the client library's default deadline ` +
    `(${clientDeadlineMsDefault} ms): a client whose answer is lost may come back to an ` +
    'expired key and pay again'
  );
}
