/**
 * Runs many seeds and adds up what they did: in this thread, or spread over worker threads (one
 * per core by default) for throughput. Seeds are dealt out round-robin, so every worker gets a
 * similar mix of small and large runs; the totals do not depend on how many workers ran them.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { MutationName } from './mutations.ts';
import { runSeed, type SeedResult } from './simulator.ts';
import type { Scale } from './swarm.ts';
import type { ViolationKind } from './world.ts';

export interface BatchOptions {
  readonly firstSeed: number;
  readonly seeds: number;
  readonly mutation?: MutationName;
  readonly scale?: Scale;
  /** How many of the last events each reported violation keeps. */
  readonly traceLines: number;
}

export interface ViolationReport {
  readonly seed: number;
  readonly kind: ViolationKind;
  readonly message: string;
  readonly atMs: number;
  readonly step: number;
  readonly trace: readonly string[];
}

/** Totals over a set of seeds; two tallies merge by adding. */
export interface Tally {
  seedsRun: number;
  steps: number;
  virtualMs: number;
  committed: number;
  abortedByVote: number;
  abortedByCoordinator: number;
  keyMismatches: number;
  faults: Record<string, number>;
  violationCount: number;
  /** Violations by the property they broke. */
  violationKinds: Record<string, number>;
  /** The first violations by seed, with their traces; the rest are only counted. */
  violations: ViolationReport[];
}

export interface BatchSummary extends Tally {
  readonly workers: number;
  readonly wallMs: number;
  readonly seedsPerSecond: number;
}

/** Violations reported in full; beyond these only the count grows. */
export const reportedViolationsMax = 20;

/** What a worker posts: progress now and then, its tally at the end. */
export type WorkerMessage =
  | { readonly kind: 'progress'; readonly done: number }
  | { readonly kind: 'done'; readonly tally: Tally };

export interface WorkerJob {
  readonly options: BatchOptions;
  readonly offset: number;
  readonly stride: number;
}

export function emptyTally(): Tally {
  return {
    seedsRun: 0,
    steps: 0,
    virtualMs: 0,
    committed: 0,
    abortedByVote: 0,
    abortedByCoordinator: 0,
    keyMismatches: 0,
    faults: {},
    violationCount: 0,
    violationKinds: {},
    violations: [],
  };
}

type Counters = Pick<
  Tally,
  'steps' | 'virtualMs' | 'committed' | 'abortedByVote' | 'abortedByCoordinator' | 'keyMismatches'
>;

/** The counters a seed's result and a tally both carry, added into a tally. */
function addCounters(into: Tally, from: Counters & { readonly faults: Tally['faults'] }): void {
  into.steps += from.steps;
  into.virtualMs += from.virtualMs;
  into.committed += from.committed;
  into.abortedByVote += from.abortedByVote;
  into.abortedByCoordinator += from.abortedByCoordinator;
  into.keyMismatches += from.keyMismatches;
  addByKind(into.faults, from.faults);
}

function addByKind(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [kind, count] of Object.entries(from)) into[kind] = (into[kind] ?? 0) + count;
}

export function addResult(tally: Tally, result: SeedResult): void {
  tally.seedsRun += 1;
  addCounters(tally, result);
  const { violation } = result;
  if (violation === undefined) return;
  tally.violationCount += 1;
  addByKind(tally.violationKinds, { [violation.kind]: 1 });
  if (tally.violations.length < reportedViolationsMax) {
    tally.violations.push({ seed: result.seed, ...violation, trace: result.trace });
  }
}

export function mergeTallies(tallies: readonly Tally[]): Tally {
  const total = emptyTally();
  for (const tally of tallies) {
    total.seedsRun += tally.seedsRun;
    addCounters(total, tally);
    total.violationCount += tally.violationCount;
    addByKind(total.violationKinds, tally.violationKinds);
    total.violations.push(...tally.violations);
  }
  total.violations.sort((a, b) => a.seed - b.seed);
  total.violations.length = Math.min(total.violations.length, reportedViolationsMax);
  return total;
}

/** Runs every `stride`-th seed of the batch from `offset`, in this thread. */
export function runShare(job: WorkerJob, onProgress?: (done: number) => void): Tally {
  const { options, offset, stride } = job;
  const tally = emptyTally();
  const last = options.firstSeed + options.seeds;
  for (let seed = options.firstSeed + offset; seed < last; seed += stride) {
    addResult(tally, runSeed(seed, runOptionsOf(options)));
    if (onProgress !== undefined && tally.seedsRun % progressEvery === 0) {
      onProgress(tally.seedsRun);
    }
  }
  return tally;
}

/** Runs the seeds of a batch in order until one violates a property; for the mutation tests. */
export function firstViolation(options: BatchOptions): SeedResult | undefined {
  for (let seed = options.firstSeed; seed < options.firstSeed + options.seeds; seed += 1) {
    const result = runSeed(seed, runOptionsOf(options));
    if (result.violation !== undefined) return result;
  }
  return undefined;
}

const progressEvery = 25;

export function defaultWorkers(): number {
  return availableParallelism();
}

/**
 * Runs a batch on `workers` threads and reports progress as seeds finish. Each worker is a
 * fresh isolate that loads the TypeScript sources through tsx, as the main thread does.
 */
export async function runInParallel(
  options: BatchOptions,
  workers: number,
  onProgress?: (done: number) => void,
): Promise<BatchSummary> {
  const started = performance.now();
  const count = Math.max(1, Math.min(workers, options.seeds));
  const done = new Array<number>(count).fill(0);
  const shares = Array.from({ length: count }, (_, offset) =>
    runWorker({ options, offset, stride: count }, (seeds) => {
      done[offset] = seeds;
      onProgress?.(done.reduce((sum, value) => sum + value, 0));
    }),
  );
  const tally = mergeTallies(await Promise.all(shares));
  const wallMs = performance.now() - started;
  const seedsPerSecond = tally.seedsRun / Math.max(wallMs / 1000, 1e-9);
  return { ...tally, workers: count, wallMs, seedsPerSecond };
}

function runWorker(job: WorkerJob, onProgress: (done: number) => void): Promise<Tally> {
  const entry = new URL('./worker.ts', import.meta.url).href;
  // A worker does not inherit the main thread's module hooks: register tsx, then load the entry.
  const load = `api.register(); return import(${JSON.stringify(entry)});`;
  const code = `import('tsx/esm/api').then((api) => { ${load} });`;
  const worker = new Worker(code, { eval: true, workerData: job });
  return new Promise((resolve, reject) => {
    let tally: Tally | undefined;
    worker.on('message', (message: WorkerMessage) => {
      if (message.kind === 'progress') onProgress(message.done);
      else tally = message.tally;
    });
    worker.on('error', reject);
    worker.on('exit', (code) => {
      if (tally === undefined) reject(new Error(`simulation worker exited with code ${code}`));
      else resolve(tally);
    });
  });
}

function runOptionsOf(options: BatchOptions): Parameters<typeof runSeed>[1] {
  return {
    traceLines: options.traceLines,
    ...(options.mutation === undefined ? {} : { mutation: options.mutation }),
    ...(options.scale === undefined ? {} : { scale: options.scale }),
  };
}
