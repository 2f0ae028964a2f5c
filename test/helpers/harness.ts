/**
 * A real stack for one integration test: nats-server, coordinator and participants as processes,
 * the demo world seeded, a client connected, and at the end a check of every invariant across the
 * four databases. Timers are shortened so that faults resolve within a test's time.
 */
import Database from 'better-sqlite3';
import type { ExecutionContext } from 'ava';
import { ContinuumClient } from '../../client/index.ts';
import {
  checkInvariants,
  moneyBaseline,
  waitUntilSettled,
  type DatabaseFiles,
  type MoneyBaseline,
} from '../../ops/checker.ts';
import { databaseFiles, startStack, type Stack, type StackOptions } from '../../ops/stack.ts';
import { seedDemoData } from '../../participants/seed.ts';

export const fastFlags: NonNullable<StackOptions['flags']> = {
  coordinator: [
    '--prepare-resend-ms',
    '200',
    '--decision-resend-min-ms',
    '50',
    '--decision-resend-max-ms',
    '500',
  ],
  bank: ['--in-doubt-query-after-ms', '300', '--in-doubt-query-max-ms', '1000'],
  vendor: ['--in-doubt-query-after-ms', '300', '--in-doubt-query-max-ms', '1000'],
  customer: ['--in-doubt-query-after-ms', '300', '--in-doubt-query-max-ms', '1000'],
};

export interface TestStack {
  readonly stack: Stack;
  readonly client: ContinuumClient;
  readonly files: DatabaseFiles;
  readonly baseline: MoneyBaseline;
  /** Waits for quiet, then asserts every invariant holds. */
  assertConsistent(t: ExecutionContext, forgotten?: ReadonlySet<string>): Promise<void>;
  /** Runs a read-only query on one service's database. */
  query<T>(name: keyof DatabaseFiles, sql: string, ...params: unknown[]): T[];
}

export async function startTestStack(
  t: ExecutionContext,
  options: StackOptions = {},
): Promise<TestStack> {
  const stack = await startStack({ seed: seedDemoData, flags: fastFlags, ...options });
  t.log(`stack in ${stack.root}`);
  const files = databaseFiles(stack);
  const baseline = moneyBaseline(files.bank);
  const client = await ContinuumClient.connect({
    servers: stack.natsUrls,
    clientId: 'test-client',
  });
  t.teardown(async () => {
    await client.close();
    await stack.stop({ remove: true });
  });
  return {
    stack,
    client,
    files,
    baseline,
    async assertConsistent(context, forgotten = new Set()) {
      const settled = await waitUntilSettled(files, 15_000);
      context.true(settled, 'the system settles: nothing held, every payment complete');
      context.deepEqual(checkInvariants(files, { baseline, settled: true, forgotten }), []);
    },
    query<T>(name: keyof DatabaseFiles, sql: string, ...params: unknown[]): T[] {
      const db = new Database(files[name], { readonly: true });
      try {
        db.pragma('busy_timeout = 5000');
        return db.prepare(sql).all(...params) as T[];
      } finally {
        db.close();
      }
    },
  };
}
