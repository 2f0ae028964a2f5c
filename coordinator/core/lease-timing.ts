/**
 * How often a standby tries to take the lease and the leader renews it, from the lease's TTL
 * (coordinator/main.ts), shared with the simulator's model of leadership
 * (test/sim/coordinator-shell.ts): a standby tries every tenth of the TTL, the leader renews every
 * fifth, so a leader misses four renewals before its lease can go; never more often than 20 ms.
 */
export function leaseTimings(ttlMs: number): { standbyPollMs: number; renewMs: number } {
  return {
    standbyPollMs: Math.max(20, Math.floor(ttlMs / 10)),
    renewMs: Math.max(20, Math.floor(ttlMs / 5)),
  };
}
