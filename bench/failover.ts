/**
 * Takeover time: from kill -9 of the active coordinator to the first payment committed by the
 * standby that takes over, measured on the real stack (3-node NATS cluster with the lease in
 * JetStream KV, or one NATS server with the lease in the journal's file; two coordinators sharing
 * the journal, the three participants) under a steady stream of payments, over repeated
 * kills. Each takeover is read from the journal: the time of the first COMMIT record written in
 * the new term, minus the moment of the kill. At the end every invariant is checked, so a run
 * that lost or half-applied a payment fails however fast it was.
 */
import Database from 'better-sqlite3';
import { setTimeout as sleep } from 'node:timers/promises';
import { ContinuumClient } from '../client/index.ts';
import type { Payment } from '../common/protocol.ts';
import { checkInvariants, moneyBaseline, waitUntilSettled } from '../ops/checker.ts';
import { databaseFiles, startStack, type Stack } from '../ops/stack.ts';
import { addStock, makeBulkOrders, seedDemoData, seedLoadParties } from '../participants/seed.ts';
import { percentile, progress } from './report.ts';

export interface FailoverOptions {
  readonly kills: number;
  readonly clients: number;
  readonly leaseTtlMs: number;
  readonly lease: 'nats' | 'journal';
}

export interface FailoverResult {
  readonly kills: number;
  readonly takeoverMs: readonly number[];
  readonly medianMs: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly leaseTtlMs: number;
  readonly lease: 'nats' | 'journal';
  readonly payments: { readonly committed: number; readonly aborted: number };
  readonly violations: readonly string[];
}

const paymentCountMax = 20_000;

export async function runFailover(options: FailoverOptions): Promise<FailoverResult> {
  let payments: Payment[] = [];
  const stack = await startStack({
    cluster: options.lease === 'nats',
    standbys: 1,
    lease: options.lease,
    flags: { coordinator: ['--lease-ttl-ms', String(options.leaseTtlMs)] },
    seed: (dbs) => {
      seedDemoData(dbs);
      seedLoadParties(dbs, {
        customerId: 'loader',
        vendorId: 'acme',
        currency: 'EUR',
        balanceMinor: 1e9,
      });
      addStock(dbs.vendor, 'acme', 'pen', paymentCountMax);
      payments = makeBulkOrders(dbs.vendor, {
        customerId: 'loader',
        vendorId: 'acme',
        currency: 'EUR',
        sku: 'pen',
        unitPriceMinor: 100,
        count: paymentCountMax,
        prefix: 'load',
      });
    },
  });
  const files = databaseFiles(stack);
  const baseline = moneyBaseline(files.bank);
  const client = await ContinuumClient.connect({ servers: stack.natsUrls, clientId: 'bench' });
  const load = startLoad(client, payments, options.clients);
  const takeoverMs: number[] = [];
  try {
    await sleep(1_000);
    for (let kill = 1; kill <= options.kills; kill += 1) {
      takeoverMs.push(await killAndTime(stack, files.coordinator));
      progress(`failover ${kill}/${options.kills}: ${takeoverMs.at(-1)} ms`);
      await sleep(500);
    }
  } finally {
    await load.stop();
    await client.close();
  }
  const settled = await waitUntilSettled(files, 30_000);
  const violations = checkInvariants(files, { baseline, settled });
  await stack.stop({ remove: violations.length === 0 });
  const sorted = [...takeoverMs].sort((a, b) => a - b);
  return {
    kills: options.kills,
    takeoverMs,
    medianMs: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted.at(-1) ?? 0,
    leaseTtlMs: options.leaseTtlMs,
    lease: options.lease,
    payments: load.counts,
    violations,
  };
}

/** Kills the active coordinator; resolves with the ms until the new term's first COMMIT. */
async function killAndTime(stack: Stack, journalFile: string): Promise<number> {
  const db = new Database(journalFile, { readonly: true });
  db.pragma('busy_timeout = 5000');
  try {
    const epoch = db.prepare('SELECT epoch FROM leadership WHERE id = 1').pluck().get() as number;
    const holder = db.prepare('SELECT holder FROM leadership WHERE id = 1').pluck().get() as string;
    const active = stack.coordinators[holder === 'coordinator-1' ? 0 : 1];
    if (!active) throw new Error(`no coordinator process for ${holder}`);
    const killedAt = Date.now();
    await active.kill();
    const firstCommit = db.prepare(
      `SELECT min(written_at) FROM journal WHERE epoch > ? AND kind = 'decided'
       AND body LIKE '%"decision":"commit"%'`,
    );
    const deadline = killedAt + 30_000;
    let committedAt: number | null = null;
    while (committedAt === null && Date.now() < deadline) {
      await sleep(10);
      committedAt = firstCommit.pluck().get(epoch) as number | null;
    }
    if (committedAt === null) throw new Error('no payment committed within 30 s of the kill');
    await active.start();
    return committedAt - killedAt;
  } finally {
    db.close();
  }
}

/** Clients paying one order after another until stopped; every payment gets its outcome. */
function startLoad(client: ContinuumClient, payments: readonly Payment[], clients: number) {
  const counts = { committed: 0, aborted: 0 };
  let next = 0;
  let stopped = false;
  const worker = async (): Promise<void> => {
    while (!stopped && next < payments.length) {
      const payment = payments[next++];
      if (!payment) return;
      const outcome = await client.makePayment(payment, { attemptTimeoutMs: 250 });
      counts[outcome.outcome] += 1;
    }
  };
  const workers = Promise.all(Array.from({ length: clients }, worker));
  return {
    counts,
    stop: async (): Promise<void> => {
      stopped = true;
      await workers;
    },
  };
}
