/**
 * The coordinator process: `tsx coordinator/main.ts --nats <urls> --db <file> [options]`.
 * Opens (and migrates) the journal and connects to NATS; then, alone or with a lease
 * (--lease-bucket in JetStream KV, or --lease-journal on in the journal's own file) among
 * standbys sharing the journal, leads terms until SIGTERM (coordinator/leadership.ts).
 */
import {
  integerFlag,
  natsUrlsFlag,
  onOffFlag,
  parseFlags,
  requiredFlag,
  runMain,
} from '../common/cli.ts';
import { armedCrashPoints, armedMutations } from '../common/crash.ts';
import { ConfigError } from '../common/errors.ts';
import { ulidFactory } from '../common/ids.ts';
import { announceReady, createLogger, errorText, type Logger } from '../common/log.ts';
import { connectNats, type NatsConnection } from '../common/nats.ts';
import { identifierPattern, participantNames } from '../common/protocol.ts';
import { busyTimeoutMs } from '../common/sqlite.ts';
import { NatsLease } from './adapters/nats-lease.ts';
import { SqliteJournal } from './adapters/sqlite-journal.ts';
import { SqliteLease } from './adapters/sqlite-lease.ts';
import { keyPurgeIntervalMs, keyRetentionRisk } from './core/key-retention.ts';
import { leaseBusyWaitMs, leaseTimings } from './core/lease-timing.ts';
import { Leadership } from './leadership.ts';
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
  instance: { type: 'string' },
  'lease-bucket': { type: 'string' },
  'lease-ttl-ms': { type: 'string', default: '600' },
  'lease-replicas': { type: 'string', default: '3' },
  'verify-journal': { type: 'string', default: 'off' },
  'lease-journal': { type: 'string', default: 'off' },
} as const;

async function main(): Promise<void> {
  armedCrashPoints();
  const mutations = armedMutations();
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
    mutations,
  };
  if (machine.decisionResendMsMin > machine.decisionResendMsMax) {
    throw new ConfigError('--decision-resend-min-ms must not exceed --decision-resend-max-ms');
  }
  const sendTimeoutMs = integerFlag(values, 'send-timeout-ms', 10, 60_000);
  const retentionMs = integerFlag(values, 'key-retention-ms', 100, 365 * 24 * 60 * 60 * 1000);
  const instance = values['instance'] ?? `coordinator-${process.pid}`;
  if (!identifierPattern.test(instance)) throw new ConfigError('--instance must be an identifier');
  const leaseTtlMs = integerFlag(values, 'lease-ttl-ms', 100, 60_000);
  const log = createLogger('coordinator');
  const verify = onOffFlag(values, 'verify-journal');
  const leaseInJournal = onOffFlag(values, 'lease-journal');
  if (leaseInJournal && values['lease-bucket'] !== undefined) {
    throw new ConfigError('--lease-journal on and --lease-bucket exclude each other');
  }
  const retentionRisk = keyRetentionRisk(retentionMs);
  if (retentionRisk !== undefined) log.warn('key-retention-short', { retentionMs, retentionRisk });
  const hasLease = leaseInJournal || values['lease-bucket'] !== undefined;
  const busyWaitMs = leaseBusyWaitMs(hasLease ? leaseTtlMs : undefined, busyTimeoutMs);
  const journal = new SqliteJournal(dbFile, retentionMs, busyWaitMs);
  // Reads the whole journal (recovery reads only the unfinished payments): refuses to start,
  // exit code 1, if the journal and its index disagree.
  if (verify) journal.verify();
  // Test-only mutation: see test/sim/mutations.ts
  if (mutations.has('ignore-epoch')) journal.ignoreEpoch();
  if (mutations.has('purge-by-age')) journal.purgeByAge();
  const nats = await connectNats({ servers, name: `continuum-${instance}` });
  const now = (): number => Date.now();
  const lease = leaseInJournal
    ? new SqliteLease({ file: dbFile, ttlMs: leaseTtlMs, holder: instance, now, busyWaitMs })
    : await openLease(values, { nats, ttlMs: leaseTtlMs, holder: instance });
  const newId = ulidFactory();
  const leadership = new Leadership({
    journal,
    lease,
    instance,
    log,
    now,
    ...leaseTimings(leaseTtlMs),
    createService: (epoch, onTermOver) =>
      new CoordinatorService({
        nats,
        journal,
        machine,
        sendTimeoutMs,
        purgeIntervalMs: keyPurgeIntervalMs(retentionMs),
        log,
        now,
        newTransactionId: () => newId(),
        epoch,
        instance,
        onTermOver,
      }),
    onRole: (role, epoch) => {
      log.info('role', { role, epoch });
      announceReady({ service: 'coordinator', instance, role, epoch, db: dbFile });
    },
    onFencedWithoutLease: (error) => {
      log.error('fenced-without-lease', { message: error.message });
      process.exit(3);
    },
  });
  await runUntilReady(leadership, log);
  const stop = (): void => {
    void leadership
      .stop()
      .then(() => nats.drain())
      .then(() => {
        if (lease instanceof SqliteLease) lease.close();
        journal.close();
        process.exit(0);
      });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/** With --lease-bucket, several coordinators share the journal and take turns by a KV lease. */
async function openLease(
  values: Record<string, string | undefined>,
  options: { nats: NatsConnection; ttlMs: number; holder: string },
): Promise<NatsLease | undefined> {
  const bucket = values['lease-bucket'];
  if (bucket === undefined) return undefined;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(bucket)) {
    throw new ConfigError('--lease-bucket must be 1-64 of [A-Za-z0-9_-]');
  }
  const replicas = integerFlag(values, 'lease-replicas', 1, 5);
  return NatsLease.open({ ...options, bucket }, replicas);
}

/**
 * Runs the leadership loop; resolves once the process is ready (active or standby). An error
 * before then fails the start; an error later is fatal: the process exits and recovers on restart.
 */
async function runUntilReady(leadership: Leadership, log: Logger): Promise<void> {
  let ready = false;
  const running = leadership.run().catch((error: unknown) => {
    if (!ready) throw error;
    log.error('fatal', { error: errorText(error) });
    process.exit(1);
  });
  await Promise.race([running, leadership.ready]);
  ready = true;
}

runMain(main);
