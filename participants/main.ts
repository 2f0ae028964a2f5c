/**
 * A participant process: `tsx participants/main.ts --name <bank|vendor|customer> --nats <urls>
 * --db <file>`. Opens (and migrates) its database, recovers its in-doubt transactions, and serves
 * PREPARE, COMMIT and ABORT until SIGTERM.
 */
import { armedCrashPoints, armedMutations } from '../common/crash.ts';
import { ConfigError } from '../common/errors.ts';
import { integerFlag, natsUrlsFlag, parseFlags, requiredFlag, runMain } from '../common/cli.ts';
import { announceReady, createLogger } from '../common/log.ts';
import { connectNats } from '../common/nats.ts';
import { participantNames, type ParticipantName } from '../common/protocol.ts';
import { bank } from './bank/rules.ts';
import { customer } from './customer/rules.ts';
import type { ResourceManager } from './resource-manager.ts';
import { ParticipantService } from './service.ts';
import { vendor } from './vendor/rules.ts';

const resourceManagers: Readonly<Record<ParticipantName, ResourceManager>> = {
  bank,
  vendor,
  customer,
};

const flags = {
  name: { type: 'string' },
  nats: { type: 'string' },
  db: { type: 'string' },
  'in-doubt-query-after-ms': { type: 'string', default: '3000' },
  'in-doubt-query-max-ms': { type: 'string', default: '30000' },
  'status-timeout-ms': { type: 'string', default: '1000' },
  'barrier-retention-ms': { type: 'string', default: String(7 * 24 * 60 * 60 * 1000) },
} as const;

async function main(): Promise<void> {
  armedCrashPoints();
  const mutations = armedMutations();
  const values = parseFlags(process.argv.slice(2), flags);
  const name = requiredFlag(values, 'name');
  if (!participantNames.includes(name as ParticipantName)) {
    throw new ConfigError(`--name must be one of ${participantNames.join(', ')}`);
  }
  const resourceManager = resourceManagers[name as ParticipantName];
  const servers = natsUrlsFlag(values);
  const dbFile = requiredFlag(values, 'db');
  const machine = {
    name: resourceManager.name,
    inDoubtQueryAfterMs: integerFlag(values, 'in-doubt-query-after-ms', 10, 600_000),
    inDoubtQueryMsMax: integerFlag(values, 'in-doubt-query-max-ms', 10, 3_600_000),
    mutations,
  };
  const statusTimeoutMs = integerFlag(values, 'status-timeout-ms', 10, 60_000);
  const yearMs = 365 * 24 * 60 * 60 * 1000;
  const barrierRetentionMs = integerFlag(values, 'barrier-retention-ms', 1_000, 10 * yearMs);
  const log = createLogger(name);
  const nats = await connectNats({ servers, name: `continuum-${name}` });
  const service = new ParticipantService({
    nats,
    dbFile,
    resourceManager,
    machine,
    statusTimeoutMs,
    barrierRetentionMs,
    log,
    now: () => Date.now(),
  });
  service.start();
  await nats.flush();
  announceReady({ service: name, db: dbFile });
  const stop = (): void => {
    void service.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

runMain(main);
