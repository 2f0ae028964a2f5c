// Launches real nats-server processes for integration tests, the demo and benchmarks.
//
// Every server binds to 127.0.0.1 only. Ports are picked by the OS before the server starts and
// written into a config file in the data dir, so a stopped or killed node restarts at the same
// address: clients configured with its URL and peers configured with its route find it again.
// Children are tracked by pid and SIGKILLed when this Node process exits, so an aborted test run
// does not leave servers behind. Only processes started here are ever signalled.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, mkdirSync, openSync, statSync } from 'node:fs';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer } from 'node:net';
import type { Server } from 'node:net';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { clientInboxPrefix, subjects, type ParticipantName } from '../common/protocol.ts';
import { stopProcess } from './service-process.ts';

export interface NatsServerOptions {
  dataDir: string;
  /** Enable JetStream (store under dataDir). Defaults to false: core NATS starts faster. */
  jetstream?: boolean;
  /** Server name; also prefixes the config, log and store paths. Defaults to "nats". */
  name?: string;
  /**
   * With users, the server requires every client connection to log in as one of them, and
   * allows it only the subjects its permissions list. Without, anyone may do anything.
   */
  users?: readonly NatsUser[];
}

export interface NatsClusterOptions {
  dataDir: string;
  /** Number of nodes; defaults to 3 so JetStream has a quorum that survives one failure. */
  size?: number;
  /** Enable clustered JetStream; defaults to true. */
  jetstream?: boolean;
  /** The same users on every node; see NatsServerOptions. */
  users?: readonly NatsUser[];
}

/** What a user may publish to and subscribe to: allow lists of subjects, wildcards allowed. */
export interface NatsPermissions {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
  /**
   * Lets the user publish one reply to the reply subject of each request it received, whatever
   * that subject is (nats-server's `allow_responses`): how a service answers clients whose
   * inboxes it may not otherwise publish to.
   */
  readonly allowResponses?: boolean;
}

export interface NatsUser {
  readonly user: string;
  /** Clear text, or a bcrypt hash (`$2a$…`), which nats-server then checks logins against. */
  readonly password: string;
  readonly permissions: NatsPermissions;
}

/** A users configuration that cannot be rendered into a safe server config. */
export class NatsUsersError extends Error {
  override readonly name = 'NatsUsersError';
}

/** The parts of Continuum, each with the NATS permissions it needs and no more. */
export type ContinuumRole =
  | { readonly kind: 'client'; readonly clientId: string }
  | { readonly kind: 'coordinator' }
  | { readonly kind: 'participant'; readonly name: ParticipantName }
  | { readonly kind: 'gateway' }
  | { readonly kind: 'operator' };

/**
 * The recommended permissions of each part (docs/operations.md):
 *
 * - a client publishes only to its own pay and status subjects and reads only its own inbox
 *   (`_INBOX_<clientId>.>`; the client library uses that inbox prefix), so it can neither speak
 *   for another client nor read another client's replies;
 * - the coordinator serves every client subject and the service status subject, answers on any
 *   reply subject (allow_responses), talks to the participants, and uses JetStream KV for its
 *   lease;
 * - a participant serves its own subject and asks the coordinator's service status subject;
 * - the gateway publishes for every client (it decides the client id from an API token);
 * - an operator's tools read the service status, in-flight, leader and stats subjects.
 *
 * Services read replies on `_INBOX.>`, which no client inbox matches.
 */
export function recommendedPermissions(role: ContinuumRole): NatsPermissions {
  switch (role.kind) {
    case 'client':
      return {
        publish: [subjects.clientPay(role.clientId), subjects.clientStatus(role.clientId)],
        subscribe: [`${clientInboxPrefix(role.clientId)}.>`],
      };
    case 'coordinator':
      return {
        publish: ['continuum.participant.*', '$JS.API.>', '$KV.>'],
        subscribe: ['continuum.coordinator.>', 'continuum.stats.coordinator', '_INBOX.>'],
        allowResponses: true,
      };
    case 'participant':
      return {
        publish: [subjects.status],
        subscribe: [subjects.participant(role.name), `continuum.stats.${role.name}`, '_INBOX.>'],
        allowResponses: true,
      };
    case 'gateway':
      return {
        publish: [subjects.clientPayAll, subjects.clientStatusAll],
        subscribe: ['_INBOX.>'],
      };
    case 'operator':
      return {
        publish: [subjects.status, subjects.inFlight, subjects.leader, 'continuum.stats.*'],
        subscribe: ['_INBOX.>'],
      };
  }
}

/** A user with the recommended permissions of its role. */
export function natsUser(user: string, password: string, role: ContinuumRole): NatsUser {
  return { user, password, permissions: recommendedPermissions(role) };
}

const userNamePattern = /^[A-Za-z0-9_-]{1,64}$/;
/**
 * Printable ASCII without spaces, quotes or backslashes: safe inside a config string whatever the
 * config parser makes of escapes, and easy to pass around in an environment variable.
 */
const passwordPattern = /^[\x21\x23-\x26\x28-\x5b\x5d-\x7e]{8,256}$/;
/** A subject or wildcard: dot-separated tokens of printable characters, no whitespace. */
const subjectPattern = /^[\x21-\x7e]+$/;

function checkUsers(users: readonly NatsUser[]): void {
  const names = new Set<string>();
  for (const { user, password, permissions } of users) {
    if (!userNamePattern.test(user)) {
      throw new NatsUsersError(
        `user ${JSON.stringify(user)} must match ${String(userNamePattern)}`,
      );
    }
    if (names.has(user)) throw new NatsUsersError(`user ${user} is listed twice`);
    names.add(user);
    if (!passwordPattern.test(password)) {
      throw new NatsUsersError(`the password of ${user} must be 8-256 printable characters`);
    }
    for (const subject of [...permissions.publish, ...permissions.subscribe]) {
      const tokens = subject.split('.');
      const tokensValid = tokens.every((token, index) => {
        if (token === '') return false;
        if (token.includes('>')) return token === '>' && index === tokens.length - 1;
        return !token.includes('*') || token === '*';
      });
      if (!subjectPattern.test(subject) || !tokensValid) {
        throw new NatsUsersError(`${user}: ${JSON.stringify(subject)} is not a subject`);
      }
    }
  }
}

export interface NatsServerHandle {
  readonly name: string;
  /** Pid of the current process; undefined while the node is not running. */
  readonly pid: number | undefined;
  readonly port: number;
  readonly url: string;
  readonly httpPort: number;
  readonly logFile: string;
  /** SIGTERM, then SIGKILL if the server has not exited within a few seconds. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit: simulates a crash. */
  kill(): Promise<void>;
  /**
   * SIGSTOP: the process stays alive but stops answering, like a hung host. Resolves once it has
   * stopped.
   */
  pause(): Promise<void>;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Start again with the same ports, config and store; stops it first if still running. */
  restart(): Promise<void>;
  isRunning(): boolean;
}

export interface NatsClusterHandle {
  readonly nodes: readonly NatsServerHandle[];
  readonly urls: readonly string[];
  node(index: number): NatsServerHandle;
  stop(): Promise<void>;
}

export class NatsServerMissingError extends Error {
  override readonly name = 'NatsServerMissingError';
}

/** The server exited during startup or did not become ready in time; message has the log tail. */
export class NatsServerStartError extends Error {
  override readonly name = 'NatsServerStartError';
}

export class NatsServerStopError extends Error {
  override readonly name = 'NatsServerStopError';
}

const INSTALL_HINT =
  'Install it as root with `apt-get install -y nats-server` (Debian package), or download a ' +
  'release from https://github.com/nats-io/nats-server/releases and set ' +
  'NATS_SERVER_BIN=/path/to/nats-server.';
const EXTRA_BIN_DIRS = ['/usr/sbin', '/usr/local/bin'];
const CLUSTER_NAME = 'continuum';
const READY_TIMEOUT_MS = 10_000;
const CLUSTER_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;
const KILL_WAIT_MS = 5_000;
const POLL_INTERVAL_MS = 50;
const PROBE_TIMEOUT_MS = 1_000;
const LOG_TAIL_LINES = 30;

export function findNatsServer(): string {
  const fromEnv = process.env['NATS_SERVER_BIN'];
  if (fromEnv !== undefined && fromEnv !== '') {
    if (isExecutableFile(fromEnv)) return fromEnv;
    throw new NatsServerMissingError(
      `NATS_SERVER_BIN=${fromEnv} is not an executable file. ${INSTALL_HINT}`,
    );
  }
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), ...EXTRA_BIN_DIRS];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, 'nats-server');
    if (isExecutableFile(candidate)) return candidate;
  }
  throw new NatsServerMissingError(
    `nats-server was not found on PATH, /usr/sbin or /usr/local/bin. ${INSTALL_HINT}`,
  );
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** A port on 127.0.0.1 that was free a moment ago (the OS picked it; others may race for it). */
/**
 * Makes the kernel SIGKILL the server when this process dies, however it dies (an exit hook does
 * not run on SIGKILL): util-linux's setpriv sets PR_SET_PDEATHSIG and then execs the server, so
 * the pid stays the server's own. Without setpriv the exit hook is the only safeguard.
 */
function withParentDeathSignal(command: readonly string[]): readonly string[] {
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  return setpriv ? [setpriv, '--pdeathsig', 'SIGKILL', '--', ...command] : command;
}

export async function freePort(): Promise<number> {
  return at(await freePorts(1), 0);
}

// Holds all listeners open until every port is known so one call never returns the same port twice.
async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await listenOnAnyPort());
    return servers.map(portOf);
  } finally {
    await Promise.all(servers.map(closeServer));
  }
}

function listenOnAnyPort(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve(server);
    });
  });
}

function portOf(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === 'string') {
    throw new Error('expected a TCP listener address');
  }
  return address.port;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
}

function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new RangeError(`index ${index} out of range 0..${items.length}`);
  return item;
}

// ---- child process bookkeeping -------------------------------------------------------------

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function trackChild(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  // Unref so a forgotten server never keeps the parent alive; the exit hook then kills it.
  child.unref();
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // 'exit' listeners run synchronously and cannot delay exit, so this never blocks shutdown.
    process.on('exit', killAllChildren);
  }
}

function killAllChildren(): void {
  for (const child of liveChildren) {
    if (!hasExited(child)) child.kill('SIGKILL');
  }
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    child.once('exit', onExit);
  });
}

// ---- probes ----------------------------------------------------------------------------------

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => {
      finish(false);
    });
    socket.once('connect', () => {
      finish(true);
    });
    socket.once('error', () => {
      finish(false);
    });
  });
}

async function fetchJson(url: string): Promise<unknown> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    return response.ok ? await response.json() : undefined;
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

// Counts distinct peers rather than routes: nats-server >= 2.10 pools several routes per peer.
function distinctRoutePeers(routez: unknown): number {
  if (!isRecord(routez) || !Array.isArray(routez['routes'])) return 0;
  const peers = new Set<string>();
  for (const route of routez['routes'] as unknown[]) {
    if (isRecord(route) && typeof route['remote_id'] === 'string') peers.add(route['remote_id']);
  }
  return peers.size;
}

function metaLeader(jsz: unknown): string {
  if (!isRecord(jsz) || !isRecord(jsz['meta_cluster'])) return '';
  const leader = jsz['meta_cluster']['leader'];
  return typeof leader === 'string' ? leader : '';
}

async function pollUntil(
  timeoutMs: number,
  check: () => Promise<boolean>,
  onTimeout: () => Error,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() >= deadline) throw onTimeout();
    await sleep(POLL_INTERVAL_MS);
  }
}

function logTail(logFile: string): string {
  try {
    const text = readFileSync(logFile, 'utf8').trimEnd();
    return text === '' ? '(log is empty)' : text.split('\n').slice(-LOG_TAIL_LINES).join('\n');
  } catch {
    return '(no log output)';
  }
}

// ---- configuration ---------------------------------------------------------------------------

interface ClusterSpec {
  port: number;
  routePorts: number[];
}

interface NodeSpec {
  name: string;
  dataDir: string;
  port: number;
  httpPort: number;
  jetstream: boolean;
  cluster: ClusterSpec | undefined;
  users: readonly NatsUser[] | undefined;
}

/** The `authorization` block: clients must log in, and may use only what they are allowed. */
function renderAuthorization(users: readonly NatsUser[]): string[] {
  const q = (value: string): string => JSON.stringify(value);
  const list = (subjectList: readonly string[]): string => `[${subjectList.map(q).join(', ')}]`;
  const lines = users.map(({ user, password, permissions }) => {
    const responses = permissions.allowResponses === true ? ', allow_responses: true' : '';
    return (
      `    {user: ${q(user)}, password: ${q(password)}, permissions: {` +
      `publish: {allow: ${list(permissions.publish)}}, ` +
      `subscribe: {allow: ${list(permissions.subscribe)}}${responses}}}`
    );
  });
  return ['authorization {', '  users = [', ...lines, '  ]', '}'];
}

// JSON string literals are valid NATS config strings, which keeps paths with spaces safe.
function renderConfig(spec: NodeSpec, storeDir: string): string {
  const q = (value: string): string => JSON.stringify(value);
  const lines = [
    `server_name: ${q(spec.name)}`,
    `listen: ${q(`127.0.0.1:${spec.port}`)}`,
    `http: ${q(`127.0.0.1:${spec.httpPort}`)}`,
    'logtime: true',
  ];
  if (spec.jetstream) lines.push(`jetstream {`, `  store_dir: ${q(storeDir)}`, `}`);
  if (spec.users !== undefined) lines.push(...renderAuthorization(spec.users));
  if (spec.cluster !== undefined) {
    const routes = spec.cluster.routePorts.map((p) => `    ${q(`nats-route://127.0.0.1:${p}`)}`);
    lines.push(
      'cluster {',
      `  name: ${q(CLUSTER_NAME)}`,
      `  listen: ${q(`127.0.0.1:${spec.cluster.port}`)}`,
      '  routes: [',
      ...routes,
      '  ]',
      '}',
    );
  }
  return lines.join('\n') + '\n';
}

/**
 * The environment a nats-server starts with: ours, with GOMAXPROCS=1 unless it is set already.
 * These servers share a small machine with the services and the tests. With one Go scheduler
 * thread per core, nats-server wakes a second thread to look for work whenever a goroutine becomes
 * runnable. On two cores it then took a quarter more CPU for the same payments, and answered a
 * tenth fewer request/replies at the messaging bound (docs/performance.md, tenth round).
 */
export function natsServerEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, GOMAXPROCS: env['GOMAXPROCS'] ?? '1' };
}

// ---- one node --------------------------------------------------------------------------------

class NatsNode implements NatsServerHandle {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly httpPort: number;
  readonly logFile: string;
  readonly #spec: NodeSpec;
  readonly #bin: string;
  readonly #configFile: string;
  readonly #peers: () => readonly NatsNode[];
  #child: ChildProcess | undefined;
  #spawnError: Error | undefined;

  constructor(spec: NodeSpec, bin: string, peers: () => readonly NatsNode[]) {
    this.#spec = spec;
    this.#bin = bin;
    this.#peers = peers;
    this.name = spec.name;
    this.port = spec.port;
    this.url = `nats://127.0.0.1:${spec.port}`;
    this.httpPort = spec.httpPort;
    this.logFile = join(spec.dataDir, `${spec.name}.log`);
    this.#configFile = join(spec.dataDir, `${spec.name}.conf`);
    const storeDir = join(spec.dataDir, `${spec.name}-jetstream`);
    writeFileSync(this.#configFile, renderConfig(spec, storeDir));
  }

  get pid(): number | undefined {
    return this.isRunning() ? this.#child?.pid : undefined;
  }

  isRunning(): boolean {
    return this.#child !== undefined && !hasExited(this.#child) && this.#spawnError === undefined;
  }

  /** Spawns the process and waits until it accepts TCP connections; kills it on failure. */
  async launch(): Promise<void> {
    const fd = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      // The child gets its own copy of the descriptor during spawn, so closing ours is safe.
      const [command, ...args] = withParentDeathSignal([this.#bin, '-c', this.#configFile]);
      // A session of its own, as a service's (ops/service-process.ts): paused in ours, it would be
      // resumed early by the SIGCONT the kernel sends an orphaned process group.
      child = spawn(command ?? this.#bin, args, {
        stdio: ['ignore', fd, fd],
        detached: true,
        env: natsServerEnvironment(process.env),
      });
    } finally {
      closeSync(fd);
    }
    this.#child = child;
    this.#spawnError = undefined;
    child.once('error', (error) => {
      this.#spawnError = error;
    });
    trackChild(child);
    try {
      await pollUntil(
        READY_TIMEOUT_MS,
        () => {
          this.#assertAlive();
          return canConnect(this.port);
        },
        () => this.#startError(`did not accept connections within ${READY_TIMEOUT_MS} ms`),
      );
    } catch (error) {
      await this.kill();
      throw error;
    }
  }

  /** For cluster nodes: waits for routes to every running peer and, with quorum, a JS leader. */
  async waitClustered(): Promise<void> {
    if (this.#spec.cluster === undefined) return;
    const all = this.#peers();
    const runningPeers = all.filter((node) => node !== this && node.isRunning()).length;
    const base = `http://127.0.0.1:${this.httpPort}`;
    await pollUntil(
      CLUSTER_TIMEOUT_MS,
      async () => {
        this.#assertAlive();
        return distinctRoutePeers(await fetchJson(`${base}/routez`)) >= runningPeers;
      },
      () => this.#startError(`did not route to ${runningPeers} peers in ${CLUSTER_TIMEOUT_MS} ms`),
    );
    // Without a majority no meta leader can be elected, so waiting for one would only time out.
    const hasQuorum = runningPeers + 1 > all.length / 2;
    if (!this.#spec.jetstream || !hasQuorum) return;
    await pollUntil(
      CLUSTER_TIMEOUT_MS,
      async () => {
        this.#assertAlive();
        return metaLeader(await fetchJson(`${base}/jsz`)) !== '';
      },
      () => this.#startError(`saw no JetStream meta leader within ${CLUSTER_TIMEOUT_MS} ms`),
    );
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined || hasExited(child)) return;
    child.kill('SIGTERM');
    // A SIGSTOPped server cannot act on SIGTERM until it is continued.
    child.kill('SIGCONT');
    if (await waitForExit(child, STOP_GRACE_MS)) return;
    await this.kill();
  }

  async kill(): Promise<void> {
    const child = this.#child;
    if (child === undefined || hasExited(child)) return;
    child.kill('SIGKILL');
    if (!(await waitForExit(child, KILL_WAIT_MS))) {
      throw new NatsServerStopError(`${this.name} (pid ${child.pid}) survived SIGKILL`);
    }
  }

  async pause(): Promise<void> {
    const pid = this.#child?.pid;
    if (pid === undefined || !this.isRunning()) return;
    await stopProcess(pid);
  }

  resume(): void {
    if (this.isRunning()) this.#child?.kill('SIGCONT');
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
    await this.waitClustered();
  }

  // Fails fast with the log when the process died, instead of polling until the timeout.
  #assertAlive(): void {
    if (this.#spawnError !== undefined) {
      throw this.#startError(`could not be spawned: ${this.#spawnError.message}`);
    }
    const child = this.#child;
    if (child === undefined || hasExited(child)) {
      const how = child?.signalCode ?? `code ${child?.exitCode ?? '?'}`;
      throw this.#startError(`exited during startup (${how})`);
    }
  }

  #startError(what: string): NatsServerStartError {
    return new NatsServerStartError(
      `nats-server ${this.name} on ${this.url} ${what}. Log ${this.logFile} ends with:\n` +
        logTail(this.logFile),
    );
  }
}

// ---- public entry points ---------------------------------------------------------------------

export async function startNatsServer(options: NatsServerOptions): Promise<NatsServerHandle> {
  if (options.users !== undefined) checkUsers(options.users);
  const bin = findNatsServer();
  mkdirSync(options.dataDir, { recursive: true });
  const [port, httpPort] = await freePorts(2);
  if (port === undefined || httpPort === undefined) throw new Error('port allocation failed');
  const node = new NatsNode(
    {
      name: options.name ?? 'nats',
      dataDir: options.dataDir,
      port,
      httpPort,
      jetstream: options.jetstream ?? false,
      cluster: undefined,
      users: options.users,
    },
    bin,
    () => [],
  );
  await node.launch();
  return node;
}

export async function startNatsCluster(options: NatsClusterOptions): Promise<NatsClusterHandle> {
  const size = options.size ?? 3;
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`cluster size must be a positive integer, got ${size}`);
  }
  if (options.users !== undefined) checkUsers(options.users);
  const bin = findNatsServer();
  mkdirSync(options.dataDir, { recursive: true });
  // All ports are fixed up front: every node's config must name every other node's route port.
  const ports = await freePorts(size * 3);
  const clusterPorts = Array.from({ length: size }, (_, i) => at(ports, i * 3 + 1));
  const nodes: NatsNode[] = [];
  for (let i = 0; i < size; i++) {
    const spec: NodeSpec = {
      name: `node-${i}`,
      dataDir: options.dataDir,
      port: at(ports, i * 3),
      httpPort: at(ports, i * 3 + 2),
      jetstream: options.jetstream ?? true,
      cluster: { port: at(clusterPorts, i), routePorts: clusterPorts.filter((_, j) => j !== i) },
      users: options.users,
    };
    nodes.push(new NatsNode(spec, bin, () => nodes));
  }
  try {
    await Promise.all(nodes.map((node) => node.launch()));
    await Promise.all(nodes.map((node) => node.waitClustered()));
  } catch (error) {
    await Promise.allSettled(nodes.map((node) => node.kill()));
    throw error;
  }
  return {
    nodes,
    urls: nodes.map((node) => node.url),
    node: (index) => at(nodes, index),
    stop: async () => {
      await Promise.all(nodes.map((node) => node.stop()));
    },
  };
}
