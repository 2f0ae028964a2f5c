/**
 * The whole system on one machine: nats-server (one node, or a 3-node cluster), the coordinator
 * and the three participants, each a separate OS process with its own data directory under one
 * root. Used by the demo, the integration tests and the benchmarks. Everything listens on
 * 127.0.0.1 only, on ports chosen by the OS.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { participantNames, type ParticipantName } from '../common/protocol.ts';
import { openDatabase, type SqliteDatabase } from '../common/sqlite.ts';
import type { DatabaseFiles } from './checker.ts';
import type { NatsCredentials } from '../common/nats.ts';
import {
  natsUser,
  startNatsCluster,
  startNatsServer,
  type ContinuumRole,
  type NatsClusterHandle,
  type NatsServerHandle,
  type NatsUser,
} from './nats-server.ts';
import { ServiceProcess } from './service-process.ts';

export type ServiceName = 'coordinator' | ParticipantName;

export interface StackOptions {
  /** Root directory; a fresh temp directory when omitted (removed by `stop({ remove: true })`). */
  readonly root?: string;
  /** Run a 3-node NATS cluster instead of one server. */
  readonly cluster?: boolean;
  /** Fills the participants' databases before they start (the databases are migrated first). */
  readonly seed?: (databases: Readonly<Record<ParticipantName, SqliteDatabase>>) => void;
  /** Environment for every service, e.g. `{ CONTINUUM_TRACE: '1' }`. */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Standby coordinators beside the first, sharing its journal; all of them then take turns by a
   * lease: in JetStream KV by default, which needs `cluster: true`, or in the journal's file.
   */
  readonly standbys?: number;
  /** Where the standbys' lease lives: `nats` (JetStream KV, the default) or `journal`. */
  readonly lease?: 'nats' | 'journal';
  /** Also start the HTTP gateway on a free loopback port. */
  readonly gateway?: boolean;
  /** Extra flags for the gateway, e.g. `['--clients', file]`. */
  readonly gatewayFlags?: readonly string[];
  /** Extra flags per service, e.g. shorter timeouts for tests. */
  readonly flags?: Partial<Readonly<Record<ServiceName, readonly string[]>>>;
  /**
   * With it, NATS requires users: these (typically clients, made with `natsUser`), plus one user
   * per service with its recommended permissions, handed to the service in its environment, and
   * an operator user (`Stack.operatorCredentials`).
   */
  readonly natsUsers?: readonly NatsUser[];
}

export interface Stack {
  readonly root: string;
  readonly natsUrls: readonly string[];
  readonly nats: readonly NatsServerHandle[];
  readonly services: Readonly<Record<ServiceName, ServiceProcess>>;
  /** Every coordinator process: the first is `services.coordinator`, the rest its standbys. */
  readonly coordinators: readonly ServiceProcess[];
  /** The HTTP gateway's base URL, when it was started. */
  readonly gatewayUrl: string | undefined;
  readonly gateway: ServiceProcess | undefined;
  /** With `natsUsers`: how operators' tools and tests log in to read the service subjects. */
  readonly operatorCredentials: NatsCredentials | undefined;
  /** The SQLite file of a service. */
  dbFile(name: ServiceName): string;
  stop(options?: { remove?: boolean }): Promise<void>;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const root = options.root ?? mkdtempSync(join(tmpdir(), 'continuum-'));
  const natsDir = join(root, 'nats');
  mkdirSync(natsDir, { recursive: true });
  const logins = options.natsUsers === undefined ? undefined : serviceLogins();
  const users =
    logins === undefined ? undefined : [...(options.natsUsers ?? []), ...Object.values(logins)];
  const cluster: NatsClusterHandle = options.cluster
    ? await startNatsCluster({ dataDir: natsDir, ...(users === undefined ? {} : { users }) })
    : await singleNodeCluster(natsDir, users);
  const nats = cluster.nodes;
  const natsUrls = nats.map((node) => node.url);
  const dbFile = (name: ServiceName): string => join(root, name, `${name}.sqlite`);
  for (const name of ['coordinator', ...participantNames] as const) {
    mkdirSync(join(root, name), { recursive: true });
  }
  if (options.seed) seedDatabases(dbFile, options.seed);
  const env = options.env ?? {};
  const envOf = (name: ServiceName | 'gateway'): Readonly<Record<string, string>> =>
    logins === undefined ? env : { ...env, ...loginEnvironment(logins[name]) };
  const standbys = options.standbys ?? 0;
  const lease = standbys === 0 ? undefined : (options.lease ?? 'nats');
  if (lease === 'nats' && !options.cluster) {
    throw new Error('standbys with a JetStream lease need cluster: true');
  }
  const flags = withLease(options.flags ?? {}, lease);
  const services = createServices(root, natsUrls, dbFile, flags, envOf);
  const coordinators = [
    services.coordinator,
    ...Array.from({ length: standbys }, (_, index) => {
      const instance = `coordinator-${index + 2}`;
      return new ServiceProcess({
        ...services.coordinator.spec,
        name: instance,
        args: [...services.coordinator.spec.args, '--instance', instance],
        logFile: join(root, 'coordinator', `${instance}.log`),
      });
    }),
  ];
  const gateway = options.gateway
    ? new ServiceProcess({
        name: 'gateway',
        entry: 'gateway/main.ts',
        args: [
          ...['--nats', natsUrls.join(','), '--port', '0', '--wait-ms', '5000'],
          ...(options.gatewayFlags ?? []),
        ],
        logFile: join(root, 'gateway.log'),
        env: envOf('gateway'),
      })
    : undefined;
  const stop = async ({ remove = false } = {}): Promise<void> => {
    const all = [
      ...(gateway ? [gateway] : []),
      ...coordinators.slice(1),
      ...Object.values(services),
    ];
    await Promise.all(all.map((service) => service.stop()));
    await cluster.stop();
    if (remove) rmSync(root, { recursive: true, force: true });
  };
  try {
    // Participants first, so the coordinator's recovery finds them listening.
    await Promise.all(participantNames.map((name) => services[name].start()));
    await services.coordinator.start();
    for (const standby of coordinators.slice(1)) await standby.start();
    await gateway?.start();
  } catch (error) {
    await stop();
    throw error;
  }
  const gatewayUrl = gateway ? String(gateway.ready['url']) : undefined;
  const operator = logins?.operator;
  return {
    root,
    natsUrls,
    nats,
    services,
    coordinators,
    gateway,
    gatewayUrl,
    operatorCredentials: operator && { user: operator.user, password: operator.password },
    dbFile,
    stop,
  };
}

type Login = ServiceName | 'gateway' | 'operator';

/** One NATS user per service, with a fresh random password, and one for operators. */
function serviceLogins(): Readonly<Record<Login, NatsUser>> {
  const user = (name: Login, role: ContinuumRole): NatsUser =>
    natsUser(`continuum-${name}`, randomBytes(24).toString('hex'), role);
  return {
    coordinator: user('coordinator', { kind: 'coordinator' }),
    bank: user('bank', { kind: 'participant', name: 'bank' }),
    vendor: user('vendor', { kind: 'participant', name: 'vendor' }),
    customer: user('customer', { kind: 'participant', name: 'customer' }),
    gateway: user('gateway', { kind: 'gateway' }),
    operator: user('operator', { kind: 'operator' }),
  };
}

/** How a service is told its NATS login (common/nats.ts reads it): never on its command line. */
function loginEnvironment(login: NatsUser): Record<string, string> {
  return { CONTINUUM_NATS_USER: login.user, CONTINUUM_NATS_PASSWORD: login.password };
}

/** With standbys, every coordinator takes the lease in the cluster's KV bucket or the journal. */
function withLease(
  flags: NonNullable<StackOptions['flags']>,
  lease: 'nats' | 'journal' | undefined,
): NonNullable<StackOptions['flags']> {
  if (lease === undefined) return flags;
  const where =
    lease === 'nats' ? ['--lease-bucket', 'continuum-leader'] : ['--lease-journal', 'on'];
  const coordinator = ['--instance', 'coordinator-1', ...where];
  return { ...flags, coordinator: [...coordinator, ...(flags.coordinator ?? [])] };
}

/** One server seen through the cluster interface, so the rest of the stack treats both alike. */
async function singleNodeCluster(
  dataDir: string,
  users: readonly NatsUser[] | undefined,
): Promise<NatsClusterHandle> {
  const node = await startNatsServer({ dataDir, ...(users === undefined ? {} : { users }) });
  return {
    nodes: [node],
    urls: [node.url],
    node: () => node,
    stop: () => node.stop(),
  };
}

/** The four SQLite files of a stack, as the invariant checker wants them. */
export function databaseFiles(stack: Stack): DatabaseFiles {
  return {
    coordinator: stack.dbFile('coordinator'),
    bank: stack.dbFile('bank'),
    vendor: stack.dbFile('vendor'),
    customer: stack.dbFile('customer'),
  };
}

function seedDatabases(
  dbFile: (name: ServiceName) => string,
  seed: NonNullable<StackOptions['seed']>,
): void {
  const databases = {
    bank: openDatabase(dbFile('bank'), 'bank'),
    vendor: openDatabase(dbFile('vendor'), 'vendor'),
    customer: openDatabase(dbFile('customer'), 'customer'),
  };
  try {
    seed(databases);
  } finally {
    for (const db of Object.values(databases)) db.close();
  }
}

function createServices(
  root: string,
  natsUrls: readonly string[],
  dbFile: (name: ServiceName) => string,
  flags: NonNullable<StackOptions['flags']>,
  envOf: (name: ServiceName) => Readonly<Record<string, string>>,
): Record<ServiceName, ServiceProcess> {
  const common = (name: ServiceName): string[] => [
    '--nats',
    natsUrls.join(','),
    '--db',
    dbFile(name),
    ...(flags[name] ?? []),
  ];
  const participant = (name: ParticipantName): ServiceProcess =>
    new ServiceProcess({
      name,
      entry: 'participants/main.ts',
      args: ['--name', name, ...common(name)],
      logFile: join(root, name, `${name}.log`),
      env: envOf(name),
    });
  return {
    coordinator: new ServiceProcess({
      name: 'coordinator',
      entry: 'coordinator/main.ts',
      args: common('coordinator'),
      logFile: join(root, 'coordinator', 'coordinator.log'),
      env: envOf('coordinator'),
    }),
    bank: participant('bank'),
    vendor: participant('vendor'),
    customer: participant('customer'),
  };
}
