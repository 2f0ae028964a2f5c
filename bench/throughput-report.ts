/**
 * The throughput benchmark's figures as text, the targets of issue 8 judged against them, and the
 * chart's input. Targets are printed, never asserted: the benchmark reports, it does not fail on
 * speed (STYLE.md).
 */
import { requestRepliesPerPayment } from './bounds.ts';
import type { ChartInput, ChartSeries } from './chart.ts';
import {
  levelName,
  processNames,
  serviceNames,
  type LevelResult,
  type LevelSpec,
  type ThroughputResult,
} from './throughput.ts';

export interface TargetCheck {
  readonly target: string;
  readonly measured: string;
  readonly met: boolean;
}

function find(result: ThroughputResult, spec: LevelSpec): LevelResult | undefined {
  return result.levels.find((level) => level.name === levelName(spec));
}

const thousands = (value: number): string => Math.round(value).toLocaleString('en-US');

/** The closed-loop level that all commits with the most committed payments per second. */
function peakLevel(result: ThroughputResult): LevelResult | undefined {
  const closed = result.levels.filter((l) => l.loop === 'closed' && l.variant === 'all-commit');
  return closed.reduce<LevelResult | undefined>(
    (best, level) => (best && best.committedPerSecond >= level.committedPerSecond ? best : level),
    undefined,
  );
}

const twoDecimals = (value: number): number => Math.round(value * 100) / 100;

/** Peak committed payments per second over the messaging bound (the best echo level ÷ 7). */
export function boundRatio(result: ThroughputResult): number {
  const bound = result.bounds.messaging.paymentsPerSecond;
  const peak = peakLevel(result)?.committedPerSecond ?? 0;
  return bound > 0 ? twoDecimals(peak / bound) : Number.NaN;
}

/**
 * The ratio at each concurrency the echo was measured at: payments/s at that concurrency over the
 * echo's request/replies/s at the same concurrency ÷ 7. Shows that the peak's ratio does not come
 * from giving the payments a depth the bound did not get.
 */
export function ratiosByConcurrency(
  result: ThroughputResult,
): { readonly concurrency: number; readonly ratio: number }[] {
  return result.bounds.messaging.levels.flatMap((echo) => {
    const level = find(result, { loop: 'closed', variant: 'all-commit', load: echo.concurrency });
    if (level === undefined || echo.requestRepliesPerSecond <= 0) return [];
    const bound = echo.requestRepliesPerSecond / requestRepliesPerPayment;
    return [
      { concurrency: echo.concurrency, ratio: twoDecimals(level.committedPerSecond / bound) },
    ];
  });
}

export function checkTargets(result: ThroughputResult): TargetCheck[] {
  const c64 = find(result, { loop: 'closed', variant: 'all-commit', load: 64 });
  const c1 = find(result, { loop: 'closed', variant: 'all-commit', load: 1 });
  const open = find(result, { loop: 'open', variant: 'all-commit', load: 1_000 });
  const ratio = boundRatio(result);
  const peak = peakLevel(result);
  const checks: TargetCheck[] = [];
  if (c64) {
    const rate = c64.committedPerSecond;
    checks.push({
      target: '≥ 2,500 committed/s at c=64',
      measured: `${thousands(rate)}/s`,
      met: rate >= 2_500,
    });
    const p99 = c64.window.latency.p99Ms;
    checks.push({ target: 'p99 ≤ 60 ms at c=64', measured: `${p99} ms`, met: p99 <= 60 });
  }
  if (open) {
    const p99 = open.window.latency.p99Ms;
    checks.push({
      target: 'open loop 1,000/s: p99 ≤ 10 ms',
      measured: `${p99} ms`,
      met: p99 <= 10,
    });
  }
  if (c1) {
    const p50 = c1.window.latency.p50Ms;
    checks.push({ target: 'one client: p50 ≤ 2 ms', measured: `${p50} ms`, met: p50 <= 2 });
  }
  // The bound is the best echo level, so the peak is only its match when every concurrency the
  // echo ran at was run with payments too (not under `--only "c=1 all"`, say).
  if (ratiosByConcurrency(result).length === result.bounds.messaging.levels.length) {
    checks.push({
      target: 'ratio to the messaging bound ≥ 0.6',
      measured:
        `${ratio} (peak ${thousands(peak?.committedPerSecond ?? 0)}/s at ` +
        `c=${peak?.load ?? '?'} ÷ ${thousands(result.bounds.messaging.paymentsPerSecond)}/s)`,
      met: ratio >= 0.6,
    });
  }
  return checks;
}

function pad(text: string | number, width: number): string {
  return String(text).padStart(width);
}

/** Mean write-transaction time: the coordinator's, then the slowest participant's. */
function transactionMs(level: LevelResult): string {
  const { coordinator, bank, vendor, customer } = level.commitMs;
  return `${coordinator.toFixed(2)}/${Math.max(bank, vendor, customer).toFixed(2)}`;
}

/** The stack's unmeasured warm-up before the first level; results from before it had none. */
function stackWarmup(settings: ThroughputResult['settings']): string {
  const ms = settings['stackWarmupMs'];
  if (typeof ms !== 'number') return '';
  return `stack warmed up at concurrency ${String(settings['stackWarmupConcurrency'])} for ${ms / 1_000} s; `;
}

function levelRow(level: LevelResult): string {
  const { latency } = level.window;
  const cpu = processNames.map((name) => pad(level.cpu[name].percent, 6)).join('');
  return [
    level.name.padEnd(27),
    pad(thousands(level.committedPerSecond), 8),
    pad(latency.p50Ms.toFixed(1), 7),
    pad(latency.p95Ms.toFixed(1), 7),
    pad(latency.p99Ms.toFixed(1), 7),
    pad(latency.maxMs.toFixed(0), 6),
    pad(level.cpuMsPerPayment.toFixed(2), 8),
    pad(level.sqliteCommitsPerPayment.total.toFixed(2), 8),
    pad(transactionMs(level), 11),
    pad(level.natsPerPayment.inMsgs.toFixed(1), 7),
    pad(level.natsPerPayment.outMsgs.toFixed(1), 6),
    cpu,
  ].join('');
}

export function formatResult(result: ThroughputResult): string[] {
  const { machine, bounds } = result;
  const messaging = bounds.messaging;
  const storage = bounds.storage;
  const header =
    'level'.padEnd(27) +
    [
      'commit/s',
      'p50',
      'p95',
      'p99',
      'max',
      'cpu/pay',
      'sql/pay',
      'txn ms c/p',
      'in/pay',
      'out',
      ...processNames.map((n) => n.slice(0, 5)),
    ]
      .map((h, i) => pad(h, [8, 7, 7, 7, 6, 8, 8, 11, 7, 6][i] ?? 6))
      .join('');
  return [
    `Continuum throughput: commit ${machine.commit}, ${machine.cores} cores (${machine.cpuModel}), ` +
      `load ${machine.loadAverage1m} at the start, ${result.loadAverageEnd} at the end`,
    `one nats-server node ${machine.natsServer} on loopback; durability on (WAL, synchronous=FULL); ` +
      `${stackWarmup(result.settings)}warm-up ${Number(result.settings['warmupMs']) / 1_000} s, ${Number(result.settings['measureMs']) / 1_000} s per level`,
    '',
    `messaging bound: ${thousands(messaging.requestRepliesPerSecond)} request/replies/s ` +
      `(${messaging.echoProcesses} echo processes, ${messaging.payloadBytes}-byte messages, best of ` +
      `concurrency ${messaging.levels.map((l) => l.concurrency).join(', ')}) = ` +
      `${thousands(messaging.paymentsPerSecond)} payments/s at 7 request/replies each`,
    ...echoPlacement(messaging),
    `storage bound: ${thousands(storage.forcedCommitsPerSecond)} forced commits/s (single-row ` +
      `transactions, WAL, synchronous=FULL; p50 ${storage.latency.p50Ms} ms, p99 ${storage.latency.p99Ms} ms)`,
    '',
    'latency in ms; cpu/pay: CPU ms per payment, all processes; sql/pay: SQLite commits (fsyncs) per',
    'payment, all services; txn ms c/p: mean write transaction (fsync included) at the coordinator /',
    'the slowest participant; in/out: NATS messages per payment at the server; CPU % of one core',
    header,
    ...result.levels.map(levelRow),
    '',
    "garbage collection during the window (pauses/ms in total), and what the open loops' slowest 1 % overlapped:",
    ...result.levels.map(gcRow),
    '',
    'JavaScript heap allocated per payment, in KB (what makes collections come; unlike pauses it',
    'hardly depends on the machine):',
    ...result.levels.map(allocationRow),
    ...natsAllocation(messaging),
    '',
    'targets (issue 8):',
    ...checkTargets(result).map(
      (check) =>
        `  ${check.target.padEnd(38)} ${check.measured.padEnd(38)} ${check.met ? 'met' : 'NOT met'}`,
    ),
    ...byConcurrency(result),
    ...byMessages(result),
    `invariant violations: ${result.violations.length}`,
    ...result.violations.map((violation) => `  ${violation}`),
  ];
}

/**
 * The peak against the echo counted in NATS messages rather than request/replies. The coordinator
 * sends each participant one batch per turn of its event loop, so under load a payment's seven
 * request/replies travel in far fewer than 14 messages each way; the ratio above still divides
 * by 7, the request/replies of the protocol, and this line says what the messages alone allow.
 */
export function messageRatio(
  result: ThroughputResult,
): { inMsgs: number; paymentsPerSecond: number; ratio: number } | undefined {
  const peak = peakLevel(result);
  const echo = result.bounds.messaging.requestRepliesPerSecond;
  const inMsgs = peak?.natsPerPayment.inMsgs ?? 0;
  if (peak === undefined || inMsgs <= 0 || echo <= 0) return undefined;
  // An echo request/reply is two messages into the server: the request and its answer.
  const paymentsPerSecond = Math.round((echo * 2) / inMsgs);
  return {
    inMsgs,
    paymentsPerSecond,
    ratio: twoDecimals(peak.committedPerSecond / paymentsPerSecond),
  };
}

function byMessages(result: ThroughputResult): string[] {
  const byMessage = messageRatio(result);
  if (byMessage === undefined || ratiosByConcurrency(result).length < 2) return [];
  const { inMsgs, paymentsPerSecond, ratio } = byMessage;
  return [
    `  by NATS messages: the peak's payments took ${inMsgs.toFixed(1)} messages each into the ` +
      `server (14 with one message per request/reply), so the echo's messages would carry ` +
      `${thousands(paymentsPerSecond)} payments/s: ratio ${ratio}`,
  ];
}

/** The ratio at each concurrency, payments and echo alike, when there is more than one. */
function byConcurrency(result: ThroughputResult): string[] {
  const ratios = ratiosByConcurrency(result);
  if (ratios.length < 2) return [];
  const each = ratios.map(({ concurrency, ratio }) => `c=${concurrency} ${ratio}`).join(', ');
  return [`  ratio at the same concurrency on both sides: ${each}`];
}

/**
 * When each echo level ran: right after the payments at the same concurrency, or before the levels.
 * Results written before the echo moved beside the levels say neither.
 */
function echoPlacement(messaging: ThroughputResult['bounds']['messaging']): string[] {
  const each = messaging.levels.map(
    ({ concurrency, requestRepliesPerSecond, after, cpuPercent }) => {
      // The idle payment stack's CPU during the echo's window, where the run recorded it.
      const recorded = serviceNames.filter((name) => name in cpuPercent);
      const percent = recorded.reduce((sum, name) => sum + (cpuPercent[name] ?? 0), 0);
      const idle =
        recorded.length === serviceNames.length
          ? ` (the payment services ${percent} % of a core)`
          : '';
      const when = after === undefined ? 'before the levels' : `right after ${after}`;
      return `c=${concurrency} ${thousands(requestRepliesPerSecond)}/s ${when}${idle}`;
    },
  );
  return [`  echo levels: ${each.join('; ')}`];
}

/**
 * What messaging alone allocates per request/reply, from the messaging bound's echo levels: nats.js
 * in the responders, the client library's request/reply on nats.js in the load generator.
 */
function natsAllocation(messaging: ThroughputResult['bounds']['messaging']): string[] {
  const kb = (bytes: number): string => (bytes / 1_024).toFixed(1);
  const each = messaging.levels
    .map(({ concurrency, allocatedPerRequestReply: { responder, requester } }) => {
      return `c=${concurrency} ${kb(responder)} / ${kb(requester)}`;
    })
    .join(', ');
  return [
    `  messaging alone, per request/reply in the messaging bound (echo responders / load generator): ${each}`,
  ];
}

function allocationRow(level: LevelResult): string {
  const entries = Object.entries(level.gc);
  const total = entries.reduce((sum, [, { allocatedPerPayment }]) => sum + allocatedPerPayment, 0);
  const each = entries
    .map(([name, { allocatedPerPayment }]) => `${name} ${(allocatedPerPayment / 1_024).toFixed(1)}`)
    .join('  ');
  return `  ${level.name.padEnd(25)} ${each}  total ${(total / 1_024).toFixed(1)}`;
}

function gcRow(level: LevelResult): string {
  const gc = Object.entries(level.gc)
    .map(([name, { pauses, ms }]) => `${name} ${pauses}/${ms.toFixed(0)}`)
    .join('  ');
  const { tail } = level;
  if (tail === undefined) return `  ${level.name.padEnd(25)} ${gc}`;
  const longest = (kind: 'gc' | 'commit'): string =>
    tail.pauses
      .filter((pause) => (pause.kind === 'commit') === (kind === 'commit'))
      .reduce((max, pause) => Math.max(max, pause.ms), 0)
      .toFixed(1);
  const share = (part: number, whole: number): string =>
    `${Math.round((part / Math.max(1, whole)) * 100)} %`;
  return (
    `  ${level.name.padEnd(25)} ${gc}; of the payments at or above p99 (of all), GC pauses of ` +
    `1 ms or more overlapped ${share(tail.slowDuringPause, tail.slow)} ` +
    `(${share(tail.allDuringPause, tail.all)}), write transactions of 2 ms or more ` +
    `${share(tail.slowDuringCommit, tail.slow)} (${share(tail.allDuringCommit, tail.all)}), ` +
    `either ${share(tail.slowDuringEither, tail.slow)} (${share(tail.allDuringEither, tail.all)}); ` +
    `longest pause ${longest('gc')} ms, longest commit ${longest('commit')} ms`
  );
}

export function chartInput(result: ThroughputResult): ChartInput {
  const series = (variant: LevelSpec['variant'], label: string, color: string): ChartSeries => ({
    label,
    color,
    points: result.levels
      .filter((level) => level.loop === 'closed' && level.variant === variant)
      .map((level) => ({
        concurrency: level.load,
        committedPerSecond: level.committedPerSecond,
        p50Ms: level.window.latency.p50Ms,
        p99Ms: level.window.latency.p99Ms,
      })),
  });
  const open = result.levels.filter((level) => level.loop === 'open');
  const { machine, bounds } = result;
  return {
    title: 'Continuum: payments on one 2-core machine, every vote and decision fsynced',
    subtitle:
      `commit ${machine.commit}, ${machine.cores} × ${machine.cpuModel}, one nats-server, ` +
      `closed loop, ${Number(result.settings['measureMs']) / 1_000} s per level, load ${machine.loadAverage1m} at start`,
    series: [
      series('all-commit', 'all commit', '#1f6fb4'),
      series('no-10pct', '10 % NO votes', '#e07b00'),
    ],
    boundPerSecond: bounds.messaging.paymentsPerSecond,
    targetPerSecond: { concurrency: 64, value: 2_500 },
    targetP99Ms: { concurrency: 64, value: 60 },
    targetP50Ms: { concurrency: 1, value: 2 },
    notes: [
      'Open loop, latency from each payment’s scheduled arrival (no coordinated omission):',
      ...open.map(
        (l) =>
          `    ${thousands(l.load)}/s offered: ${thousands(l.committedPerSecond)}/s committed, ` +
          `p50 ${l.window.latency.p50Ms} ms, p99 ${l.window.latency.p99Ms} ms, ` +
          `max ${l.window.latency.maxMs} ms`,
      ),
      `Bounds in the same run: ${thousands(bounds.messaging.requestRepliesPerSecond)} NATS ` +
        `request/replies/s (echo in ${bounds.messaging.echoProcesses} processes) ÷ 7 = ` +
        `${thousands(bounds.messaging.paymentsPerSecond)} payments/s; ` +
        `${thousands(bounds.storage.forcedCommitsPerSecond)} SQLite forced commits/s (WAL, FULL).`,
      `Ratio of peak payments/s to the messaging bound: ${boundRatio(result)}.`,
    ],
  };
}
