/**
 * `npm run bench -- breakdown [--payments <n>]`: where one client's payment spends its time. One
 * client pays one payment at a time through the whole stack with message traces on
 * (CONTINUUM_TRACE=1, common/trace.ts); every service stamps each receive, send, journal write and
 * local transaction with the host's clock, so one payment's steps across the four processes can be
 * put in order. Reports each stage's p50 and p90 over the payments after a warm-up.
 *
 * Traces cost a line of stderr per step, so payments here take about 0.6 ms longer than in the
 * throughput benchmark; the stages show where the time goes, the throughput benchmark how much
 * there is.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ContinuumClient } from '../client/index.ts';
import { participantNames, type Payment } from '../common/protocol.ts';
import { startStack } from '../ops/stack.ts';
import { makeBulkOrders } from '../participants/seed.ts';
import { seedParties, vendorId } from './orders.ts';
import { percentile, progress } from './report.ts';

/** Payments before the measured ones: the stack's caches and V8's compiler warm up. */
const warmUpPayments = 200;

export interface StageFigures {
  readonly stage: string;
  readonly p50Ms: number;
  readonly p90Ms: number;
}

export interface BreakdownResult {
  readonly payments: number;
  readonly stages: readonly StageFigures[];
}

interface TraceLine {
  readonly at: number;
  readonly service: string;
  readonly step: string;
  readonly peer?: string;
  readonly txId?: string;
  readonly what: string;
}

/** The first time of each step of each transaction, by `service:step:peer:what`. */
function readTraces(files: readonly string[]): Map<string, Map<string, number>> {
  const byTx = new Map<string, Map<string, number>>();
  for (const file of files) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.includes('"event":"trace"')) continue;
      const trace = JSON.parse(line) as TraceLine;
      if (trace.txId === undefined) continue;
      const steps = byTx.get(trace.txId) ?? new Map<string, number>();
      const key = `${trace.service}:${trace.step}:${trace.peer ?? ''}:${trace.what}`;
      if (!steps.has(key)) steps.set(key, trace.at);
      byTx.set(trace.txId, steps);
    }
  }
  return byTx;
}

export async function runBreakdown(payments: number): Promise<BreakdownResult> {
  let orders: Payment[] = [];
  const count = payments + warmUpPayments;
  const stack = await startStack({
    env: { CONTINUUM_TRACE: '1' },
    seed: (databases) => {
      seedParties(databases);
      const order = { customerId: 'loader', vendorId, currency: 'EUR', sku: 'pen' } as const;
      orders = makeBulkOrders(databases.vendor, {
        ...order,
        unitPriceMinor: 100,
        count,
        prefix: 'b',
      });
    },
  });
  const timed = new Map<string, { sentAt: number; answeredAt: number }>();
  try {
    const client = await ContinuumClient.connect({
      servers: stack.natsUrls,
      clientId: 'breakdown',
    });
    const clock = (): number => performance.timeOrigin + performance.now();
    for (const [index, payment] of orders.entries()) {
      const sentAt = clock();
      const outcome = await client.makePayment(payment);
      const answeredAt = clock();
      if (outcome.outcome !== 'committed') throw new Error(`payment ${index} ${outcome.outcome}`);
      if (index >= warmUpPayments) timed.set(outcome.txId, { sentAt, answeredAt });
      if ((index + 1) % 1_000 === 0) progress(`${index + 1} of ${count} payments`);
    }
    await client.close();
  } finally {
    await stack.stop();
  }
  const names = ['coordinator', ...participantNames] as const;
  const files = names.map((name) =>
    join(stack.root, name, name === 'coordinator' ? 'coordinator.log' : `${name}.log`),
  );
  const traces = readTraces(files);
  // The traces are read: the stack's directory (tens of MB of logs) goes. A run that failed
  // before this point keeps it, with the logs that say why.
  rmSync(stack.root, { recursive: true, force: true });
  const stages = new Map<string, number[]>();
  const add = (stage: string, ms: number): void => {
    const list = stages.get(stage) ?? [];
    list.push(ms);
    stages.set(stage, list);
  };
  for (const [txId, { sentAt, answeredAt }] of timed) {
    const steps = traces.get(txId);
    const at = (key: string): number => {
      const value = steps?.get(key);
      if (value === undefined) throw new Error(`transaction ${txId} has no trace of ${key}`);
      return value;
    };
    const begun = at('coordinator:journal::begin');
    const prepared = at('coordinator:send:customer:prepare');
    const votes = participantNames.map((name) => at(`coordinator:receive:${name}:vote yes`));
    const lastVote = Math.max(...votes);
    const decided = at('coordinator:journal::commit forced');
    const replied = at('coordinator:reply:client:committed');
    add('1 client sends -> begin durable at the coordinator', begun - sentAt);
    add('2 begin durable -> PREPAREs published', prepared - begun);
    add('3 PREPAREs published -> last vote received', lastVote - prepared);
    for (const name of participantNames) {
      const received = at(`${name}:receive:coordinator:prepare`);
      const durable = at(`${name}:local::yes durable`);
      const voted = at(`${name}:reply:coordinator:vote yes`);
      add(`  ${name}: PREPARE published -> received`, received - prepared);
      add(`  ${name}: received -> vote durable`, durable - received);
      add(`  ${name}: vote durable -> published`, voted - durable);
      add(
        `  ${name}: vote published -> received`,
        at(`coordinator:receive:${name}:vote yes`) - voted,
      );
    }
    add('4 last vote received -> COMMIT durable', decided - lastVote);
    add('5 COMMIT durable -> reply published', replied - decided);
    add('6 reply published -> the client has it', answeredAt - replied);
    add('total', answeredAt - sentAt);
  }
  const round = (ms: number): number => Math.round(ms * 1_000) / 1_000;
  // In the order added: the stages, each participant's part of stage 3 after it, the total last.
  const figures = [...stages.entries()].map(([stage, values]): StageFigures => {
    const sorted = values.sort((x, y) => x - y);
    return {
      stage,
      p50Ms: round(percentile(sorted, 0.5)),
      p90Ms: round(percentile(sorted, 0.9)),
    };
  });
  return { payments: timed.size, stages: figures };
}
