/**
 * A checker that cannot fail proves nothing. Each deliberate bug of mutations.ts, switched on in
 * the real machines, must be caught within a bounded number of seeds, by the property it breaks;
 * and the seed that caught it must pass without the mutation, so it is the bug that was caught.
 */
import test from 'ava';
import { mutationNames, type MutationName } from './mutations.ts';
import { firstViolation } from './runner.ts';
import { runSeed } from './simulator.ts';
import type { ViolationKind } from './world.ts';

/** Seeds within which every mutation must be found (each is found in the first few today). */
const seedsMax = 100;

const expectedKinds: Readonly<Record<MutationName, readonly ViolationKind[]>> = {
  // A participant or client hears a decision the journal could still lose.
  'send-decision-before-forcing': ['not-durable', 'atomicity'],
  // The second payment under a key gets the first one's outcome.
  'skip-fingerprint-check': ['mismatch-executed'],
  // The coordinator hears YES that is not (or never becomes) in the participant's barrier.
  'reply-yes-before-durable': ['not-durable', 'atomicity', 'shell-threw'],
  // The barrier refuses a second prepare row; a real participant would crash on it.
  'prepare-after-abort-is-new': ['shell-threw', 'key-executed-twice', 'liveness'],
  // The coordinator hears YES that no barrier row stands behind.
  'forgotten-prepare-votes-yes': ['not-durable', 'atomicity'],
  // A key whose payment was forgotten too soon is claimed again within the retention; or the
  // journal refuses a decision for a payment it forgot while it was in flight.
  'purge-by-age': ['key-executed-twice', 'shell-threw'],
  // A deposed coordinator answers from its stale memory (the machine's assertion), or decides a
  // transaction the new term decided too (the journal's row refuses it, as SQLite's would).
  'ignore-epoch': ['machine-threw', 'shell-threw', 'atomicity', 'liveness'],
};

for (const mutation of mutationNames) {
  test(`the simulator catches ${mutation} within ${seedsMax} seeds`, (t) => {
    const found = firstViolation({ firstSeed: 1, seeds: seedsMax, mutation, traceLines: 30 });
    if (found?.violation === undefined) {
      t.fail(`${mutation} survived ${seedsMax} seeds`);
      return;
    }
    const { seed, violation } = found;
    t.log(`seed ${seed}: ${violation.kind}: ${violation.message}`);
    t.true(expectedKinds[mutation].includes(violation.kind), `caught as ${violation.kind}`);
    t.is(runSeed(seed).violation, undefined, `seed ${seed} passes without the mutation`);
  });
}
