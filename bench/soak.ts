/**
 * Memory over a long run (`npm run bench -- throughput --soak <seconds> [--soak-rate <n>]`): the
 * stack under an open loop at a fixed offered rate, sampling every few seconds each service's
 * resident memory (/proc), its heap and the transactions it holds in memory (its own counters),
 * and the size of each SQLite file with its WAL. Memory is flat when the last minute looks like
 * the first minute after the warm-up; the journal grows by design until the key retention period
 * (24 h by default) lets the purge remove completed payments (docs/idempotency.md), and each
 * participant's barrier until its barrier retention (7 days by default) lets it forget finished
 * transactions (docs/protocol.md). `--soak-retention-ms` sets both, so a short soak sees both
 * purges run.
 */
import { statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { ServiceName, Stack } from '../ops/stack.ts';
import { openLoop, type WindowResult } from './load.ts';
import { rssBytes, serviceStats } from './probes.ts';
import { progress } from './report.ts';
import { connectNats } from '../common/nats.ts';
import { machineInfo, type MachineInfo } from './machine.ts';
import { BenchRun, pidOf, serviceNames, startBenchStack } from './throughput.ts';

export interface SoakSample {
  readonly atS: number;
  readonly rssMb: Readonly<Record<ServiceName, number>>;
  readonly heapMb: Readonly<Record<ServiceName, number>>;
  readonly inMemory: Readonly<Record<ServiceName, number>>;
  readonly databaseMb: Readonly<Record<ServiceName, number>>;
}

export interface SoakResult {
  readonly machine: MachineInfo;
  readonly seconds: number;
  readonly ratePerSecond: number;
  readonly window: WindowResult;
  readonly samples: readonly SoakSample[];
  /** When a sample could not be taken (a service did not answer in time), in s. */
  readonly missedSamples: readonly number[];
  /** Per service: mean RSS over the first and the last minute of the window, in MB. */
  readonly rssFirstMinuteMb: Readonly<Record<ServiceName, number>>;
  readonly rssLastMinuteMb: Readonly<Record<ServiceName, number>>;
}

const sampleEveryMs = 5_000;
const megabyte = 1_048_576;

function fileMb(file: string): number {
  let bytes = 0;
  for (const suffix of ['', '-wal']) {
    try {
      bytes += statSync(`${file}${suffix}`).size;
    } catch {
      // A WAL that does not exist yet is empty.
    }
  }
  return Math.round((bytes / megabyte) * 10) / 10;
}

async function sample(
  stack: Stack,
  startedAt: number,
  probe: Awaited<ReturnType<typeof connectNats>>,
): Promise<SoakSample> {
  const stats = await Promise.all(serviceNames.map((name) => serviceStats(probe, name)));
  const per = (value: (name: ServiceName, index: number) => number): Record<ServiceName, number> =>
    Object.fromEntries(serviceNames.map((name, index) => [name, value(name, index)])) as Record<
      ServiceName,
      number
    >;
  const mb = (bytes: number): number => Math.round((bytes / megabyte) * 10) / 10;
  return {
    atS: Math.round((performance.now() - startedAt) / 1_000),
    rssMb: per((name) => mb(rssBytes(pidOf(stack, name)))),
    heapMb: per((_, index) => mb(stats[index]?.heapUsedBytes ?? Number.NaN)),
    inMemory: per((_, index) => stats[index]?.inMemory ?? Number.NaN),
    databaseMb: per((name) => fileMb(stack.dbFile(name))),
  };
}

function meanRss(
  samples: readonly SoakSample[],
  fromS: number,
  toS: number,
): Record<ServiceName, number> {
  const inRange = samples.filter((s) => s.atS >= fromS && s.atS <= toS);
  return Object.fromEntries(
    serviceNames.map((name) => {
      const sum = inRange.reduce((total, s) => total + s.rssMb[name], 0);
      return [name, Math.round((sum / Math.max(1, inRange.length)) * 10) / 10];
    }),
  ) as Record<ServiceName, number>;
}

export async function runSoak(
  bench: BenchRun,
  seconds: number,
  ratePerSecond: number,
): Promise<SoakResult> {
  const machine = machineInfo();
  const warmupMs = 10_000;
  progress(
    `soak: making ${Math.ceil(ratePerSecond * (seconds + 15)).toLocaleString('en-US')} orders`,
  );
  await bench.provide('all-commit', Math.ceil(ratePerSecond * (seconds + 15)));
  const probe = await connectNats({ servers: bench.stack.natsUrls, name: 'bench-soak-probe' });
  const samples: SoakSample[] = [];
  const missedSamples: number[] = [];
  const startedAt = performance.now();
  const timer = setInterval(() => {
    void sample(bench.stack, startedAt, probe).then(
      (s) => {
        samples.push(s);
        if (s.atS % 30 < sampleEveryMs / 1_000) {
          const rss = serviceNames.map((name) => `${name} ${s.rssMb[name]} MB`).join(', ');
          progress(`soak ${s.atS} s: RSS ${rss}; in flight ${s.inMemory.coordinator}`);
        }
      },
      // A service too busy to answer within the timeout is a finding, not a reason to stop.
      (error: unknown) => {
        const atS = Math.round((performance.now() - startedAt) / 1_000);
        progress(`soak ${atS} s: no sample: ${String(error)}`);
        missedSamples.push(atS);
      },
    );
  }, sampleEveryMs);
  try {
    progress(
      `soak: open loop at ${ratePerSecond}/s for ${seconds} s after a ${warmupMs / 1_000} s warm-up`,
    );
    const window = await openLoop({
      client: bench.client,
      nextPayment: bench.paymentSource('all-commit'),
      warmupMs,
      measureMs: seconds * 1_000,
      ratePerSecond,
      onWindow: () => Promise.resolve(),
    });
    const warmS = warmupMs / 1_000;
    const endS = warmS + seconds;
    return {
      machine,
      seconds,
      ratePerSecond,
      window,
      samples,
      missedSamples,
      rssFirstMinuteMb: meanRss(samples, warmS, warmS + 60),
      rssLastMinuteMb: meanRss(samples, endS - 60, endS),
    };
  } finally {
    clearInterval(timer);
    await probe.drain();
  }
}

/** Starts the stack, soaks it, checks every invariant, stops it. */
export async function soakBenchmark(
  seconds: number,
  ratePerSecond: number,
  retentionMs: number | undefined,
): Promise<
  SoakResult & { readonly retentionMs: number | null; readonly violations: readonly string[] }
> {
  const barrier = retentionMs === undefined ? [] : ['--barrier-retention-ms', String(retentionMs)];
  // Without the allocation counter: it keeps some C memory until full collections (common/stats.ts),
  // and memory is what a soak measures.
  const stack = await startBenchStack(
    undefined,
    {
      coordinator: retentionMs === undefined ? [] : ['--key-retention-ms', String(retentionMs)],
      bank: barrier,
      vendor: barrier,
      customer: barrier,
    },
    false,
  );
  const bench = await BenchRun.open(stack);
  let violations: readonly string[] | undefined;
  try {
    const result = await runSoak(bench, seconds, ratePerSecond);
    violations = await bench.check(retentionMs);
    return { ...result, retentionMs: retentionMs ?? null, violations };
  } finally {
    await bench.close();
    // A failed run keeps its directory: the services' logs are there.
    const passed = violations?.length === 0;
    await stack.stop({ remove: passed });
    if (!passed) progress(`logs kept in ${stack.root}`);
  }
}
