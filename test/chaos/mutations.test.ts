/**
 * The chaos checker must catch deliberately broken builds (issue 7, STYLE.md: a check that cannot
 * fail proves nothing). Each test switches one mutation on in every service through
 * CONTINUUM_TEST_MUTATIONS and runs a short chaos run with the faults that open its window; the
 * run must end with violations of the kinds that bug produces.
 */
import test from 'ava';
import { rmSync } from 'node:fs';
import { faultKinds, type FaultKind } from './faults.ts';
import type { ChaosMutation } from './mutations.ts';
import { allCrashPoints } from './nemesis.ts';
import { defaultOptions, type ChaosOptions } from './options.ts';
import { runChaos } from './run.ts';
import type { ViolationKind } from './checker.ts';
import type { CrashPoint } from '../../common/crash.ts';

interface MutationCase {
  readonly mutation: ChaosMutation;
  /** The words for the bug. */
  readonly bug: string;
  readonly faults: readonly FaultKind[];
  readonly crashPoints?: readonly CrashPoint[];
  readonly durationS: number;
  /** The coordinators' key retention, when the bug needs one short enough to act in the run. */
  readonly keyRetentionMs?: number;
  /** Any of these kinds counts as caught. */
  readonly caughtAs: readonly ViolationKind[];
}

const cases: readonly MutationCase[] = [
  {
    mutation: 'send-decision-before-forcing',
    bug: 'reply to the client before forcing the decision',
    // The armed coordinator takes over and dies after replying, before the decision is written.
    faults: ['crash-point'],
    crashPoints: ['coordinator-before-decision'],
    durationS: 20,
    caughtAs: ['reply-truth', 'agreement', 'atomicity', 'liveness'],
  },
  {
    mutation: 'reply-yes-before-durable',
    bug: 'skip the durable-vote step',
    // A participant dies after its YES left and before the vote was written.
    faults: ['crash-point'],
    crashPoints: ['participant-after-vote'],
    durationS: 20,
    caughtAs: ['reply-truth', 'atomicity', 'agreement', 'liveness', 'no-hold-left'],
  },
  {
    mutation: 'ignore-epoch',
    bug: 'ignore the fencing epoch',
    // A leader paused past its lease wakes after a takeover and acts on its stale memory. The
    // journal's decide-once guard and its index check then stop a coordinator, which the run
    // reports as a crash; client-visible invariants hold (see docs/chaos.md).
    faults: ['pause-coordinator', 'link-stall'],
    durationS: 30,
    caughtAs: ['reply-truth', 'agreement', 'atomicity', 'liveness', 'idempotence', 'crash'],
  },
  {
    mutation: 'purge-by-age',
    bug: 'a purge that forgets payments not yet complete',
    // With a 1 s retention, a participant cut off or paused keeps payments undecided past it; the
    // purge removes them, and the coordinator's decision then finds no payment row to record
    // itself in and stops the coordinator (a crash, the journal's guard); a payment forgotten
    // after its decision, before every participant heard it, would be presumed aborted.
    faults: ['link-cut', 'pause-participant'],
    durationS: 20,
    keyRetentionMs: 1_000,
    caughtAs: ['reply-truth', 'agreement', 'atomicity', 'liveness', 'no-hold-left', 'crash'],
  },
  {
    mutation: 'prepare-after-abort-is-new',
    bug: 'a late duplicate PREPARE executed after its transaction aborted',
    // Copies of PREPAREs arrive up to 2 s late, after the ABORT (or the NO vote) that ended their
    // transaction; executed as new, one takes a second hold, or fails on the barrier row that is
    // already there and stops the participant (a crash).
    faults: ['link-duplicate'],
    durationS: 20,
    caughtAs: ['crash', 'no-hold-left', 'atomicity', 'agreement', 'reply-truth'],
  },
  {
    mutation: 'skip-fingerprint-check',
    bug: 'a key reused with a different request answered as the original',
    faults: [],
    durationS: 10,
    caughtAs: ['idempotence'],
  },
];

for (const entry of cases) {
  test.serial(`the chaos checker catches ${entry.mutation} (${entry.bug})`, async (t) => {
    t.timeout(240_000);
    const options: ChaosOptions = {
      ...defaultOptions,
      durationS: entry.durationS,
      seed: 11,
      faults: entry.faults.filter((kind) => faultKinds.includes(kind)),
      json: false,
      dir: undefined,
      settleTimeoutS: 15,
      concurrentFaults: 1,
      crashPoints: entry.crashPoints ?? allCrashPoints,
      mutations: [entry.mutation],
      keyRetentionMs: entry.keyRetentionMs,
    };
    const result = await runChaos(options, { phase: (text) => t.log(text), tick: () => undefined });
    const kinds = [...new Set(result.violations.map((violation) => violation.kind))];
    t.log(`${result.violations.length} violations (${kinds.join(', ')}); run in ${result.runDir}`);
    t.log(result.violationsText.split('\n').slice(0, 12).join('\n'));
    t.true(result.violations.length > 0, `${entry.mutation} went unnoticed`);
    t.true(
      kinds.some((kind) => entry.caughtAs.includes(kind)),
      `caught as ${kinds.join(', ')}, expected one of ${entry.caughtAs.join(', ')}`,
    );
    rmSync(result.runDir, { recursive: true, force: true });
  });
}
