/**
 * The physical bounds of this machine, measured in the same run as the payments:
 *
 * - Messaging: NATS request/replies per second through the same nats-server, answered by an echo
 *   service in four processes (a queue group: as many as the services that answer a payment's
 *   requests, the coordinator and three participants) and driven by this process, the same load
 *   generator the payments use. A payment needs 7 request/replies (docs/protocol.md), so this
 *   rate divided by 7 is the most payments per second the messaging alone would allow. The echo
 *   processes stay up for the whole run and each level runs when the benchmark asks (EchoBench).
 * - Storage: SQLite forced commits per second, a loop of single-row write transactions with
 *   journal_mode=WAL and synchronous=FULL (one fsync each) in a temp file on the same disk.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectNats, type NatsConnection } from '../common/nats.ts';
import { Requester } from '../common/requester.ts';
import { encodeMessage } from '../common/protocol.ts';
import { setPragmas } from '../common/sqlite.ts';
import { heapAllocatedBytes, watchGc } from '../common/stats.ts';
import { ServiceProcess } from '../ops/service-process.ts';
import { echoSubject } from './echo-service.ts';
import { summarize, type LatencySummary } from './load.ts';
import { cpuTimeMs, serviceStats } from './probes.ts';

/** Request/replies one committed payment needs: 1 client, 3 PREPARE, 3 COMMIT. */
export const requestRepliesPerPayment = 7;

/** As many responders as the payment stack has: the coordinator and three participants. */
export const echoProcessCount = 4;

export interface EchoLevel {
  readonly concurrency: number;
  readonly requestRepliesPerSecond: number;
  readonly latency: LatencySummary;
  /** CPU used during the window, in % of one core. */
  readonly cpuPercent: Readonly<Record<string, number>>;
  /**
   * JavaScript heap bytes allocated per request/reply during the window: by the echo processes
   * together (nats.js receiving a message and publishing its answer, nothing else) and by the
   * load generator (nats.js `request()`: publishing, and receiving the answer).
   */
  readonly allocatedPerRequestReply: { readonly responder: number; readonly requester: number };
  /**
   * The payments' level that ran just before this one at the same concurrency; absent when no
   * such level ran and the echo was measured before the levels.
   */
  readonly after?: string;
}

export interface MessagingBound {
  readonly echoProcesses: number;
  readonly payloadBytes: number;
  readonly levels: readonly EchoLevel[];
  /** The best rate over the levels. */
  readonly requestRepliesPerSecond: number;
  /** That rate divided by the request/replies one payment needs. */
  readonly paymentsPerSecond: number;
}

export interface EchoBenchOptions {
  readonly natsUrls: readonly string[];
  /**
   * Processes whose CPU each echo level reports besides its own: nats-server, and the idle
   * payment stack, to show that it leaves the echo the machine.
   */
  readonly pids: Readonly<Record<string, number>>;
  readonly logDirectory: string;
}

/** A body the size of a PREPARE, so the bytes per message match the real traffic. */
function preparedLikePayload(): Uint8Array {
  return encodeMessage({
    v: 1,
    kind: 'prepare',
    txId: '01JBENCHMARKECHOPAYLOAD000',
    payment: {
      payer: 'loader',
      payee: 'acme',
      amountMinor: 100,
      currency: 'EUR',
      orderId: 'load-0-123456',
      lines: [{ sku: 'pen', quantity: 1, unitPriceMinor: 100 }],
    },
    epoch: 1,
  });
}

/**
 * The echo service in four processes and a connection of this process to drive it. They stay up,
 * idle, for the whole run, so that each echo level can run right after the payments' level at the
 * same concurrency: this VM's messaging speed moves by a third within minutes, and a bound
 * measured one to two minutes before the payments made the ratio move with it
 * (docs/performance.md).
 */
export class EchoBench {
  readonly payloadBytes: number;
  readonly #echoes: readonly ServiceProcess[];
  readonly #nats: NatsConnection;
  readonly #requests: Requester;
  readonly #payload: Uint8Array;
  readonly #pids: Readonly<Record<string, number>>;

  private constructor(
    echoes: readonly ServiceProcess[],
    nats: NatsConnection,
    pids: Readonly<Record<string, number>>,
  ) {
    this.#echoes = echoes;
    this.#nats = nats;
    // The client library's request/reply, so that the bound pays what a payment's client pays.
    this.#requests = new Requester(nats);
    this.#payload = preparedLikePayload();
    this.payloadBytes = this.#payload.byteLength;
    const all: Record<string, number> = { ...pids, loader: process.pid };
    for (const echo of echoes) if (echo.pid !== undefined) all[echo.spec.name] = echo.pid;
    this.#pids = all;
  }

  static async start(options: EchoBenchOptions): Promise<EchoBench> {
    const echoes = Array.from(
      { length: echoProcessCount },
      (_, index) =>
        new ServiceProcess({
          name: `echo-${index + 1}`,
          entry: 'bench/echo-service.ts',
          args: ['--nats', options.natsUrls.join(','), '--name', `echo-${index + 1}`],
          logFile: join(options.logDirectory, `echo-${index + 1}.log`),
          env: { CONTINUUM_STATS: '1' },
        }),
    );
    let nats: NatsConnection | undefined;
    try {
      nats = await connectNats({ servers: options.natsUrls, name: 'bench-echo-load' });
      await Promise.all(echoes.map((echo) => echo.start()));
      watchGc();
      return new EchoBench(echoes, nats, options.pids);
    } catch (error) {
      await nats?.drain();
      await Promise.all(echoes.map((echo) => echo.stop()));
      throw error;
    }
  }

  /**
   * Request/replies at `concurrency` in flight for a warm-up and a window. `after` names the
   * payments' level that ran just before at the same concurrency, if one did.
   */
  async level(
    concurrency: number,
    timing: { readonly warmupMs: number; readonly measureMs: number },
    after?: string,
  ): Promise<EchoLevel> {
    const level = await echoLevel(this.#requests, this.#nats, this.#payload, concurrency, {
      pids: this.#pids,
      ...timing,
    });
    return after === undefined ? level : { ...level, after };
  }

  async stop(): Promise<void> {
    await this.#nats.drain();
    await Promise.all(this.#echoes.map((echo) => echo.stop()));
  }
}

/** The bound: the best of the echo levels, and that ÷ the request/replies of one payment. */
export function messagingBound(levels: readonly EchoLevel[], payloadBytes: number): MessagingBound {
  const best = Math.max(0, ...levels.map((level) => level.requestRepliesPerSecond));
  return {
    echoProcesses: echoProcessCount,
    payloadBytes,
    levels,
    requestRepliesPerSecond: Math.round(best),
    paymentsPerSecond: Math.round(best / requestRepliesPerPayment),
  };
}

async function echoLevel(
  requests: Requester,
  nats: NatsConnection,
  payload: Uint8Array,
  concurrency: number,
  options: {
    readonly pids: Readonly<Record<string, number>>;
    readonly warmupMs: number;
    readonly measureMs: number;
  },
): Promise<EchoLevel> {
  const { pids } = options;
  let measuring = false;
  let stopped = false;
  let completed = 0;
  const latenciesMs: number[] = [];
  const worker = async (): Promise<void> => {
    while (!stopped) {
      const startedAt = performance.now();
      await requests.request(echoSubject, payload, 5_000);
      if (measuring) {
        completed += 1;
        latenciesMs.push(performance.now() - startedAt);
      }
    }
  };
  const workers = Promise.all(Array.from({ length: concurrency }, worker));
  await sleep(options.warmupMs);
  const echoNames = Object.keys(pids).filter((name) => name.startsWith('echo-'));
  const echoAllocated = async (): Promise<number> => {
    const stats = await Promise.all(echoNames.map((name) => serviceStats(nats, name)));
    return stats.reduce((sum, entry) => sum + entry.heapAllocatedBytes, 0);
  };
  const responderBefore = await echoAllocated();
  const requesterBefore = heapAllocatedBytes();
  const cpuBefore = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuTimeMs(p)]));
  const startedAt = performance.now();
  measuring = true;
  await sleep(options.measureMs);
  measuring = false;
  const elapsedMs = performance.now() - startedAt;
  const requester = heapAllocatedBytes() - requesterBefore;
  const responder = (await echoAllocated()) - responderBefore;
  const cpuPercent = Object.fromEntries(
    Object.entries(pids).map(([key, pid]) => [
      key,
      Math.round(((cpuTimeMs(pid) - (cpuBefore[key] ?? 0)) / elapsedMs) * 100),
    ]),
  );
  stopped = true;
  await workers;
  return {
    concurrency,
    requestRepliesPerSecond: completed / (elapsedMs / 1_000),
    latency: summarize(latenciesMs),
    cpuPercent,
    allocatedPerRequestReply: {
      responder: Math.round(responder / Math.max(1, completed)),
      requester: Math.round(requester / Math.max(1, completed)),
    },
  };
}

export interface StorageBound {
  readonly forcedCommitsPerSecond: number;
  readonly latency: LatencySummary;
}

/** Single-row write transactions in a loop, each forced to disk; blocks this process meanwhile. */
export function measureForcedCommits(directory: string, durationMs: number): StorageBound {
  const db = new Database(join(directory, 'forced-commits.sqlite'));
  try {
    setPragmas(db);
    db.exec('CREATE TABLE IF NOT EXISTS bench (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO bench (body) VALUES (?)');
    const body = 'x'.repeat(200);
    const commit = db.transaction(() => insert.run(body));
    const latenciesMs: number[] = [];
    const startedAt = performance.now();
    let now = startedAt;
    while (now - startedAt < durationMs) {
      commit();
      const after = performance.now();
      latenciesMs.push(after - now);
      now = after;
    }
    return {
      forcedCommitsPerSecond: Math.round(latenciesMs.length / ((now - startedAt) / 1_000)),
      latency: summarize(latenciesMs),
    };
  } finally {
    db.close();
  }
}
