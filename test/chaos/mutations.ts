/**
 * Deliberately broken builds for the chaos run, switched on per process by the environment
 * variable CONTINUUM_TEST_MUTATIONS (a comma-separated list), which the services pass into the
 * machines' `mutations` config (test/sim/mutations.ts names the same bugs for the simulator;
 * common/crash.ts reads the variable and refuses an unknown name).
 */

export const mutationVariable = 'CONTINUUM_TEST_MUTATIONS';

export const chaosMutations = [
  // The coordinator tells the client and the participants its decision before the decision is
  // durable ("reply to the client before forcing the decision").
  'send-decision-before-forcing',
  // A participant replies YES before its vote and hold are durable ("skip the durable vote").
  'reply-yes-before-durable',
  // A key reused with a different payment is answered as if it were the original.
  'skip-fingerprint-check',
  // A PREPARE for a transaction aborted here is prepared as if new.
  'prepare-after-abort-is-new',
  // Coordinators and participants ignore the term of leadership ("ignore the fencing epoch").
  'ignore-epoch',
  // The coordinator's purge forgets payments by the age of their start, complete or not.
  'purge-by-age',
] as const;

export type ChaosMutation = (typeof chaosMutations)[number];

export function isChaosMutation(name: string): name is ChaosMutation {
  return (chaosMutations as readonly string[]).includes(name);
}
