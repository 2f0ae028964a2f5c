/**
 * Throughput and latency of payments on the real stack, measured against the bounds of the same
 * machine in the same run (`npm run bench -- throughput [--json] [--quick] [--profile]`).
 *
 * One nats-server (a single node, started with its monitoring port), the coordinator and the three
 * participants, each its own process with durability on (WAL, synchronous=FULL), in a temp
 * directory; this process is the load generator. First the storage bound (bench/bounds.ts), then
 * each level for a fixed time after a warm-up: closed loops at concurrency 1, 16, 64, 256 and
 * 1,024, all committing and with 10 % NO votes, and open loops at fixed offered rates. The
 * messaging bound's echo runs right after the all-commit levels at 64, 256 and 1,024, each at the
 * same concurrency (echoPlan). For each level:
 * committed payments per second, latency percentiles, CPU per process (/proc), SQLite commits per
 * payment (the services' own counters: each commit is one fsync), NATS messages per payment
 * (/varz). At the end every invariant is checked across the four databases, so a run that lost or
 * half-applied a payment fails however fast it was.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { ContinuumClient } from '../client/index.ts';
import { ConfigError } from '../common/errors.ts';
import { connectNats, type NatsConnection } from '../common/nats.ts';
import type { Payment } from '../common/protocol.ts';
import {
  gcCounters,
  heapAllocatedBytes,
  watchGc,
  type GcKind,
  type ServiceStats,
} from '../common/stats.ts';
import { openDatabase } from '../common/sqlite.ts';
import {
  checkInvariants,
  forgottenTransactions,
  moneyBaseline,
  waitUntilSettled,
} from '../ops/checker.ts';
import { projectRoot } from '../ops/service-process.ts';
import {
  databaseFiles,
  startStack,
  type ServiceName,
  type Stack,
  type StackOptions,
} from '../ops/stack.ts';
import {
  EchoBench,
  measureForcedCommits,
  messagingBound,
  type EchoLevel,
  type MessagingBound,
  type StorageBound,
} from './bounds.ts';
import { closedLoop, openLoop, type WindowResult } from './load.ts';
import { machineInfo, type MachineInfo } from './machine.ts';
import { OrdersExhaustedError, OrderSupply, seedParties } from './orders.ts';
import { cpuTimeMs, natsCounts, serviceStats, type NatsCounts } from './probes.ts';
import {
  summarizeHeapProfiles,
  summarizeProfiles,
  type AllocationSummary,
  type ProfileSummary,
} from './profile.ts';
import { progress } from './report.ts';

export const serviceNames: readonly ServiceName[] = ['coordinator', 'bank', 'vendor', 'customer'];
export type ProcessName = 'nats' | ServiceName | 'loader';
export const processNames: readonly ProcessName[] = ['nats', ...serviceNames, 'loader'];
/** The processes that run JavaScript, and so collect garbage. */
export type NodeProcessName = ServiceName | 'loader';
const nodeProcessNames: readonly NodeProcessName[] = [...serviceNames, 'loader'];

/**
 * Something that stopped one process's event loop during an open-loop window, at ms after the
 * window's start: a garbage-collection pause, or a write transaction of 2 ms or more (`commit`,
 * services only).
 */
export interface WindowPause {
  readonly process: NodeProcessName;
  readonly atMs: number;
  readonly ms: number;
  readonly kind: GcKind | 'commit';
}

export type Variant = 'all-commit' | 'no-10pct';

export interface LevelSpec {
  readonly loop: 'closed' | 'open';
  readonly variant: Variant;
  /** Clients (closed loop) or offered payments per second (open loop). */
  readonly load: number;
}

export interface LevelResult extends LevelSpec {
  readonly name: string;
  readonly window: WindowResult;
  readonly committedPerSecond: number;
  /** CPU during the window, per process: % of one core, and ms per payment. */
  readonly cpu: Readonly<Record<ProcessName, { percent: number; msPerPayment: number }>>;
  readonly cpuMsPerPayment: number;
  /** SQLite write transactions (each one fsync) per payment, per service and in total. */
  readonly sqliteCommitsPerPayment: Readonly<Record<ServiceName | 'total', number>>;
  /** Mean inputs per batch (so per SQLite transaction at most), per service. */
  readonly inputsPerBatch: Readonly<Record<ServiceName, number>>;
  /**
   * Mean wall time of one write transaction (statements plus fsync), per service, in ms: how
   * fast the disk was during this level, which the bounds measured only before the levels.
   */
  readonly commitMs: Readonly<Record<ServiceName, number>>;
  readonly natsPerPayment: {
    readonly inMsgs: number;
    readonly outMsgs: number;
    readonly bytes: number;
  };
  /**
   * Garbage collection during the window, per process: how many pauses and their total ms, and
   * the JavaScript heap allocated per payment in bytes (what makes collections come).
   */
  readonly gc: Readonly<
    Record<NodeProcessName, { pauses: number; ms: number; allocatedPerPayment: number }>
  >;
  /**
   * Open loop only: the GC pauses of 1 ms or more and the write transactions of 2 ms or more in
   * any process while the window's payments ran, and how many of the slowest 1 % of payments (at
   * or above p99) were in flight during a GC pause, during a slow commit, and during either.
   */
  readonly tail?: {
    readonly pauses: readonly WindowPause[];
    readonly slow: number;
    readonly slowDuringPause: number;
    readonly slowDuringCommit: number;
    readonly slowDuringEither: number;
    /** The same counts over all the window's payments, for comparison. */
    readonly all: number;
    readonly allDuringPause: number;
    readonly allDuringCommit: number;
    readonly allDuringEither: number;
  };
}

export interface ThroughputOptions {
  readonly quick: boolean;
  /**
   * Run only the levels whose name contains one of these texts (e.g. `c=64 all`); all when
   * undefined.
   */
  readonly only: readonly string[] | undefined;
  /** Write a CPU profile of every service into this directory (bench/cpu-profile-hook.ts). */
  readonly profileDirectory: string | undefined;
}

export interface ThroughputResult {
  readonly machine: MachineInfo;
  readonly settings: Readonly<Record<string, string | number | boolean>>;
  readonly bounds: { readonly messaging: MessagingBound; readonly storage: StorageBound };
  readonly levels: readonly LevelResult[];
  readonly violations: readonly string[];
  readonly loadAverageEnd: number;
  /** CPU profiles of the services, when the run was profiled. */
  readonly profiles: readonly ProfileSummary[];
  /** Allocation profiles of the services, when the run was profiled. */
  readonly allocations: readonly AllocationSummary[];
}

/**
 * The levels, 1 to 256, and 1,024 to find the peak: batches still grow past 256, so the
 * peak lies beyond it. The messaging bound is measured at the same high concurrencies
 * (echoConcurrencies), so that neither side of the ratio gets a depth the other did not.
 */
export const closedConcurrencies = [1, 16, 64, 256, 1_024] as const;
export const echoConcurrencies = closedConcurrencies.filter((load) => load >= 64);
export const openRates = [250, 500, 1_000] as const;

/**
 * When each echo level runs. At each of echoConcurrencies, right after the all-commit closed level
 * of the same concurrency (`after`, by the index of that level in `specs`), so that the two sides
 * of that concurrency's ratio are measured seconds apart, not one to two minutes; before the
 * levels (`before`) when no such level was selected, so that every run has a bound.
 */
export function echoPlan(specs: readonly LevelSpec[]): {
  readonly before: readonly number[];
  readonly after: readonly (number | undefined)[];
} {
  const after = specs.map((spec) =>
    spec.loop === 'closed' &&
    spec.variant === 'all-commit' &&
    (echoConcurrencies as readonly number[]).includes(spec.load)
      ? spec.load
      : undefined,
  );
  const before = echoConcurrencies.filter((load) => !after.includes(load));
  return { before, after };
}

function levelSpecs(): LevelSpec[] {
  return [
    ...closedConcurrencies.map((load): LevelSpec => ({
      loop: 'closed',
      variant: 'all-commit',
      load,
    })),
    ...closedConcurrencies.map((load): LevelSpec => ({
      loop: 'closed',
      variant: 'no-10pct',
      load,
    })),
    ...openRates.map((load): LevelSpec => ({ loop: 'open', variant: 'all-commit', load })),
  ];
}

export function levelName(spec: LevelSpec): string {
  const load = spec.loop === 'closed' ? `c=${spec.load}` : `${spec.load}/s`;
  return `${spec.loop} ${load} ${spec.variant}`;
}

/**
 * The levels to run: all, or those whose name contains one of `only`. A text that names no level
 * is a ConfigError listing the names, before anything starts: a run of no levels would measure
 * the bounds for minutes and then report every target missed.
 */
export function selectLevels(only: readonly string[] | undefined): LevelSpec[] {
  const specs = levelSpecs();
  if (only === undefined) return specs;
  const names = specs.map(levelName);
  for (const text of only) {
    if (text === '' || !names.some((name) => name.includes(text))) {
      throw new ConfigError(
        `--only ${JSON.stringify(text)} names no level; the levels: ${names.join(', ')}`,
      );
    }
  }
  return specs.filter((_spec, index) => only.some((text) => names[index]?.includes(text)));
}

const fullTiming = {
  warmupMs: 3_000,
  measureMs: 10_000,
  stackWarmupMs: 10_000,
  echoWarmupMs: 1_000,
  echoMs: 5_000,
  sqliteMs: 3_000,
} as const;
const quickTiming = {
  warmupMs: 1_000,
  measureMs: 3_000,
  stackWarmupMs: 2_000,
  echoWarmupMs: 500,
  echoMs: 2_000,
  sqliteMs: 1_000,
} as const;

/**
 * The concurrency of the stack's warm-up before the first level. Started cold, the services'
 * V8 is still compiling their hot paths seconds into the first level (one client): in one run a
 * participant's background compiler threads took 17 % of its CPU in that level's window, 6 %
 * after a warm-up at this concurrency (docs/performance.md, "What changed", seventh round).
 */
export const stackWarmupConcurrency = 16;

/** Payments per second no level is expected to exceed; orders are made for this many. */
const closedRateCeiling = 12_000;

export async function runThroughput(options: ThroughputOptions): Promise<ThroughputResult> {
  const timing = options.quick ? quickTiming : fullTiming;
  const specs = selectLevels(options.only);
  const machine = machineInfo();
  watchGc();
  const stack = await startBenchStack(options.profileDirectory);
  const names = new Map(serviceNames.map((name) => [pidOf(stack, name), name] as const));
  const bench = await BenchRun.open(stack);
  let result: Omit<ThroughputResult, 'profiles' | 'allocations'> | undefined;
  let echoToStop: EchoBench | undefined;
  try {
    progress(`stack in ${stack.root}; one nats-server at ${stack.natsUrls.join(',')}`);
    const echo = await EchoBench.start({
      natsUrls: stack.natsUrls,
      pids: Object.fromEntries(
        processNames.filter((name) => name !== 'loader').map((name) => [name, pidOf(stack, name)]),
      ),
      logDirectory: stack.root,
    });
    echoToStop = echo;
    progress(`storage bound: forced commits for ${timing.sqliteMs} ms`);
    const storage = measureForcedCommits(stack.root, timing.sqliteMs);
    progress(`storage bound: ${storage.forcedCommitsPerSecond} forced commits/s`);
    const plan = echoPlan(specs);
    const echoTiming = { warmupMs: timing.echoWarmupMs, measureMs: timing.echoMs };
    const echoLevels: EchoLevel[] = [];
    const measureEcho = async (concurrency: number, after?: string): Promise<void> => {
      progress(`messaging bound: echo at concurrency ${concurrency}`);
      const level = await echo.level(concurrency, echoTiming, after);
      progress(
        `messaging bound: ${Math.round(level.requestRepliesPerSecond)} request/replies/s ` +
          `at concurrency ${concurrency}`,
      );
      echoLevels.push(level);
    };
    for (const concurrency of plan.before) await measureEcho(concurrency);
    // The first /varz read loads Node's fetch (undici): tens of milliseconds with this process's
    // event loop blocked. Inside a level's snapshot that stall would hold back the open loop's
    // arrivals and release them as a burst at the window's start, so take it here, unmeasured.
    await bench.snapshot('start');
    await bench.warmUp(timing.stackWarmupMs);
    const levels: LevelResult[] = [];
    for (const [index, spec] of specs.entries()) {
      levels.push(await bench.level(spec, timing));
      const concurrency = plan.after[index];
      if (concurrency === undefined) continue;
      // The decisions and acknowledgements that follow the level's last answers finish first.
      await bench.settle();
      await measureEcho(concurrency, levelName(spec));
    }
    const messaging = messagingBound(
      [...echoLevels].sort((a, b) => a.concurrency - b.concurrency),
      echo.payloadBytes,
    );
    const violations = await bench.check();
    result = {
      machine,
      settings: {
        nats: 'one nats-server node (no cluster), loopback',
        durability: 'journal_mode=WAL, synchronous=FULL in every service',
        flags: 'service defaults',
        warmupMs: timing.warmupMs,
        measureMs: timing.measureMs,
        stackWarmupMs: timing.stackWarmupMs,
        stackWarmupConcurrency,
        quick: options.quick,
        profiled: options.profileDirectory !== undefined,
      },
      bounds: { messaging, storage },
      levels,
      violations,
      loadAverageEnd: machineInfo().loadAverage1m,
    };
  } finally {
    await echoToStop?.stop();
    await bench.close();
    // A failed run keeps its directory: the services' logs are there.
    await stack.stop({ remove: result !== undefined && result.violations.length === 0 });
    if (result === undefined) progress(`run failed; logs kept in ${stack.root}`);
  }
  // Each service writes its profile as it exits, so they are read after the stack stopped.
  const { profileDirectory } = options;
  if (profileDirectory === undefined) return { ...result, profiles: [], allocations: [] };
  return {
    ...result,
    profiles: summarizeProfiles(profileDirectory, names),
    allocations: summarizeHeapProfiles(profileDirectory, names),
  };
}

export async function startBenchStack(
  profileDirectory: string | undefined,
  flags: StackOptions['flags'] = {},
  countAllocation = true,
): Promise<Stack> {
  const env: Record<string, string> = { CONTINUUM_STATS: '1' };
  if (!countAllocation) env['CONTINUUM_STATS_ALLOCATION'] = '0';
  if (profileDirectory !== undefined) {
    // Node 20 refuses --cpu-prof in NODE_OPTIONS; the hook does the same through the inspector.
    const hook = join(projectRoot, 'bench', 'cpu-profile-hook.ts');
    env['NODE_OPTIONS'] = `--import tsx --import ${hook}`;
    env['CONTINUUM_CPU_PROFILE_DIR'] = profileDirectory;
  }
  return startStack({ env, seed: seedParties, flags });
}

export function pidOf(stack: Stack, name: ProcessName): number {
  const pid =
    name === 'nats'
      ? stack.nats[0]?.pid
      : name === 'loader'
        ? process.pid
        : stack.services[name].pid;
  if (pid === undefined) throw new Error(`${name} is not running`);
  return pid;
}

interface Snapshot {
  readonly at: number;
  readonly cpuMs: Readonly<Record<ProcessName, number>>;
  readonly nats: NatsCounts;
  readonly stats: Readonly<Record<ServiceName, ServiceStats>>;
  /** This process's own GC counts (the services' are in their stats). */
  readonly loaderGc: { readonly count: number; readonly ms: number; readonly allocated: number };
}

/** The stack under test, a client, a connection for probes and the orders to pay. */
export class BenchRun {
  readonly stack: Stack;
  readonly #client: ContinuumClient;
  readonly #probe: NatsConnection;
  readonly #payers = { loader: new OrderSupply('loader'), broke: new OrderSupply('broke') };
  readonly #baseline;

  private constructor(stack: Stack, client: ContinuumClient, probe: NatsConnection) {
    this.stack = stack;
    this.#client = client;
    this.#probe = probe;
    this.#baseline = moneyBaseline(databaseFiles(stack).bank);
  }

  static async open(stack: Stack): Promise<BenchRun> {
    const client = await ContinuumClient.connect({ servers: stack.natsUrls, clientId: 'bench' });
    const probe = await connectNats({ servers: stack.natsUrls, name: 'bench-probe' });
    return new BenchRun(stack, client, probe);
  }

  get client(): ContinuumClient {
    return this.#client;
  }

  async close(): Promise<void> {
    await this.#client.close();
    await this.#probe.drain();
  }

  /**
   * Payments at `stackWarmupConcurrency` for `ms`, measured by nothing: the services' compilers
   * reach the hot paths before the first level, as they have in a service that has been running.
   */
  async warmUp(ms: number): Promise<void> {
    await this.provide('all-commit', Math.ceil((closedRateCeiling * ms) / 1_000));
    progress(
      `warm-up: the stack at concurrency ${stackWarmupConcurrency} for ${ms / 1_000} s, unmeasured`,
    );
    const source = this.paymentSource('all-commit');
    await closedLoop({
      client: this.#client,
      nextPayment: source,
      concurrency: stackWarmupConcurrency,
      warmupMs: ms,
      measureMs: 0,
      onWindow: async () => {},
    });
  }

  /** Makes sure enough orders are open for `count` payments of a variant, once all is settled. */
  async provide(variant: Variant, count: number): Promise<void> {
    await this.settle();
    const vendorDb = openDatabase(this.stack.dbFile('vendor'), 'vendor');
    try {
      const noVotes = variant === 'no-10pct' ? Math.ceil(count / 10) : 0;
      this.#payers.loader.ensure(vendorDb, count);
      this.#payers.broke.ensure(vendorDb, noVotes);
    } finally {
      vendorDb.close();
    }
  }

  /**
   * Waits until no payment is in flight at the coordinator or in doubt at a participant: a level
   * ends when its clients have their answers, but decisions and acknowledgements still follow.
   */
  async settle(): Promise<void> {
    const deadline = performance.now() + 30_000;
    while (performance.now() < deadline) {
      const stats = await Promise.all(serviceNames.map((name) => serviceStats(this.#probe, name)));
      if (stats.every((entry) => entry.inMemory === 0)) return;
      await sleep(50);
    }
    throw new Error('payments still in flight 30 s after the load stopped');
  }

  /** The next payment of a variant: every tenth pays a `broke` order in the 10 % NO variant. */
  paymentSource(variant: Variant): () => Payment {
    let sent = 0;
    return () => {
      sent += 1;
      const payer = variant === 'no-10pct' && sent % 10 === 0 ? 'broke' : 'loader';
      return this.#payers[payer].next();
    };
  }

  async level(
    spec: LevelSpec,
    timing: { readonly warmupMs: number; readonly measureMs: number },
  ): Promise<LevelResult> {
    const name = levelName(spec);
    const seconds = (timing.warmupMs + timing.measureMs) / 1_000;
    const rate = spec.loop === 'closed' ? closedRateCeiling : spec.load * 1.1;
    await this.provide(spec.variant, Math.ceil(rate * seconds));
    progress(`${name}: warm-up ${timing.warmupMs / 1_000} s, then ${timing.measureMs / 1_000} s`);
    const snapshots: Snapshot[] = [];
    const supply = { exhausted: false };
    const source = this.paymentSource(spec.variant);
    const nextPayment = (): Payment => {
      try {
        return source();
      } catch (error) {
        if (error instanceof OrdersExhaustedError) supply.exhausted = true;
        throw error;
      }
    };
    const loop = {
      client: this.#client,
      nextPayment,
      ...timing,
      onWindow: async (edge: 'start' | 'end') => {
        snapshots.push(await this.snapshot(edge));
      },
    };
    const window =
      spec.loop === 'closed'
        ? await closedLoop({ ...loop, concurrency: spec.load })
        : await openLoop({ ...loop, ratePerSecond: spec.load, keepSamples: true });
    if (supply.exhausted)
      throw new OrdersExhaustedError(`${name} ran out of orders; raise the ceiling`);
    const [before, after] = snapshots;
    if (!before || !after) throw new Error(`${name}: missing snapshots`);
    const result = levelResult(spec, window, before, after);
    progress(
      `${name}: ${Math.round(result.committedPerSecond)} committed/s, ` +
        `p50 ${window.latency.p50Ms} ms, p99 ${window.latency.p99Ms} ms`,
    );
    return result;
  }

  /** Counters of every process. Stats requests stay outside the /varz window on both edges. */
  async snapshot(edge: 'start' | 'end'): Promise<Snapshot> {
    const httpPort = this.stack.nats[0]?.httpPort ?? 0;
    const readStats = async (): Promise<Record<ServiceName, ServiceStats>> => {
      const all = await Promise.all(serviceNames.map((name) => serviceStats(this.#probe, name)));
      return Object.fromEntries(serviceNames.map((name, i) => [name, all[i]])) as Record<
        ServiceName,
        ServiceStats
      >;
    };
    const readCpu = (): Record<ProcessName, number> =>
      Object.fromEntries(
        processNames.map((name) => [name, cpuTimeMs(pidOf(this.stack, name))]),
      ) as Record<ProcessName, number>;
    const loaderGc = (): Snapshot['loaderGc'] => ({
      count: gcCounters.count,
      ms: gcCounters.ms,
      allocated: heapAllocatedBytes(),
    });
    if (edge === 'start') {
      const stats = await readStats();
      const nats = await natsCounts(httpPort);
      return { at: performance.now(), cpuMs: readCpu(), nats, stats, loaderGc: loaderGc() };
    }
    const at = performance.now();
    const cpuMs = readCpu();
    const gc = loaderGc();
    const nats = await natsCounts(httpPort);
    return { at, cpuMs, nats, stats: await readStats(), loaderGc: gc };
  }

  /**
   * Waits for every payment to settle, then checks every invariant across the databases. With a
   * key retention, payments the coordinator may have purged are checked for all-or-nothing at the
   * participants only.
   */
  async check(retentionMs?: number): Promise<string[]> {
    progress('checking invariants across the four databases');
    const files = databaseFiles(this.stack);
    const settled = await waitUntilSettled(files, 30_000);
    const forgotten =
      retentionMs === undefined ? new Set<string>() : forgottenTransactions(files, retentionMs);
    return checkInvariants(files, { baseline: this.#baseline, settled, forgotten });
  }
}

function levelResult(
  spec: LevelSpec,
  window: WindowResult,
  before: Snapshot,
  after: Snapshot,
): LevelResult {
  const payments = Math.max(1, window.committed + window.aborted);
  const elapsedMs = after.at - before.at;
  const perPayment = (value: number): number => Math.round((value / payments) * 1_000) / 1_000;
  const cpu = Object.fromEntries(
    processNames.map((name) => {
      const used = after.cpuMs[name] - before.cpuMs[name];
      return [
        name,
        { percent: Math.round((used / elapsedMs) * 100), msPerPayment: perPayment(used) },
      ];
    }),
  ) as Record<ProcessName, { percent: number; msPerPayment: number }>;
  const delta = (name: ServiceName, key: 'sqliteCommits' | 'sqliteMs' | 'batches' | 'inputs') =>
    after.stats[name][key] - before.stats[name][key];
  const commits = Object.fromEntries(
    serviceNames.map((name) => [name, perPayment(delta(name, 'sqliteCommits'))]),
  ) as Record<ServiceName, number>;
  const totalCommits = serviceNames.reduce((sum, name) => sum + delta(name, 'sqliteCommits'), 0);
  const inputsPerBatch = Object.fromEntries(
    serviceNames.map((name) => {
      const batches = Math.max(1, delta(name, 'batches'));
      return [name, Math.round((delta(name, 'inputs') / batches) * 10) / 10];
    }),
  ) as Record<ServiceName, number>;
  const gcOf = (snapshot: Snapshot, name: NodeProcessName): Snapshot['loaderGc'] => {
    if (name === 'loader') return snapshot.loaderGc;
    const stats = snapshot.stats[name];
    return { count: stats.gcCount, ms: stats.gcMs, allocated: stats.heapAllocatedBytes };
  };
  const gc = Object.fromEntries(
    nodeProcessNames.map((name) => {
      const [from, to] = [gcOf(before, name), gcOf(after, name)];
      return [
        name,
        {
          pauses: to.count - from.count,
          ms: Math.round((to.ms - from.ms) * 10) / 10,
          allocatedPerPayment: Math.round((to.allocated - from.allocated) / payments),
        },
      ];
    }),
  ) as LevelResult['gc'];
  const cpuTotal = processNames.reduce(
    (sum, name) => sum + after.cpuMs[name] - before.cpuMs[name],
    0,
  );
  return {
    ...spec,
    name: levelName(spec),
    window,
    committedPerSecond: Math.round(window.committed / window.seconds),
    cpu,
    cpuMsPerPayment: perPayment(cpuTotal),
    sqliteCommitsPerPayment: { ...commits, total: perPayment(totalCommits) },
    inputsPerBatch,
    commitMs: Object.fromEntries(
      serviceNames.map((name) => {
        const ms = delta(name, 'sqliteMs') / Math.max(1, delta(name, 'sqliteCommits'));
        return [name, Math.round(ms * 100) / 100];
      }),
    ) as Record<ServiceName, number>,
    natsPerPayment: {
      inMsgs: perPayment(after.nats.inMsgs - before.nats.inMsgs),
      outMsgs: perPayment(after.nats.outMsgs - before.nats.outMsgs),
      bytes: Math.round(
        (after.nats.inBytes - before.nats.inBytes + after.nats.outBytes - before.nats.outBytes) /
          payments,
      ),
    },
    gc,
    ...(window.samples === undefined ? {} : { tail: tailOf(window, after) }),
  };
}

/**
 * The GC pauses and slow commits of every JavaScript process while an open loop's counted
 * payments ran, and how many of its slowest payments (at or above p99) overlapped each.
 */
function tailOf(window: WindowResult, after: Snapshot): NonNullable<LevelResult['tail']> {
  const samples = window.samples ?? [];
  const start = window.startedAtEpochMs;
  const endMs = samples.reduce((end, [atMs, latencyMs]) => Math.max(end, atMs + latencyMs), 0);
  const stalls = (name: NodeProcessName): (readonly [number, number, WindowPause['kind']])[] =>
    name === 'loader'
      ? gcCounters.recent
      : [
          ...after.stats[name].gcRecent,
          ...after.stats[name].slowCommits.map(([at, ms]) => [at, ms, 'commit'] as const),
        ];
  const pauses = nodeProcessNames
    .flatMap((process) =>
      stalls(process).map(([at, ms, kind]) => ({ process, atMs: at - start, ms, kind })),
    )
    .filter((pause) => pause.atMs + pause.ms >= 0 && pause.atMs <= endMs)
    .map((pause) => ({ ...pause, atMs: Math.round(pause.atMs * 10) / 10 }))
    .sort((a, b) => a.atMs - b.atMs);
  const { p99Ms } = window.latency;
  const gc = pauseOverlaps(
    samples,
    p99Ms,
    pauses.filter((pause) => pause.kind !== 'commit'),
  );
  const commits = pauseOverlaps(
    samples,
    p99Ms,
    pauses.filter((pause) => pause.kind === 'commit'),
  );
  const either = pauseOverlaps(samples, p99Ms, pauses);
  return {
    pauses,
    slow: either.slow,
    slowDuringPause: gc.slowDuringPause,
    slowDuringCommit: commits.slowDuringPause,
    slowDuringEither: either.slowDuringPause,
    all: either.all,
    allDuringPause: gc.allDuringPause,
    allDuringCommit: commits.allDuringPause,
    allDuringEither: either.allDuringPause,
  };
}

/**
 * How many payments ([scheduled at, latency] in ms) were in flight while some pause ran, among
 * those at or above `p99Ms` and among all.
 */
export function pauseOverlaps(
  samples: readonly (readonly [number, number])[],
  p99Ms: number,
  pauses: readonly { readonly atMs: number; readonly ms: number }[],
): { slow: number; slowDuringPause: number; all: number; allDuringPause: number } {
  const duringPause = ([atMs, latencyMs]: readonly [number, number]): boolean =>
    pauses.some((pause) => pause.atMs < atMs + latencyMs && pause.atMs + pause.ms > atMs);
  const slowest = samples.filter(([, latencyMs]) => latencyMs >= p99Ms);
  return {
    slow: slowest.length,
    slowDuringPause: slowest.filter(duringPause).length,
    all: samples.length,
    allDuringPause: samples.filter(duringPause).length,
  };
}
