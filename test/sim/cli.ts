/**
 * `npm run sim`: runs the deterministic simulator from the command line.
 *
 *   npm run sim -- --seeds <n> [--seed <first>] [--mutation <name>] [--json] [--workers <n>]
 *   npm run sim -- --seed <n> [--mutation <name>] [--trace <lines>]
 *
 * With `--seeds`, runs n seeds (from `--seed`, default 1) on every core, with a progress bar on
 * stderr, and prints seeds run, steps simulated, faults injected by kind, violations with their
 * seeds, and seeds per second. With `--seed` alone, replays that one seed and prints its trace and
 * a digest of the whole trace: the same seed always prints the same digest. Exit code 0 when no
 * property was violated, 1 when one was, 2 for a bad command line.
 */
import { integerFlag, parseCommandArgs } from '../../common/cli.ts';
import { ConfigError } from '../../common/errors.ts';
import {
  isMutationName,
  mutationCatalogue,
  mutationNames,
  type MutationName,
} from './mutations.ts';
import { defaultWorkers, runInParallel, type BatchSummary } from './runner.ts';
import { runSeed } from './simulator.ts';

interface Command {
  readonly seeds: number | undefined;
  readonly seed: number | undefined;
  readonly mutation: MutationName | undefined;
  readonly json: boolean;
  readonly workers: number;
  readonly traceLines: number;
}

/** Violations whose traces a batch report prints; the others are listed by seed. */
const tracedViolationsMax = 3;

const usage = `usage: npm run sim -- --seeds <n> [--seed <first>] [--mutation <name>] [--json]
                             [--workers <n>] [--trace <lines>]
       npm run sim -- --seed <n> [--mutation <name>] [--trace <lines>]
mutations: ${mutationNames.join(', ')}`;

export function parseCommand(args: readonly string[]): Command {
  const { values } = parseCommandArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: {
      seeds: { type: 'string' },
      seed: { type: 'string' },
      mutation: { type: 'string' },
      json: { type: 'boolean' },
      workers: { type: 'string' },
      trace: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) throw new ConfigError('help requested');
  const strings = { seeds: values.seeds, seed: values.seed, workers: values.workers };
  if (values.seeds === undefined && values.seed === undefined) {
    throw new ConfigError('give --seeds <n> to run a batch, or --seed <n> to replay one seed');
  }
  const { mutation } = values;
  if (mutation !== undefined && !isMutationName(mutation)) {
    throw new ConfigError(`--mutation must be one of ${mutationNames.join(', ')}, not ${mutation}`);
  }
  return {
    seeds: values.seeds === undefined ? undefined : integerFlag(strings, 'seeds', 1, 1e9),
    seed: values.seed === undefined ? undefined : integerFlag(strings, 'seed', 0, 2 ** 53 - 1e9),
    mutation,
    json: values.json === true,
    workers:
      values.workers === undefined ? defaultWorkers() : integerFlag(strings, 'workers', 1, 256),
    traceLines:
      values.trace === undefined ? 60 : integerFlag({ trace: values.trace }, 'trace', 0, 1e7),
  };
}

async function main(args: readonly string[]): Promise<number> {
  const command = parseCommand(args);
  if (command.seeds === undefined) return replay(command, command.seed ?? 1);
  const { seeds, workers, mutation, traceLines } = command;
  const firstSeed = command.seed ?? 1;
  const bar = progressBar(seeds);
  const summary = await runInParallel(
    { firstSeed, seeds, traceLines, ...(mutation === undefined ? {} : { mutation }) },
    workers,
    bar.update,
  );
  bar.finish();
  process.stdout.write(
    command.json ? `${JSON.stringify(summary, null, 2)}\n` : report(summary, command),
  );
  return summary.violationCount === 0 ? 0 : 1;
}

/** Replays one seed with its whole trace, so a failure can be read event by event. */
function replay(command: Command, seed: number): number {
  const { mutation, traceLines } = command;
  const result = runSeed(seed, {
    fullTrace: true,
    ...(mutation === undefined ? {} : { mutation }),
  });
  const lines = result.trace;
  const digest = fnv1a(lines.join('\n'));
  const shown = lines.slice(Math.max(0, lines.length - traceLines));
  if (command.json) {
    process.stdout.write(`${JSON.stringify({ ...result, trace: shown, digest }, null, 2)}\n`);
  } else {
    const out = [
      `seed ${seed}${mutation === undefined ? '' : ` with mutation ${mutation}`}`,
      `last ${shown.length} of ${lines.length} events:`,
      ...shown,
      '',
      `steps ${result.steps}, virtual time ${result.virtualMs} ms, trace digest ${digest}`,
      `committed ${result.committed}, aborted by a NO vote ${result.abortedByVote}, ` +
        `aborted by the coordinator ${result.abortedByCoordinator}`,
      result.violation === undefined
        ? 'no violation'
        : `VIOLATION ${result.violation.kind}: ${result.violation.message}`,
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  }
  return result.violation === undefined ? 0 : 1;
}

function report(summary: BatchSummary, command: Command): string {
  const faults = Object.entries(summary.faults)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([kind, count]) => `  ${kind.padEnd(22)} ${count}`);
  const mutation = command.mutation === undefined ? '' : ` --mutation ${command.mutation}`;
  // The first few failures with their traces; the rest by seed, to replay one by one.
  const violations = summary.violations.flatMap((violation, index) => [
    `seed ${violation.seed}: ${violation.kind}: ${violation.message}`,
    ...(index < tracedViolationsMax ? violation.trace.map((line) => `    ${line}`) : []),
    `  replay: npm run sim -- --seed ${violation.seed}${mutation}`,
  ]);
  const lines = [
    `seeds run        ${summary.seedsRun}`,
    `steps simulated  ${summary.steps}`,
    `virtual time     ${Math.round(summary.virtualMs / 1000)} s`,
    `payments         committed ${summary.committed}, aborted by a NO vote ` +
      `${summary.abortedByVote}, aborted by the coordinator ${summary.abortedByCoordinator}`,
    `key mismatches   ${summary.keyMismatches}`,
    'faults injected',
    ...faults,
    `violations       ${summary.violationCount}${kindsOf(summary.violationKinds)}`,
    ...violations,
    `wall time        ${(summary.wallMs / 1000).toFixed(1)} s on ${summary.workers} workers`,
    `seeds per second ${summary.seedsPerSecond.toFixed(0)}`,
  ];
  if (command.mutation !== undefined) {
    lines.unshift(
      `mutation         ${command.mutation}: ${mutationCatalogue[command.mutation].bug}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function kindsOf(kinds: Readonly<Record<string, number>>): string {
  const entries = Object.entries(kinds).map(([kind, count]) => `${kind} ${count}`);
  return entries.length === 0 ? '' : ` (${entries.join(', ')})`;
}

/** A progress bar on stderr: redrawn in place on a terminal, a line per tenth otherwise. */
function progressBar(total: number): { update: (done: number) => void; finish: () => void } {
  const started = performance.now();
  const tty = process.stderr.isTTY;
  let drawnAt = 0;
  let tenth = -1;
  const draw = (done: number): void => {
    const width = 30;
    const filled = Math.round((done / total) * width);
    const rate = done / Math.max((performance.now() - started) / 1000, 1e-9);
    const text =
      `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} seeds, ` +
      `${rate.toFixed(0)}/s`;
    process.stderr.write(tty ? `\r${text}` : `${text}\n`);
  };
  return {
    update: (done) => {
      const now = performance.now();
      const doneTenth = Math.floor((done / total) * 10);
      if (tty ? now - drawnAt < 100 : doneTenth === tenth) return;
      drawnAt = now;
      tenth = doneTenth;
      draw(done);
    },
    finish: () => {
      if (tty) {
        draw(total);
        process.stderr.write('\n');
      } else if (tenth !== 10) {
        draw(total);
      }
    },
  };
}

/** FNV-1a, 32 bits, as hex: a short fingerprint to compare two replays of one seed. */
function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof ConfigError) {
      const help = error.message === 'help requested' ? '' : `${error.name}: ${error.message}\n`;
      process.stderr.write(`${help}${usage}\n`);
      process.exitCode = error.message === 'help requested' ? 0 : 2;
      return;
    }
    throw error;
  },
);
