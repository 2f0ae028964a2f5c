/**
 * The unmutated machines under the swarm: a few thousand seeds, each with its own faults and
 * workload, must keep every safety property at every step and reach liveness after healing. A
 * failure names the seed and prints its trace; `npm run sim -- --seed <n>` replays it.
 *
 * The runs must also have done what they claim: every kind of fault was injected somewhere, and
 * payments both committed and aborted, for either reason. A simulator that silently stopped
 * injecting a fault would otherwise stay green while proving less.
 */
import test from 'ava';
import { runShare, type Tally } from './runner.ts';
import { faultKinds } from './world.ts';

const chunkSeeds = 1_000;
const chunks = 4;

function failureReport(tally: Tally): string {
  const first = tally.violations[0];
  if (first === undefined) return '';
  return [
    `${tally.violationCount} seeds violated a property; the first:`,
    `seed ${first.seed}: ${first.kind}: ${first.message}`,
    ...first.trace,
    `replay: npm run sim -- --seed ${first.seed}`,
  ].join('\n');
}

for (let chunk = 0; chunk < chunks; chunk += 1) {
  const firstSeed = 1 + chunk * chunkSeeds;
  const last = firstSeed + chunkSeeds - 1;
  test(`seeds ${firstSeed}-${last} keep every property`, (t) => {
    const options = { firstSeed, seeds: chunkSeeds, traceLines: 80 };
    const tally = runShare({ options, offset: 0, stride: 1 });
    t.is(tally.violationCount, 0, failureReport(tally));
    t.is(tally.seedsRun, chunkSeeds);
    t.true(tally.committed > 0, 'some payments commit');
    t.true(tally.abortedByVote > 0, 'some payments are refused by a NO vote');
    t.true(tally.abortedByCoordinator > 0, 'some payments time out or lose their coordinator');
    t.true(tally.keyMismatches > 0, 'some keys are reused for another payment and refused');
    for (const kind of faultKinds) t.true((tally.faults[kind] ?? 0) > 0, `${kind} was injected`);
    t.log(
      `${tally.seedsRun} seeds, ${tally.steps} steps, ${tally.committed} committed, ` +
        `${tally.abortedByVote + tally.abortedByCoordinator} aborted`,
    );
  });
}
