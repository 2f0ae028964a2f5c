/**
 * Named crash points for fault tests. When `CONTINUUM_CRASH_AT` names a point (several may be
 * given, comma-separated), the process kills itself with SIGKILL the first time it reaches that
 * point: no cleanup, no flush, exactly like `kill -9` from outside. Unset in production.
 */
import { ConfigError } from './errors.ts';

export const coordinatorCrashPoints = [
  'coordinator-after-begin', // 'begin' is durable; no PREPARE has been sent.
  'coordinator-after-prepares', // Every PREPARE has been handed to NATS.
  'coordinator-before-decision', // All votes are in; the decision is not yet written.
  'coordinator-after-decision', // The decision is durable; nobody has been told.
  'coordinator-after-some-acks', // Some participants acknowledged the decision, not all.
] as const;

export const participantCrashPoints = [
  'participant-after-vote', // The YES vote is durable; the reply has not been sent.
  'participant-after-commit', // COMMIT is applied durably; the ack has not been sent.
  'participant-after-abort', // ABORT is applied durably; the ack has not been sent.
] as const;

export type CrashPoint =
  (typeof coordinatorCrashPoints)[number] | (typeof participantCrashPoints)[number];

const known: readonly string[] = [...coordinatorCrashPoints, ...participantCrashPoints];

function armedPoints(): ReadonlySet<string> {
  const value = process.env['CONTINUUM_CRASH_AT'];
  if (value === undefined || value === '') return new Set();
  const points = value.split(',').map((point) => point.trim());
  for (const point of points) {
    if (!known.includes(point)) {
      throw new ConfigError(
        `CONTINUUM_CRASH_AT: unknown crash point ${point}; known: ${known.join(', ')}`,
      );
    }
  }
  return new Set(points);
}

let armed: ReadonlySet<string> | undefined;

/** Reads CONTINUUM_CRASH_AT; call at start-up so that a typo fails there, with a ConfigError. */
export function armedCrashPoints(): ReadonlySet<string> {
  armed ??= armedPoints();
  return armed;
}

/** Dies here, like kill -9, if this point is armed. */
export function crashPoint(point: CrashPoint): void {
  if (!armedCrashPoints().has(point)) return;
  process.stderr.write(`${JSON.stringify({ event: 'crash-point', point, pid: process.pid })}\n`);
  process.kill(process.pid, 'SIGKILL');
}

export function isArmed(point: CrashPoint): boolean {
  return armedCrashPoints().has(point);
}

/**
 * Test-only mutations (test/sim/mutations.ts, test/chaos/mutations.ts): deliberate bugs that a
 * chaos run switches on with `CONTINUUM_TEST_MUTATIONS=<name>[,<name>…]` to show that its checker
 * catches them. Unset in production; an unknown name stops the process at start-up.
 */
export const testMutationNames = [
  'send-decision-before-forcing',
  'skip-fingerprint-check',
  'reply-yes-before-durable',
  'prepare-after-abort-is-new',
  'ignore-epoch',
  'purge-by-age',
] as const;

let mutations: ReadonlySet<string> | undefined;

/** Reads CONTINUUM_TEST_MUTATIONS; call at start-up so that a typo fails there. */
export function armedMutations(): ReadonlySet<string> {
  if (mutations) return mutations;
  const value = process.env['CONTINUUM_TEST_MUTATIONS'] ?? '';
  const names = value
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  for (const name of names) {
    if (!(testMutationNames as readonly string[]).includes(name)) {
      throw new ConfigError(
        `CONTINUUM_TEST_MUTATIONS: unknown mutation ${name}; known: ${testMutationNames.join(', ')}`,
      );
    }
  }
  mutations = new Set(names);
  return mutations;
}
