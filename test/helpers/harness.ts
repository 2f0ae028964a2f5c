/**
 * A real stack for one integration test: nats-server, coordinator and participants as processes,
 * the demo world seeded, a client connected, and at the end a check of every invariant across the
 * four databases. Timers are shortened so that faults resolve within a test's time.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import type { ExecutionContext } from 'ava';
import { ContinuumClient } from '../../client/index.ts';
import {
  checkInvariants,
  moneyBaseline,
  waitUntilSettled,
  type DatabaseFiles,
  type MoneyBaseline,
} from '../../ops/checker.ts';
import { natsUser } from '../../ops/nats-server.ts';
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
  // With NATS users, the harness's own client gets a user with the client's permissions too.
  const clientLogin =
    options.natsUsers === undefined
      ? undefined
      : natsUser('test-client', randomBytes(24).toString('hex'), {
          kind: 'client',
          clientId: 'test-client',
        });
  const stack = await startStack({
    seed: seedDemoData,
    flags: fastFlags,
    ...options,
    ...(clientLogin === undefined
      ? {}
      : { natsUsers: [...(options.natsUsers ?? []), clientLogin] }),
  });
  t.log(`stack in ${stack.root}`);
  const files = databaseFiles(stack);
  const baseline = moneyBaseline(files.bank);
  const client = await ContinuumClient.connect({
    servers: stack.natsUrls,
    clientId: 'test-client',
    ...(clientLogin === undefined
      ? {}
      : { credentials: { user: clientLogin.user, password: clientLogin.password } }),
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

/**
 * Cleanup for a stack shared by a whole test file. startTestStack registers its cleanup with
 * t.teardown, which ava refuses in hooks; `context(t)` hands it a context that keeps the cleanup
 * here instead, and `run()` (in test.after.always) runs it, newest first.
 */
export class HookCleanup {
  readonly #stops: (() => Promise<void> | void)[] = [];

  context(t: { readonly log: ExecutionContext['log'] }): ExecutionContext {
    const teardown = (stop: () => Promise<void> | void): void => this.push(stop);
    return { log: t.log, teardown } as unknown as ExecutionContext;
  }

  push(stop: () => Promise<void> | void): void {
    this.#stops.push(stop);
  }

  async run(): Promise<void> {
    for (const stop of this.#stops.splice(0).reverse()) await stop();
  }
}
