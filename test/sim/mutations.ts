/**
 * Deliberate bugs the simulator must catch. Each one is switched on by passing its name in the
 * `mutations` set of `CoordinatorConfig` or `ParticipantConfig`; the machines read that set in a
 * few places marked "Test-only mutation: see test/sim/mutations.ts". Production code never sets
 * it, so without a mutation the machines behave exactly as they do in the services. One,
 * `purge-by-age`, breaks the simulated journal instead (the purge is the adapter's SQL, which
 * the simulator models): it proves the checker notices a purge that forgets too much.
 *
 * A checker that cannot fail proves nothing (STYLE.md): `mutations.test.ts` asserts that every
 * mutation below is found within a bounded number of seeds.
 */

export const mutationNames = [
  'send-decision-before-forcing',
  'skip-fingerprint-check',
  'reply-yes-before-durable',
  'prepare-after-abort-is-new',
  'forgotten-prepare-votes-yes',
  'purge-by-age',
  'ignore-epoch',
] as const;

export type MutationName = (typeof mutationNames)[number];

export const mutationCatalogue: Readonly<
  Record<
    MutationName,
    { readonly machine: 'coordinator' | 'participant' | 'journal'; readonly bug: string }
  >
> = {
  'send-decision-before-forcing': {
    machine: 'coordinator',
    bug: 'the decision is sent to participants and waiting clients before its record is forced',
  },
  'skip-fingerprint-check': {
    machine: 'coordinator',
    bug: 'a key reused with a different payment is answered as if it were the original',
  },
  'reply-yes-before-durable': {
    machine: 'participant',
    bug: 'YES is replied together with the local prepare, before the vote is durable',
  },
  'prepare-after-abort-is-new': {
    machine: 'participant',
    bug: 'a PREPARE for a transaction aborted or tombstoned here is prepared as if new',
  },
  'forgotten-prepare-votes-yes': {
    machine: 'participant',
    bug: 'a PREPARE for a transaction older than the purged barrier gets YES, as if committed',
  },
  'purge-by-age': {
    // The simulated journal's purge (journal.ts), the model of the real adapter's.
    machine: 'journal',
    bug: 'the key purge forgets payments begun before the cutoff, completed or not',
  },
  'ignore-epoch': {
    // The shells' fences (journal.ts, participant-shell.ts), as the real mutation of that name.
    machine: 'journal',
    bug: 'the journal accepts writes of an old term, and participants its messages and answers',
  },
};

export function isMutationName(name: string): name is MutationName {
  return (mutationNames as readonly string[]).includes(name);
}
