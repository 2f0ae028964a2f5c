/** How often a standby tries the lease and the leader renews it (coordinator/core/lease-timing.ts). */
import test from 'ava';
import { leaseTimings } from '../../coordinator/core/lease-timing.ts';

test('a standby tries every tenth of the TTL and the leader renews every fifth, at least 20 ms', (t) => {
  t.deepEqual(leaseTimings(2_000), { standbyPollMs: 200, renewMs: 400 });
  t.deepEqual(leaseTimings(100), { standbyPollMs: 20, renewMs: 20 });
  t.deepEqual(leaseTimings(999), { standbyPollMs: 99, renewMs: 199 });
});
