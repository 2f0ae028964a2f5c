/**
 * The stack for a chaos run: a 3-node NATS cluster, two coordinators taking turns by the lease
 * (active and standby), and the bank, vendor and customer, each a real process with its own
 * SQLite file, every one of them talking to NATS through its own proxies (proxy.ts).
 *
 * ops/stack.ts gives every service the cluster's own URLs; here each service gets the URLs of its
 * proxies instead, so this launcher builds the same processes itself from the same parts
 * (startNatsCluster, ServiceProcess, openDatabase). Everything listens on 127.0.0.1; every process
 * it starts is signalled by its own pid only, through those parts.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectNats, type NatsConnection } from '../../common/nats.ts';
import {
  decodeStatusReply,
  encodeMessage,
  participantNames,
  subjects,
  type ParticipantName,
  type StatusReply,
} from '../../common/protocol.ts';
import { openDatabase } from '../../common/sqlite.ts';
import type { DatabaseFiles } from '../../ops/checker.ts';
import { startNatsCluster, type NatsClusterHandle } from '../../ops/nats-server.ts';
import { ServiceProcess, ServiceStartError } from '../../ops/service-process.ts';
import type { ParticipantDatabases } from '../../participants/seed.ts';
import { ServiceLink, passMode } from './proxy.ts';
import type { Rng } from './random.ts';

export const coordinatorInstances = ['coordinator-1', 'coordinator-2'] as const;
export type CoordinatorInstance = (typeof coordinatorInstances)[number];
export type ProcessName = ParticipantName | CoordinatorInstance;
export const processNames: readonly ProcessName[] = [...participantNames, ...coordinatorInstances];

/** Timers short enough that faults resolve within a run, as in the integration tests. */
const participantFlags = ['--in-doubt-query-after-ms', '300', '--in-doubt-query-max-ms', '1000'];
const coordinatorFlags = [
  '--prepare-resend-ms',
  '200',
  '--decision-resend-min-ms',
  '50',
  '--decision-resend-max-ms',
  '500',
];
/** Where the two coordinators' lease lives: JetStream KV on the cluster, or the journal's file. */
const leaseFlags: Readonly<Record<ChaosLease, readonly string[]>> = {
  nats: ['--lease-bucket', 'continuum-leader'],
  journal: ['--lease-journal', 'on'],
};

export type ChaosLease = 'nats' | 'journal';
const leaderQueryTimeoutMs = 500;
const statusQueryTimeoutMs = 1_000;

export interface ChaosStackOptions {
  readonly root: string;
  readonly rng: Rng;
  /** Environment for every service (e.g. test-only mutations). */
  readonly env: Readonly<Record<string, string>>;
  readonly seed: (databases: ParticipantDatabases) => void;
  /** Flags added to every participant's, e.g. a short barrier retention. */
  readonly participantFlags?: readonly string[];
  /** Flags added to both coordinators', e.g. a short key retention. */
  readonly coordinatorFlags?: readonly string[];
  /** Where the coordinators' lease lives; JetStream KV when undefined. */
  readonly lease?: ChaosLease;
}

export interface Leader {
  readonly instance: CoordinatorInstance;
  readonly epoch: number;
}

export class ChaosStack {
  readonly root: string;
  readonly nats: NatsClusterHandle;
  readonly processes: Readonly<Record<ProcessName, ServiceProcess>>;
  readonly links: Readonly<Record<ProcessName, ServiceLink>>;
  readonly files: DatabaseFiles;
  readonly #control: NatsConnection;

  private constructor(parts: {
    root: string;
    nats: NatsClusterHandle;
    processes: Record<ProcessName, ServiceProcess>;
    links: Record<ProcessName, ServiceLink>;
    files: DatabaseFiles;
    control: NatsConnection;
  }) {
    this.root = parts.root;
    this.nats = parts.nats;
    this.processes = parts.processes;
    this.links = parts.links;
    this.files = parts.files;
    this.#control = parts.control;
  }

  static async start(options: ChaosStackOptions): Promise<ChaosStack> {
    const { root, rng, env, lease = 'nats' } = options;
    const nats = await startNatsCluster({ dataDir: join(root, 'nats') });
    const cleanup: (() => Promise<void>)[] = [() => nats.stop()];
    try {
      const files = databaseFiles(root);
      seedDatabases(files, options.seed);
      const ports = nats.nodes.map((node) => node.port);
      const links = {} as Record<ProcessName, ServiceLink>;
      for (const name of processNames) {
        links[name] = await ServiceLink.open(name, ports, rng.fork(`link-${name}`));
        cleanup.push(() => links[name].close());
      }
      const processes = createProcesses(
        root,
        files,
        links,
        env,
        {
          participant: options.participantFlags ?? [],
          coordinator: options.coordinatorFlags ?? [],
        },
        lease,
      );
      cleanup.push(() => stopAll(Object.values(processes)));
      await Promise.all(participantNames.map((name) => processes[name].start()));
      for (const instance of coordinatorInstances) await processes[instance].start();
      const control = await connectNats({ servers: nats.urls, name: 'chaos-control' });
      return new ChaosStack({ root, nats, processes, links, files, control });
    } catch (error) {
      for (const step of cleanup.reverse()) await step().catch(() => undefined);
      throw error;
    }
  }

  get natsUrls(): readonly string[] {
    return this.nats.urls;
  }

  /** Which coordinator leads now; undefined when none answers in time (e.g. mid-takeover). */
  async leader(): Promise<Leader | undefined> {
    try {
      const reply = await this.#control.request(subjects.leader, new Uint8Array(), {
        timeout: leaderQueryTimeoutMs,
      });
      const body = JSON.parse(new TextDecoder().decode(reply.data)) as Record<string, unknown>;
      const instance = body['instance'];
      const epoch = body['epoch'];
      if (typeof epoch !== 'number') return undefined;
      if (instance !== 'coordinator-1' && instance !== 'coordinator-2') return undefined;
      return { instance, epoch };
    } catch {
      return undefined;
    }
  }

  /** The status of a payment by client and key, as a client asks for it: on its own subject. */
  async status(clientId: string, idempotencyKey: string): Promise<StatusReply> {
    const query = encodeMessage({ v: 1, kind: 'status', clientId, idempotencyKey });
    const reply = await this.#control.request(subjects.clientStatus(clientId), query, {
      timeout: statusQueryTimeoutMs,
    });
    const answer = decodeStatusReply(reply.data);
    if (answer.kind === 'error') throw new Error(`${answer.code}: ${answer.message}`);
    return answer;
  }

  /**
   * Heals everything: every link passes, every paused process continues, every process that is
   * down is started again. Bounded by `timeoutMs`; returns what it could not bring back.
   */
  async repair(timeoutMs: number): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (const link of Object.values(this.links)) link.setMode(passMode);
    for (const node of this.nats.nodes) node.resume();
    for (const service of Object.values(this.processes)) service.resume();
    const down = this.nats.nodes.filter((node) => !node.isRunning());
    await Promise.allSettled(down.map((node) => node.restart()));
    const failed = this.nats.nodes.filter((node) => !node.isRunning()).map((node) => node.name);
    for (const name of processNames) {
      const service = this.processes[name];
      if (service.isRunning()) continue;
      if (!(await startWithRetry(service, {}, deadline))) failed.push(name);
    }
    return failed;
  }

  async stop(): Promise<void> {
    await this.#control.close().catch(() => undefined);
    await stopAll(Object.values(this.processes));
    await Promise.all(Object.values(this.links).map((link) => link.close()));
    await this.nats.stop();
  }
}

/**
 * Starts a process, again and again until `deadline` if it does not become ready (its NATS link
 * may be down at that moment). False if it never did.
 */
export async function startWithRetry(
  service: ServiceProcess,
  env: Readonly<Record<string, string>>,
  deadline: number,
): Promise<boolean> {
  while (Date.now() < deadline) {
    if (service.isRunning()) return true;
    try {
      await service.start(env);
      return true;
    } catch (error) {
      if (!(error instanceof ServiceStartError)) throw error;
      await sleep(300);
    }
  }
  return service.isRunning();
}

async function stopAll(services: readonly ServiceProcess[]): Promise<void> {
  await Promise.all(services.map((service) => service.stop()));
}

function databaseFiles(root: string): DatabaseFiles {
  const file = (name: 'coordinator' | ParticipantName): string => {
    mkdirSync(join(root, name), { recursive: true });
    return join(root, name, `${name}.sqlite`);
  };
  return {
    coordinator: file('coordinator'),
    bank: file('bank'),
    vendor: file('vendor'),
    customer: file('customer'),
  };
}

function seedDatabases(
  files: DatabaseFiles,
  seed: (databases: ParticipantDatabases) => void,
): void {
  openDatabase(files.coordinator, 'coordinator').close();
  const databases = {
    bank: openDatabase(files.bank, 'bank'),
    vendor: openDatabase(files.vendor, 'vendor'),
    customer: openDatabase(files.customer, 'customer'),
  };
  try {
    seed(databases);
  } finally {
    for (const db of Object.values(databases)) db.close();
  }
}

function createProcesses(
  root: string,
  files: DatabaseFiles,
  links: Readonly<Record<ProcessName, ServiceLink>>,
  env: Readonly<Record<string, string>>,
  extraFlags: { readonly participant: readonly string[]; readonly coordinator: readonly string[] },
  lease: ChaosLease,
): Record<ProcessName, ServiceProcess> {
  const participant = (name: ParticipantName): ServiceProcess =>
    new ServiceProcess({
      name,
      entry: 'participants/main.ts',
      args: [
        ...['--name', name, '--nats', links[name].natsFlag, '--db', files[name]],
        ...participantFlags,
        ...extraFlags.participant,
      ],
      logFile: join(root, name, `${name}.log`),
      env,
    });
  const coordinator = (instance: CoordinatorInstance): ServiceProcess =>
    new ServiceProcess({
      name: instance,
      entry: 'coordinator/main.ts',
      args: [
        '--nats',
        links[instance].natsFlag,
        '--db',
        files.coordinator,
        '--instance',
        instance,
        ...coordinatorFlags,
        ...leaseFlags[lease],
        ...extraFlags.coordinator,
      ],
      logFile: join(root, 'coordinator', `${instance}.log`),
      env,
    });
  return {
    bank: participant('bank'),
    vendor: participant('vendor'),
    customer: participant('customer'),
    'coordinator-1': coordinator('coordinator-1'),
    'coordinator-2': coordinator('coordinator-2'),
  };
}
