/**
 * `npm run bench -- [<benchmark>] [--json] [options]`: benchmarks that print figures. Speed targets
 * are checked here, never in timed tests. The benchmarks and their flags are in `usage` below.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCommandArgs } from '../common/cli.ts';
import { ConfigError } from '../common/errors.ts';
import { projectRoot } from '../ops/service-process.ts';
import { runBreakdown } from './breakdown.ts';
import { renderChart } from './chart.ts';
import { runDeadlines } from './deadlines.ts';
import { runFailover } from './failover.ts';
import { machineInfo } from './machine.ts';
import { formatHeapProfile, formatProfile } from './profile.ts';
import { saveResult } from './report.ts';
import { soakBenchmark, type SoakResult } from './soak.ts';
import { renderSoakChart } from './soak-chart.ts';
import {
  runThroughput,
  selectLevels,
  type LevelResult,
  type ThroughputResult,
} from './throughput.ts';
import { renderTimeline } from './timeline-chart.ts';
import { chartInput, formatResult } from './throughput-report.ts';
import { writeCompareChart } from './compare-chart.ts';

const benchmarks = [
  'throughput',
  'failover',
  'breakdown',
  'chart',
  'soak-chart',
  'deadlines',
] as const;

const usage = `usage: npm run bench -- [<benchmark>] [--json] [flags]

  throughput [--quick] [--only <text>[,<text>...]] [--profile]   (the default)
      payments per second and latency at several loads against the messaging and storage
      bounds measured in the same run, with a chart (docs/performance.md)
  throughput --soak <s> [--soak-rate <n>] [--soak-retention-ms <ms>]
      one offered rate for a long time, sampling the services' memory and database sizes,
      with a chart of them over time
  soak-chart <soak.json> <out.svg>
      the chart of an earlier soak's result
  breakdown [--payments <n>]
      one client's payment, stage by stage, from message traces
  chart <after.json> <before.json> <out.svg>
      one chart of two throughput results
  failover [--kills <n>] [--clients <n>] [--lease-ttl-ms <ms>] [--lease nats|journal]
      takeover time after kill -9 of the active coordinator, median and p99 (docs/failover.md)
  deadlines
      the coordinator machine's timer with 100 to 100,000 payments in flight, in-process`;

function integer(value: string | undefined, name: string, min: number, max: number): number {
  const parsed = /^\d+$/.test(value ?? '') ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new ConfigError(`--${name} must be an integer from ${min} to ${max}`);
  }
  return parsed;
}

type Values = Record<string, string | boolean | undefined>;

async function failover(values: Values): Promise<void> {
  const kills = integer(values['kills'] as string, 'kills', 1, 1_000);
  const clients = integer(values['clients'] as string, 'clients', 1, 256);
  const leaseTtlMs = integer(values['lease-ttl-ms'] as string, 'lease-ttl-ms', 100, 60_000);
  const lease = values['lease'];
  if (lease !== 'nats' && lease !== 'journal')
    throw new ConfigError('--lease must be nats or journal');
  process.stderr.write(
    `failover: ${kills} kills of the active coordinator, ${clients} clients, lease in ${lease}\n`,
  );
  const result = await runFailover({ kills, clients, leaseTtlMs, lease });
  const file = saveResult('failover', result);
  if (values['json'] === true) {
    console.log(JSON.stringify(result));
  } else {
    console.log(
      `takeover after kill -9 (ms): median ${result.medianMs}, p99 ${result.p99Ms}, max ${result.maxMs}`,
    );
    console.log(`  each: ${result.takeoverMs.join(', ')}`);
    console.log(
      `payments during the run: ${result.payments.committed} committed, ${result.payments.aborted} aborted`,
    );
    console.log(`invariant violations: ${result.violations.length}`);
    for (const violation of result.violations) console.log(`  ${violation}`);
    console.log(`result: ${file}`);
  }
  if (result.violations.length > 0) process.exitCode = 1;
}

async function throughput(values: Values): Promise<void> {
  const only = typeof values['only'] === 'string' ? values['only'].split(',') : undefined;
  selectLevels(only); // a bad --only is a usage error before anything is made or started
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const profileDirectory =
    values['profile'] === true ? join(projectRoot, 'bench-results', `profile-${stamp}`) : undefined;
  if (profileDirectory !== undefined) mkdirSync(profileDirectory, { recursive: true });
  const quick = values['quick'] === true;
  process.stderr.write(
    `throughput${quick ? ' (quick)' : ''}: storage bound, then the levels, echo beside them\n`,
  );
  const result = await runThroughput({ quick, profileDirectory, only });
  const file = saveResult('throughput', result);
  const chart = file.replace(/\.json$/, '.svg');
  writeFileSync(chart, renderChart(chartInput(result)));
  const timeline = writeTimeline(result, file.replace(/\.json$/, '-open-loop.svg'));
  if (values['json'] === true) {
    console.log(JSON.stringify(result));
  } else {
    for (const line of formatResult(result)) console.log(line);
    for (const summary of result.profiles)
      for (const line of formatProfile(summary)) console.log(line);
    for (const summary of result.allocations)
      for (const line of formatHeapProfile(summary)) console.log(line);
    console.log(`result: ${file}`);
    console.log(`chart: ${chart}`);
    if (timeline !== undefined) console.log(`open loop over time: ${timeline}`);
  }
  if (result.violations.length > 0) process.exitCode = 1;
}

/** The fastest open-loop level over time (bench/timeline-chart.ts); undefined without one. */
function writeTimeline(result: ThroughputResult, file: string): string | undefined {
  const open = result.levels.filter((level) => level.loop === 'open');
  const fastest = open.reduce<LevelResult | undefined>(
    (best, level) => (best === undefined || level.load > best.load ? level : best),
    undefined,
  );
  if (fastest === undefined) return undefined;
  const { machine } = result;
  const subtitle =
    `commit ${machine.commit}, ${machine.cores} cores, one nats-server, every vote and decision ` +
    `fsynced; ${fastest.window.samples?.length ?? 0} payments in ${fastest.window.seconds} s`;
  const svg = renderTimeline({ level: fastest, subtitle, targetP99Ms: 10 });
  if (svg === undefined) return undefined;
  writeFileSync(file, svg);
  return file;
}

async function soak(values: Values): Promise<void> {
  const seconds = integer(values['soak'] as string, 'soak', 10, 86_400);
  const rate = integer(values['soak-rate'] as string, 'soak-rate', 1, 100_000);
  process.stderr.write(`soak: ${rate} payments/s offered for ${seconds} s\n`);
  const retention = values['soak-retention-ms'];
  const retentionMs =
    typeof retention === 'string'
      ? integer(retention, 'soak-retention-ms', 1_000, 365 * 24 * 3_600_000)
      : undefined;
  const result = await soakBenchmark(seconds, rate, retentionMs);
  const file = saveResult('soak', result);
  const chart = file.replace(/\.json$/, '.svg');
  writeFileSync(chart, renderSoakChart(result, soakSubtitle(result)));
  if (values['json'] === true) {
    console.log(JSON.stringify(result));
  } else {
    const { latency } = result.window;
    console.log(
      `soak: ${result.ratePerSecond}/s offered for ${result.seconds} s: ${result.window.committed} committed, ` +
        `${result.window.aborted} aborted, ${result.window.failed} failed; p50 ${latency.p50Ms} ms, ` +
        `p99 ${latency.p99Ms} ms, max ${latency.maxMs} ms`,
    );
    console.log('RSS (MB), mean of the first minute after warm-up → mean of the last minute:');
    for (const [name, first] of Object.entries(result.rssFirstMinuteMb)) {
      const last = result.rssLastMinuteMb[name as keyof typeof result.rssLastMinuteMb];
      console.log(`  ${name.padEnd(12)} ${first} → ${last}`);
    }
    const lastSample = result.samples.at(-1);
    if (lastSample) {
      console.log(`in memory at the end: ${JSON.stringify(lastSample.inMemory)}`);
      console.log(`database files at the end (MB): ${JSON.stringify(lastSample.databaseMb)}`);
    }
    console.log(`invariant violations: ${result.violations.length}`);
    console.log(`result: ${file}`);
    console.log(`chart: ${chart}`);
  }
  if (result.violations.length > 0) process.exitCode = 1;
}

function soakSubtitle(result: SoakResult): string {
  const { machine } = result;
  return (
    `commit ${machine.commit}, ${machine.cores} cores, one nats-server, every vote and decision ` +
    `fsynced; sampled every 5 s`
  );
}

function soakChart(files: readonly string[]): void {
  const [input, out] = files;
  if (input === undefined || out === undefined) {
    throw new ConfigError('usage: soak-chart <soak.json> <out.svg>');
  }
  const result = JSON.parse(readFileSync(input, 'utf8')) as SoakResult;
  writeFileSync(out, renderSoakChart(result, soakSubtitle(result)));
  console.log(`chart: ${out}`);
}

async function breakdown(values: Values): Promise<void> {
  const payments = integer(values['payments'] as string, 'payments', 100, 1_000_000);
  process.stderr.write(`breakdown: ${payments} payments, one at a time, with message traces\n`);
  const result = await runBreakdown(payments);
  const file = saveResult('breakdown', result);
  if (values['json'] === true) {
    console.log(JSON.stringify(result));
  } else {
    console.log(`one client, ${result.payments} payments (ms; traces on, so about 0.6 ms slower):`);
    console.log(`${'stage'.padEnd(58)}    p50    p90`);
    for (const { stage, p50Ms, p90Ms } of result.stages) {
      console.log(
        `${stage.padEnd(58)} ${p50Ms.toFixed(3).padStart(6)} ${p90Ms.toFixed(3).padStart(6)}`,
      );
    }
    console.log(`result: ${file}`);
  }
}

function deadlines(values: Values): void {
  const levels = runDeadlines([100, 1_000, 10_000, 100_000]);
  const file = saveResult('deadlines', { machine: machineInfo(), levels });
  if (values['json'] === true) {
    console.log(JSON.stringify(levels));
    return;
  }
  console.log('coordinator machine, payments in flight waiting for acknowledgements (µs):');
  console.log('  in flight   timer firing   nextDeadline   sends per tick');
  for (const level of levels) {
    const { inFlight, firingUs, nextDeadlineUs, sendsPerTick } = level;
    console.log(
      `  ${String(inFlight).padStart(9)} ${firingUs.toFixed(2).padStart(14)} ` +
        `${nextDeadlineUs.toFixed(2).padStart(14)} ${sendsPerTick.toFixed(2).padStart(16)}`,
    );
  }
  console.log(`result: ${file}`);
}

function chart(files: readonly string[]): void {
  const [after, before, out] = files;
  if (after === undefined || before === undefined || out === undefined) {
    throw new ConfigError('usage: chart <after.json> <before.json> <out.svg>');
  }
  writeCompareChart(after, before, out);
  console.log(`chart: ${out}`);
}

async function main(): Promise<void> {
  const { values, positionals } = parseBenchArgs();
  if (values.help) {
    console.log(usage);
    return;
  }
  const [benchmark = 'throughput'] = positionals;
  if (!(benchmarks as readonly string[]).includes(benchmark)) {
    throw new ConfigError(`unknown benchmark ${benchmark}; known: ${benchmarks.join(', ')}`);
  }
  if (benchmark === 'failover') await failover(values);
  else if (benchmark === 'breakdown') await breakdown(values);
  else if (benchmark === 'chart') chart(positionals.slice(1));
  else if (benchmark === 'soak-chart') soakChart(positionals.slice(1));
  else if (benchmark === 'deadlines') deadlines(values);
  else if (values.soak !== undefined) await soak(values);
  else await throughput(values);
}

/** The command line; a ConfigError with the usage when a flag is unknown or lacks its value. */
function parseBenchArgs() {
  try {
    return parseCommandArgs({
      options: {
        json: { type: 'boolean', default: false },
        quick: { type: 'boolean', default: false },
        profile: { type: 'boolean', default: false },
        only: { type: 'string' },
        soak: { type: 'string' },
        'soak-rate': { type: 'string', default: '2000' },
        'soak-retention-ms': { type: 'string' },
        kills: { type: 'string', default: '20' },
        payments: { type: 'string', default: '3000' },
        clients: { type: 'string', default: '4' },
        'lease-ttl-ms': { type: 'string', default: '600' },
        lease: { type: 'string', default: 'nats' },
        help: { type: 'boolean', default: false },
      },
      allowPositionals: true,
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(`${error.message}\n${usage}`);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? `${error.name}: ${error.message}` : error);
  process.exit(error instanceof ConfigError ? 2 : 1);
});
