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

/**
 * How long a coordinator lets a journal write (a term's start included) wait for another
 * process's write lock, the `busy_timeout` of its connections: with a lease of `ttlMs`, half the
 * TTL and never more than `fullWaitMs`; without a lease (undefined), `fullWaitMs`.
 *
 * While a write waits, its process cannot renew the lease (better-sqlite3 blocks the event loop).
 * Half the TTL, after a renewal at most a fifth of the TTL before, ends before the lease expires:
 * the process then gives the lease back itself. Waiting longer, it lost the lease mid-wait, the
 * other process took it and waited for the same lock, and once the lock was free both began a
 * term in turn, the later fencing the earlier (docs/failover.md). A single coordinator has nobody
 * to hand over to and waits the whole `fullWaitMs`.
 */
export function leaseBusyWaitMs(ttlMs: number | undefined, fullWaitMs: number): number {
  return ttlMs === undefined ? fullWaitMs : Math.min(fullWaitMs, Math.floor(ttlMs / 2));
}
