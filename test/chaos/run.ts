/**
 * One chaos run, start to finish (issue 7):
 *
 * 1. Start the stack (launcher.ts) in the run's directory and seed the world (world.ts).
 * 2. Run the clients (workload.ts) and the nemesis (nemesis.ts) for the run's duration, writing
 *    every operation and fault to history.jsonl.
 * 3. Heal: end every fault, start whatever is down, let the clients finish what is in flight.
 * 4. Read every key back (resolving every unknown outcome), and wait, within the liveness bound,
 *    until every payment is decided and every participant informed. The time this takes is the
 *    run's "decided after heal".
 * 5. kill -9 every service and start them again, then read every key back a second time:
 *    committed must still be committed everywhere after a restart.
 * 6. Stop everything and check (checker.ts); write summary.json, violations.txt and report.html.
 *
 * Every wait is bounded; a watchdog ends a run that overruns its whole bound.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { moneyBaseline, waitUntilSettled } from '../../ops/checker.ts';
import { checkRun, formatViolations, type HistoryIndex, type Violation } from './checker.ts';
import { HistoryWriter } from './history.ts';
import { ChaosStack, coordinatorInstances, processNames, startWithRetry } from './launcher.ts';
import { mutationVariable } from './mutations.ts';
import { Nemesis } from './nemesis.ts';
import type { ChaosOptions } from './options.ts';
import { Rng } from './random.ts';
import { Timeline, writeReport, type ChaosSummary } from './report.ts';
import { Workload, type KeyRef } from './workload.ts';
import { OrderPool, planWorld, seedChaosWorld, type OrderBook } from './world.ts';
import { participantNames } from '../../common/protocol.ts';

export class ChaosRunError extends Error {
  override readonly name = 'ChaosRunError';
}

export interface ChaosRunResult {
  readonly summary: ChaosSummary;
  readonly violations: readonly Violation[];
  readonly violationsText: string;
  readonly runDir: string;
}

export interface RunIo {
  /** A phase starts ("healing", "checking"…). */
  readonly phase: (text: string) => void;
  /** Called about once a second while the load runs. */
  readonly tick: (status: string) => void;
  readonly signal?: AbortSignal;
}

const readConcurrency = 16;
const readRetryMs = 200;
const restartBoundMs = 60_000;

export async function runChaos(options: ChaosOptions, io: RunIo): Promise<ChaosRunResult> {
  const startedAt = Date.now();
  const runDir = options.dir ?? mkdtempSync(join(tmpdir(), 'continuum-chaos-'));
  mkdirSync(runDir, { recursive: true });
  const rng = new Rng(options.seed);
  const history = new HistoryWriter(join(runDir, 'history.jsonl'));
  const timeline = new Timeline();
  history.onEvent((event) => timeline.observe(event));
  const boundMs = (options.durationS + 2 * options.settleTimeoutS + 240) * 1_000;
  let stack: ChaosStack | undefined;
  let workload: Workload | undefined;
  const watchdog = new AbortController();
  const timer = setTimeout(() => watchdog.abort(), boundMs);
  const body = async (): Promise<ChaosRunResult> => {
    io.phase(`starting the stack in ${runDir}`);
    const plan = planWorld(options.durationS);
    let orders: OrderBook | undefined;
    const env: Record<string, string> =
      options.mutations.length > 0 ? { [mutationVariable]: options.mutations.join(',') } : {};
    stack = await ChaosStack.start({
      root: join(runDir, 'stack'),
      rng: rng.fork('stack'),
      env,
      seed: (dbs) => (orders = seedChaosWorld(dbs, plan)),
      ...(options.barrierRetentionMs === undefined
        ? {}
        : { participantFlags: ['--barrier-retention-ms', String(options.barrierRetentionMs)] }),
      ...(options.keyRetentionMs === undefined
        ? {}
        : { coordinatorFlags: ['--key-retention-ms', String(options.keyRetentionMs)] }),
      ...(options.lease === undefined ? {} : { lease: options.lease }),
    });
    if (orders === undefined) throw new ChaosRunError('the world was not seeded');
    const baseline = moneyBaseline(stack.files.bank);
    workload = await Workload.connect({
      clients: options.clients,
      natsUrls: stack.natsUrls,
      history,
      rng: rng.fork('workload'),
      pool: new OrderPool(orders),
      seed: options.seed,
    });
    const nemesis = new Nemesis({
      stack,
      history,
      rng: rng.fork('nemesis'),
      kinds: options.faults,
      workload,
      crashPoints: options.crashPoints,
      lanes: options.concurrentFaults,
    });
    await load(options, io, { workload, nemesis, history, timeline });
    const healed = await heal(io, stack, nemesis, workload, history);
    const settled = await settle(options, io, stack, workload.keys, history, healed.endedAt);
    await restartEverything(io, stack, history);
    await readBack(stack, workload.keys, history, 2, Date.now() + options.settleTimeoutS * 1_000);
    const unexpectedExits = nemesis.unexpectedExits.map((exit) => exit.name);
    const faultCounts = Object.fromEntries(nemesis.counts);
    const endS = history.now() / 1e9;
    await workload.close();
    workload = undefined;
    io.phase('stopping the stack');
    await stack.stop();
    stack = undefined;
    await history.close();
    io.phase('checking the history against the databases');
    const check = await checkRun({
      historyFile: history.file,
      files: filesOf(runDir),
      baseline,
      settledInTime: settled.inTime,
      boundS: options.settleTimeoutS,
      keyRetentionMs: options.keyRetentionMs,
    });
    const violationsText = await formatViolations(check.violations, check.history, history.file);
    const summary = summarize({
      options,
      runDir,
      history: history.file,
      timeline,
      check,
      faultCounts,
      unexpectedExits,
      healMs: healed.endedAt - healed.startedAt,
      healToDecidedMs: settled.inTime ? settled.afterHealMs : null,
      startedAt,
      endS,
    });
    writeFileSync(join(runDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    writeFileSync(join(runDir, 'violations.txt'), `${violationsText}\n`);
    writeReport(summary.reportFile, summary, timeline, endS, violationsText);
    return { summary, violations: check.violations, violationsText, runDir };
  };
  // Every step is bounded on its own; the watchdog and an interrupt end the run even so.
  const ended = new Promise<never>((_resolve, reject) => {
    const stop = (why: string) => () => reject(new ChaosRunError(why));
    watchdog.signal.addEventListener('abort', stop(`the run overran its bound of ${boundMs} ms`));
    io.signal?.addEventListener('abort', stop('interrupted'));
  });
  const running = body();
  running.catch(() => undefined);
  try {
    return await Promise.race([running, ended]);
  } finally {
    clearTimeout(timer);
    await workload?.close();
    await stack?.stop().catch(() => undefined);
    await history.close().catch(() => undefined);
  }
}

function filesOf(runDir: string) {
  const root = join(runDir, 'stack');
  const file = (name: string): string => join(root, name, `${name}.sqlite`);
  return {
    coordinator: file('coordinator'),
    bank: file('bank'),
    vendor: file('vendor'),
    customer: file('customer'),
  };
}

async function load(
  options: ChaosOptions,
  io: RunIo,
  parts: { workload: Workload; nemesis: Nemesis; history: HistoryWriter; timeline: Timeline },
): Promise<void> {
  const { workload, nemesis, history, timeline } = parts;
  io.phase(
    `load for ${options.durationS} s: ${options.clients} clients, ` +
      `${options.faults.length} fault kinds, seed ${options.seed}`,
  );
  workload.start();
  nemesis.start();
  const endAt = Date.now() + options.durationS * 1_000;
  while (Date.now() < endAt) {
    if (io.signal?.aborted === true) throw new ChaosRunError('interrupted');
    await sleep(Math.min(1_000, Math.max(0, endAt - Date.now())));
    const { counts } = timeline;
    const active = nemesis.active.map((fault) => `${fault.kind} ${fault.target}`).join(', ');
    const elapsed = Math.round(options.durationS - (endAt - Date.now()) / 1_000);
    io.tick(
      `${String(elapsed).padStart(5)}/${options.durationS} s  ` +
        `${counts.committed} committed  ${counts.aborted} aborted  ${counts.unknown} unknown  ` +
        `${timeline.recentRate(history.now()).toFixed(0)}/s  faults ${nemesis.total}` +
        (active === '' ? '' : `  now: ${active}`),
    );
  }
}

/** Ends every fault, starts whatever is down, lets in-flight payments finish; returns when. */
async function heal(
  io: RunIo,
  stack: ChaosStack,
  nemesis: Nemesis,
  workload: Workload,
  history: HistoryWriter,
): Promise<{ startedAt: number; endedAt: number }> {
  const startedAt = Date.now();
  io.phase('healing: ending every fault, starting what is down');
  history.append('invoke', 'heal', 'nemesis', { phase: 'start' });
  await Promise.all([nemesis.stop(), workload.stop()]);
  const failed = await stack.repair(restartBoundMs);
  history.append('info', 'heal', 'nemesis', { phase: 'stop', failed });
  if (failed.length > 0) throw new ChaosRunError(`could not bring back ${failed.join(', ')}`);
  return { startedAt, endedAt: Date.now() };
}

/**
 * Waits, within the liveness bound, until every payment is decided and every participant informed
 * (the time this takes is "decided after heal"); then reads every key back, resolving every
 * outcome a client did not learn. A key still undecided then is retried for a few more seconds
 * and, if still undecided, recorded as unresolved.
 */
async function settle(
  options: ChaosOptions,
  io: RunIo,
  stack: ChaosStack,
  keys: readonly KeyRef[],
  history: HistoryWriter,
  healedAt: number,
): Promise<{ inTime: boolean; afterHealMs: number }> {
  const deadline = healedAt + options.settleTimeoutS * 1_000;
  io.phase(`waiting until every payment is decided (bound ${options.settleTimeoutS} s)`);
  const quiet = await waitUntilSettled(stack.files, Math.max(0, deadline - Date.now()));
  const afterHealMs = Date.now() - healedAt;
  if (quiet) history.append('info', 'settled', 'nemesis', { afterHealMs });
  io.phase(`reading back ${keys.length} keys by key, resolving every unknown outcome`);
  const readsUntil = Math.max(deadline, Date.now() + 5_000);
  const unresolved = await readBack(stack, keys, history, 1, readsUntil);
  return { inTime: quiet && unresolved === 0, afterHealMs };
}

/** kill -9 every service and start them again: what was committed must still be there. */
async function restartEverything(
  io: RunIo,
  stack: ChaosStack,
  history: HistoryWriter,
): Promise<void> {
  io.phase('kill -9 every service and start it again');
  history.append('invoke', 'final-restart', 'nemesis', { target: 'services' });
  await Promise.all(processNames.map((name) => stack.processes[name].kill()));
  const deadline = Date.now() + restartBoundMs;
  const started = await Promise.all(
    participantNames.map((name) => startWithRetry(stack.processes[name], {}, deadline)),
  );
  for (const instance of coordinatorInstances) {
    started.push(await startWithRetry(stack.processes[instance], {}, deadline));
  }
  history.append('info', 'final-restart', 'nemesis', { target: 'services' });
  if (!started.every(Boolean)) throw new ChaosRunError('services did not restart');
  await waitUntilSettled(stack.files, 10_000);
}

/**
 * Asks the coordinator for every key's state until it is decided (or known never to have
 * started), as clients resolving unknown outcomes would. Returns how many stayed unresolved.
 */
async function readBack(
  stack: ChaosStack,
  keys: readonly KeyRef[],
  history: HistoryWriter,
  pass: number,
  deadline: number,
): Promise<number> {
  let next = 0;
  let unresolved = 0;
  const reader = async (): Promise<void> => {
    for (let index = next++; index < keys.length; index = next++) {
      const ref = keys[index] as KeyRef;
      const value = { key: ref.key, client: ref.clientId, pass };
      history.append('invoke', 'read', 'reader', value);
      let last = 'no answer';
      for (;;) {
        try {
          const status = await stack.status(ref.clientId, ref.key);
          if (status.state !== 'preparing') {
            history.append('ok', 'read', 'reader', {
              ...value,
              state: status.state,
              txId: status.txId,
            });
            break;
          }
          last = `preparing ${status.txId ?? ''}`;
        } catch (error) {
          last = error instanceof Error ? error.message : String(error);
        }
        if (Date.now() >= deadline) {
          unresolved += 1;
          history.append('info', 'read', 'reader', value, `unresolved: ${last}`);
          break;
        }
        await sleep(readRetryMs);
      }
    }
  };
  await Promise.all(Array.from({ length: readConcurrency }, reader));
  return unresolved;
}

function summarize(input: {
  options: ChaosOptions;
  runDir: string;
  history: string;
  timeline: Timeline;
  check: Awaited<ReturnType<typeof checkRun>>;
  faultCounts: Record<string, number>;
  unexpectedExits: string[];
  healMs: number;
  healToDecidedMs: number | null;
  startedAt: number;
  endS: number;
}): ChaosSummary {
  const { options, timeline, check } = input;
  const byKind: Record<string, number> = {};
  for (const violation of check.violations)
    byKind[violation.kind] = (byKind[violation.kind] ?? 0) + 1;
  const resolvedAs: Record<string, number> = {};
  for (const entry of check.history.keys.values()) {
    if (entry.unknown.length === 0 || entry.answers.length > 0) continue;
    const state = entry.reads.at(-1)?.state ?? 'unresolved';
    // With a key retention, a key whose payment expired reads as unknown too.
    const never =
      options.keyRetentionMs === undefined ? 'never started' : 'never started or expired';
    const name = state === 'unknown' ? never : state;
    resolvedAs[name] = (resolvedAs[name] ?? 0) + 1;
  }
  return {
    seed: options.seed,
    durationS: options.durationS,
    clients: options.clients,
    faultKinds: options.faults,
    mutations: options.mutations,
    ...(options.barrierRetentionMs === undefined
      ? {}
      : { barrierRetentionMs: options.barrierRetentionMs }),
    ...(options.keyRetentionMs === undefined
      ? {}
      : {
          keyRetention: {
            ms: options.keyRetentionMs,
            purged: purgedByCoordinators(input.runDir),
            keysReused: keysReused(check.history),
          },
        }),
    lease: options.lease ?? 'nats',
    runDir: input.runDir,
    historyFile: input.history,
    reportFile: join(input.runDir, 'report.html'),
    payments: {
      invoked: timeline.counts.invoked,
      keys: check.history.keys.size,
      committed: timeline.counts.committed,
      aborted: timeline.counts.aborted,
      abortedBy: Object.fromEntries(timeline.abortedBy),
      refused: Object.fromEntries(timeline.refusedBy),
      unknown: timeline.counts.unknown,
      unknownResolvedAs: resolvedAs,
    },
    faults: {
      total: Object.values(input.faultCounts).reduce((a, b) => a + b, 0),
      byKind: input.faultCounts,
    },
    unexpectedExits: input.unexpectedExits,
    throughput: timeline.throughput(options.durationS),
    latencyMs: timeline.latencyMs(),
    healMs: input.healMs,
    healToDecidedMs: input.healToDecidedMs,
    settledInTime: input.healToDecidedMs !== null,
    settleBoundS: options.settleTimeoutS,
    violations: {
      total: check.violations.length,
      byKind,
      first: check.violations.slice(0, 20).map(({ kind, message, txId, key }) => ({
        kind,
        message,
        ...(txId === undefined ? {} : { txId }),
        ...(key === undefined ? {} : { key }),
      })),
    },
    elapsedS: Math.round((Date.now() - input.startedAt) / 1_000),
  };
}

/** Payments the coordinators purged, summed over their `keys-purged` log lines. */
function purgedByCoordinators(runDir: string): number {
  let purged = 0;
  for (const instance of coordinatorInstances) {
    const file = join(runDir, 'stack', 'coordinator', `${instance}.log`);
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.includes('"event":"keys-purged"')) continue;
      const count = (JSON.parse(line) as { purged?: unknown }).purged;
      if (typeof count === 'number') purged += count;
    }
  }
  return purged;
}

/** Keys whose answers and final reads named more than one transaction. */
function keysReused(history: HistoryIndex): number {
  let reused = 0;
  for (const entry of history.keys.values()) {
    const txIds = new Set([
      ...entry.answers.map((answer) => answer.txId),
      ...entry.reads.flatMap((read) => read.txId ?? []),
    ]);
    if (txIds.size > 1) reused += 1;
  }
  return reused;
}
