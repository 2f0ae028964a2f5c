/**
 * The fault kinds of a chaos run, by name, with what each does. `--faults` takes these names.
 */
export const faultKinds = [
  'kill-participant',
  'kill-coordinator',
  'pause-participant',
  'lock-participant',
  'pause-coordinator',
  'kill-nats',
  'pause-nats',
  'link-cut',
  'link-delay',
  'link-drop',
  'link-stall',
  'link-one-way',
  'link-duplicate',
  'retry-storm',
  'restart-all',
  'crash-point',
] as const;

export type FaultKind = (typeof faultKinds)[number];

export const faultDescriptions: Readonly<Record<FaultKind, string>> = {
  'kill-participant': 'kill -9 a participant, restart it 0.5-3 s later',
  'kill-coordinator': 'kill -9 the active coordinator, restart it (as a standby) 0.3-2 s later',
  'pause-participant': 'SIGSTOP a participant for 1-5 s (past the send timeout), then SIGCONT',
  'lock-participant':
    "another process holds a participant's database write lock for 1-8 s (past its 5 s busy timeout in some)",
  'pause-coordinator': 'SIGSTOP the active coordinator for 0.8-4 s (past the lease), then SIGCONT',
  'kill-nats': 'kill -9 a NATS server, restart it 1-4 s later',
  'pause-nats': 'SIGSTOP a NATS server for 1-5 s, then SIGCONT',
  'link-cut': "close a service's NATS connections and refuse new ones for 0.5-3 s",
  'link-delay': "delay every message on a service's NATS link by 20-400 ms for 1-5 s",
  'link-drop': "lose 10-60 % of the messages on a service's NATS link for 1-5 s",
  'link-stall': "freeze a service's NATS link for 1-5 s, then deliver what was held",
  'link-one-way': "lose every message in one direction of a service's NATS link for 1-5 s",
  'link-duplicate':
    "deliver 10-50 % of the messages on a service's NATS link twice for 1-5 s, each copy up to 0.05-2 s late",
  'retry-storm': '16-96 concurrent requests with one idempotency key',
  'restart-all': 'kill -9 every service and NATS server, then start everything again',
  'crash-point':
    'restart a service with CONTINUUM_CRASH_AT set to a named step; it dies there; restart it',
};

export function isFaultKind(name: string): name is FaultKind {
  return (faultKinds as readonly string[]).includes(name);
}
