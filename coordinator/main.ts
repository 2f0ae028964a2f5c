/**
 * The coordinator process: `tsx coordinator/main.ts --nats <urls> --db <file> [timings]`.
 * Opens (and migrates) the journal, recovers, connects to NATS and serves until SIGTERM.
 */
import { monotonicFactory } from 'ulid';
import { integerFlag, natsUrlsFlag, parseFlags, requiredFlag, runMain } from '../common/cli.ts';
import { armedCrashPoints } from '../common/crash.ts';
import { ConfigError } from '../common/errors.ts';
import { announceReady, createLogger } from '../common/log.ts';
import { connectNats } from '../common/nats.ts';
import { participantNames } from '../common/protocol.ts';
import { SqliteJournal } from './adapters/sqlite-journal.ts';
import { CoordinatorService } from './service.ts';

const flags = {
  nats: { type: 'string' },
  db: { type: 'string' },
  'send-timeout-ms': { type: 'string', default: '1000' },
  'prepare-resend-ms': { type: 'string', default: '500' },
  'decision-resend-min-ms': { type: 'string', default: '200' },
  'decision-resend-max-ms': { type: 'string', default: '10000' },
  'in-flight-max': { type: 'string', default: '10000' },
  'waiters-per-payment-max': { type: 'string', default: '64' },
  'key-retention-ms': { type: 'string', default: String(24 * 60 * 60 * 1000) },
} as const;

async function main(): Promise<void> {
  armedCrashPoints();
  const values = parseFlags(process.argv.slice(2), flags);
  const servers = natsUrlsFlag(values);
  const dbFile = requiredFlag(values, 'db');
  const machine = {
    participants: participantNames,
    prepareResendMs: integerFlag(values, 'prepare-resend-ms', 10, 60_000),
    decisionResendMsMin: integerFlag(values, 'decision-resend-min-ms', 10, 60_000),
    decisionResendMsMax: integerFlag(values, 'decision-resend-max-ms', 10, 600_000),
    inFlightMax: integerFlag(values, 'in-flight-max', 1, 1_000_000),
    waitersPerTransactionMax: integerFlag(values, 'waiters-per-payment-max', 1, 10_000),
  };
  if (machine.decisionResendMsMin > machine.decisionResendMsMax) {
    throw new ConfigError('--decision-resend-min-ms must not exceed --decision-resend-max-ms');
  }
  const sendTimeoutMs = integerFlag(values, 'send-timeout-ms', 10, 60_000);
  const log = createLogger('coordinator');
  const retentionMs = integerFlag(values, 'key-retention-ms', 100, 365 * 24 * 60 * 60 * 1000);
  const journal = new SqliteJournal(dbFile, retentionMs);
  const nats = await connectNats({ servers, name: 'continuum-coordinator' });
  const newId = monotonicFactory();
  const service = new CoordinatorService({
    nats,
    journal,
    machine,
    sendTimeoutMs,
    purgeIntervalMs: Math.max(50, Math.min(60_000, Math.floor(retentionMs / 2))),
    log,
    now: () => Date.now(),
    newTransactionId: () => newId(),
  });
  service.start();
  await nats.flush();
  announceReady({ service: 'coordinator', db: dbFile });
  const stop = (): void => {
    void service.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

runMain(main);
