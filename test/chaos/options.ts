/**
 * The chaos run's command line: `npm run chaos -- [--duration <s>] [--seed <n>] [--faults <list>]
 * [--json] …`. Every flag is checked; a bad one is a ChaosUsageError with a message that names the
 * flag and what it accepts, and the command exits with code 2 before starting anything.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { parseCommandArgs } from '../../common/cli.ts';
import type { CrashPoint } from '../../common/crash.ts';
import { ConfigError } from '../../common/errors.ts';
import { faultDescriptions, faultKinds, isFaultKind, type FaultKind } from './faults.ts';
import { chaosMutations, isChaosMutation, type ChaosMutation } from './mutations.ts';
import { allCrashPoints } from './nemesis.ts';

export interface ChaosOptions {
  readonly durationS: number;
  readonly seed: number;
  readonly faults: readonly FaultKind[];
  readonly clients: number;
  readonly json: boolean;
  /** The run's directory; a fresh temp directory when undefined. */
  readonly dir: string | undefined;
  /** The liveness bound: after healing, everything must be decided within this. */
  readonly settleTimeoutS: number;
  /** Faults that may be under way at once. */
  readonly concurrentFaults: number;
  readonly crashPoints: readonly CrashPoint[];
  /** Test-only: deliberate bugs switched on in every service (mutations.ts). */
  readonly mutations: readonly ChaosMutation[];
  /** The participants' --barrier-retention-ms; their default when undefined. */
  readonly barrierRetentionMs?: number | undefined;
  /**
   * The coordinators' --key-retention-ms; their default (a day) when undefined. Short, the
   * coordinators purge finished payments and release expired keys during the run, and the
   * checker holds the purge to the retention (checker.ts).
   */
  readonly keyRetentionMs?: number | undefined;
  /** Where the coordinators' lease lives: JetStream KV (`nats`, the default) or the journal. */
  readonly lease?: 'nats' | 'journal';
}

export class ChaosUsageError extends Error {
  override readonly name = 'ChaosUsageError';
  readonly flag: string;
  constructor(flag: string, message: string) {
    super(flag === '' ? message : `--${flag}: ${message}`);
    this.flag = flag;
  }
}

export const seedMax = 4_294_967_295;

export const defaultOptions = {
  durationS: 60,
  clients: 16,
  settleTimeoutS: 60,
  concurrentFaults: 2,
} as const;

export const chaosUsage = `Usage: npm run chaos -- [options]
       npm run chaos -- report <run-dir> [--svg <file>]   (draws a finished run's report again)

Runs the whole stack under load while a nemesis breaks it, then heals, checks every invariant
against the history and the databases, and writes history.jsonl, summary.json and report.html
into the run's directory. Exit code 0: no violation; 1: violations; 2: bad usage; 3: the run
itself failed.

Options:
  --duration <s>           seconds of load and faults, 5 to 86400 (default ${defaultOptions.durationS})
  --seed <n>               0 to ${seedMax}; fixes every choice of the workload and the nemesis
                           (default: random, printed)
  --faults <list>          comma-separated fault kinds, "all" (default) or "none"
  --clients <n>            concurrent clients, 1 to 256 (default ${defaultOptions.clients})
  --concurrent-faults <n>  faults under way at once, 1 to 4 (default ${defaultOptions.concurrentFaults})
  --settle-timeout <s>     liveness bound after healing, 5 to 3600 (default ${defaultOptions.settleTimeoutS})
  --crash-points <list>    crash points the crash-point fault may arm (default: all)
  --dir <path>             the run's directory; must be absent or empty (default: a temp dir)
  --mutations <list>       test only: deliberate bugs to switch on (see docs/chaos.md)
  --barrier-retention-ms <ms>
                           the participants' barrier retention, 1000 to 604800000 (default:
                           theirs, 7 days); short, it makes late decisions meet forgotten rows
  --key-retention-ms <ms>  the coordinators' key retention, 1000 to 604800000 (default: theirs,
                           a day); short, payments are purged and keys reused during the run
  --lease <nats|journal>   where the two coordinators' lease lives: JetStream KV on the cluster
                           (default) or the shared journal (--lease-journal on)
  --json                   print the summary as JSON on stdout
  --help                   this text

Fault kinds:
${faultKinds.map((kind) => `  ${kind.padEnd(19)} ${faultDescriptions[kind]}`).join('\n')}
`;

const flags = {
  duration: { type: 'string' },
  seed: { type: 'string' },
  faults: { type: 'string' },
  clients: { type: 'string' },
  'concurrent-faults': { type: 'string' },
  'settle-timeout': { type: 'string' },
  'crash-points': { type: 'string' },
  dir: { type: 'string' },
  mutations: { type: 'string' },
  'barrier-retention-ms': { type: 'string' },
  'key-retention-ms': { type: 'string' },
  lease: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

/** Parses and checks the flags; 'help' when --help was given. */
export function parseChaosArgs(
  argv: readonly string[],
  randomSeed: () => number,
): ChaosOptions | 'help' {
  let values: Partial<Record<keyof typeof flags, string | boolean>>;
  try {
    values = parseCommandArgs({
      args: [...argv],
      options: flags,
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ChaosUsageError('', error.message);
  }
  if (values.help === true) return 'help';
  const string = (name: keyof typeof flags): string | undefined => {
    const value = values[name];
    return typeof value === 'string' ? value : undefined;
  };
  return {
    durationS: integer('duration', string('duration'), 5, 86_400, defaultOptions.durationS),
    seed: integer('seed', string('seed'), 0, seedMax, undefined) ?? randomSeed(),
    faults: faultList(string('faults')),
    clients: integer('clients', string('clients'), 1, 256, defaultOptions.clients),
    json: values.json === true,
    dir: runDirectory(string('dir')),
    settleTimeoutS: integer(
      'settle-timeout',
      string('settle-timeout'),
      5,
      3_600,
      defaultOptions.settleTimeoutS,
    ),
    concurrentFaults: integer(
      'concurrent-faults',
      string('concurrent-faults'),
      1,
      4,
      defaultOptions.concurrentFaults,
    ),
    crashPoints: crashPointList(string('crash-points')),
    mutations: mutationList(string('mutations')),
    barrierRetentionMs: integer(
      'barrier-retention-ms',
      string('barrier-retention-ms'),
      1_000,
      7 * 24 * 60 * 60 * 1_000,
      undefined,
    ),
    keyRetentionMs: integer(
      'key-retention-ms',
      string('key-retention-ms'),
      1_000,
      7 * 24 * 60 * 60 * 1_000,
      undefined,
    ),
    lease: leaseOption(string('lease')),
  };
}

function leaseOption(text: string | undefined): 'nats' | 'journal' {
  if (text === undefined || text === 'nats' || text === 'journal') return text ?? 'nats';
  throw new ChaosUsageError('lease', `must be nats or journal, not ${JSON.stringify(text)}`);
}

function integer<T extends number | undefined>(
  flag: string,
  text: string | undefined,
  min: number,
  max: number,
  fallback: T,
): number | T {
  if (text === undefined) return fallback;
  const value = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ChaosUsageError(
      flag,
      `must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}`,
    );
  }
  return value;
}

function list(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function faultList(text: string | undefined): FaultKind[] {
  if (text === undefined || text === 'all') return [...faultKinds];
  if (text === 'none') return [];
  const names = list(text);
  if (names.length === 0) throw new ChaosUsageError('faults', 'is empty; use "none" for no faults');
  for (const name of names) {
    if (!isFaultKind(name)) {
      throw new ChaosUsageError(
        'faults',
        `unknown fault kind ${JSON.stringify(name)}; known: ${faultKinds.join(', ')}, all, none`,
      );
    }
  }
  return [...new Set(names as FaultKind[])];
}

function crashPointList(text: string | undefined): CrashPoint[] {
  if (text === undefined || text === 'all') return [...allCrashPoints];
  const names = list(text);
  if (names.length === 0) throw new ChaosUsageError('crash-points', 'is empty');
  for (const name of names) {
    if (!(allCrashPoints as readonly string[]).includes(name)) {
      throw new ChaosUsageError(
        'crash-points',
        `unknown crash point ${JSON.stringify(name)}; known: ${allCrashPoints.join(', ')}`,
      );
    }
  }
  return [...new Set(names as CrashPoint[])];
}

function mutationList(text: string | undefined): ChaosMutation[] {
  if (text === undefined) return [];
  const names = list(text);
  for (const name of names) {
    if (!isChaosMutation(name)) {
      throw new ChaosUsageError(
        'mutations',
        `unknown mutation ${JSON.stringify(name)}; known: ${chaosMutations.join(', ')}`,
      );
    }
  }
  return [...new Set(names as ChaosMutation[])];
}

function runDirectory(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (text === '') throw new ChaosUsageError('dir', 'is empty');
  if (!existsSync(text)) return text;
  if (!statSync(text).isDirectory()) throw new ChaosUsageError('dir', `${text} is not a directory`);
  if (readdirSync(text).length > 0) {
    throw new ChaosUsageError('dir', `${text} is not empty; give a new or empty directory`);
  }
  return text;
}
