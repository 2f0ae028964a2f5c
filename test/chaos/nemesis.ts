/**
 * The nemesis: breaks things on a seeded schedule while the clients pay, and records every fault in
 * the history (an `invoke`/`info` pair when a fault starts and another when it stops).
 *
 * Theory of operation. A few lanes (two by default) run faults one after another, so up to that
 * many overlap. Kinds are drawn from a shuffled deck of the enabled kinds, refilled when empty, so
 * a short run still covers every kind and a long one draws them evenly. A fault reserves what it
 * breaks (a participant, the coordinators, the NATS cluster) so two faults never fight over one
 * process; `restart-all` waits for the other lanes and takes everything. A supervisor restarts
 * any process that died without a fault to account for it, and records that as `unexpected-exit`.
 * `stop` ends every fault at once (each restores what it broke) and returns when all have.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errorText } from '../../common/log.ts';
import {
  coordinatorCrashPoints,
  participantCrashPoints,
  type CrashPoint,
} from '../../common/crash.ts';
import { participantNames, type ParticipantName } from '../../common/protocol.ts';
import type { NatsServerHandle } from '../../ops/nats-server.ts';
import { processState, type ServiceProcess } from '../../ops/service-process.ts';
import { holdWriteLock, type WriteLockHolder } from '../helpers/write-lock-holder.ts';
import type { FaultKind } from './faults.ts';
import type { HistoryWriter } from './history.ts';
import {
  coordinatorInstances,
  processNames,
  startWithRetry,
  type ChaosStack,
  type CoordinatorInstance,
  type ProcessName,
} from './launcher.ts';
import { describeMode, passMode, type LinkMode } from './proxy.ts';
import type { Rng } from './random.ts';
import { paymentDeadlineMs, type Workload } from './workload.ts';

export interface NemesisOptions {
  readonly stack: ChaosStack;
  readonly history: HistoryWriter;
  readonly rng: Rng;
  readonly kinds: readonly FaultKind[];
  readonly workload: Workload;
  /** The crash points the `crash-point` fault may arm. */
  readonly crashPoints: readonly CrashPoint[];
  /** Faults that may be under way at once. */
  readonly lanes: number;
}

type Detail = Readonly<Record<string, unknown>>;

/** Ends a fault before its planned duration: wrapped, because an async function flattens it. */
interface EarlyEnd {
  readonly until: Promise<unknown>;
}

interface FaultPlan {
  readonly kind: FaultKind;
  readonly target: string;
  readonly resources: readonly string[];
  readonly durationMs: number;
  readonly detail: Detail;
  /** Breaks something; may return what ends the fault early (a crash point reached). */
  readonly start: () => Promise<EarlyEnd | undefined>;
  /** Restores what start broke; returns what happened, for the history. */
  readonly stop: () => Promise<Detail>;
}

export interface ActiveFault {
  readonly id: number;
  readonly kind: FaultKind;
  readonly target: string;
}

const everything = '*';
const restartBoundMs = 30_000;
const gapMsMin = 100;
const gapMsMax = 800;
const supervisorPeriodMs = 500;
const exclusiveWaitMsMax = 20_000;
/** How long an armed process may take to reach its crash point before it is restarted unarmed. */
const crashPointWaitMs = 6_000;

export class Nemesis {
  readonly counts = new Map<FaultKind, number>();
  readonly unexpectedExits: { readonly name: string; readonly time: number }[] = [];
  readonly #options: NemesisOptions;
  readonly #active = new Map<number, ActiveFault>();
  readonly #busy = new Set<string>();
  readonly #wakers = new Set<() => void>();
  readonly #running: Promise<void>[] = [];
  #deck: FaultKind[] = [];
  #exclusivePending = false;
  #stopping = false;
  #faults = 0;

  constructor(options: NemesisOptions) {
    this.#options = options;
  }

  get active(): readonly ActiveFault[] {
    return [...this.#active.values()];
  }

  get total(): number {
    return this.#faults;
  }

  start(): void {
    if (this.#options.kinds.length > 0) {
      for (let lane = 0; lane < this.#options.lanes; lane += 1) {
        this.#running.push(this.#lane(this.#options.rng.fork(`lane-${lane}`)));
      }
    }
    this.#running.push(this.#supervise());
  }

  /** Ends every fault (each restores what it broke) and stops drawing new ones. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const wake of this.#wakers) wake();
    await Promise.all(this.#running);
  }

  /** A method, not the field, so the compiler does not assume it unchanged across an await. */
  #halted(): boolean {
    return this.#stopping;
  }

  /** Sleeps, waking early when the nemesis stops or `until` settles. */
  async #pause(ms: number, until?: Promise<unknown>): Promise<void> {
    if (this.#stopping) return;
    let wake = (): void => undefined;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    this.#wakers.add(wake);
    const timer = setTimeout(wake, ms);
    void until?.then(wake, wake);
    await woken;
    clearTimeout(timer);
    this.#wakers.delete(wake);
  }

  async #lane(rng: Rng): Promise<void> {
    await this.#pause(rng.int(gapMsMin, gapMsMax));
    while (!this.#stopping) {
      if (this.#exclusivePending) {
        await this.#pause(100);
        continue;
      }
      const kind = this.#draw(rng);
      const plan =
        kind === 'restart-all' ? await this.#exclusive(rng) : await this.#plan(kind, rng);
      // Only the lane that asked for exclusivity gives it up.
      const exclusive = kind === 'restart-all';
      if (plan === undefined || !this.#reserve(plan.resources)) {
        if (exclusive) this.#exclusivePending = false;
        this.#deck.splice(1, 0, kind);
        await this.#pause(100);
        continue;
      }
      try {
        await this.#perform(plan);
      } finally {
        for (const resource of plan.resources) this.#busy.delete(resource);
        if (exclusive) this.#exclusivePending = false;
      }
      await this.#pause(rng.int(gapMsMin, gapMsMax));
    }
  }

  #draw(rng: Rng): FaultKind {
    if (this.#deck.length === 0) this.#deck = rng.shuffle(this.#options.kinds);
    return this.#deck.shift() as FaultKind;
  }

  #reserve(resources: readonly string[]): boolean {
    if (this.#stopping || this.#busy.has(everything)) return false;
    if (resources.includes(everything) && this.#busy.size > 0) return false;
    if (resources.some((resource) => this.#busy.has(resource))) return false;
    for (const resource of resources) this.#busy.add(resource);
    return true;
  }

  /** `restart-all` waits for every other fault to end; the other lanes start none meanwhile. */
  async #exclusive(rng: Rng): Promise<FaultPlan | undefined> {
    this.#exclusivePending = true;
    const deadline = Date.now() + exclusiveWaitMsMax;
    while (this.#busy.size > 0 && Date.now() < deadline && !this.#stopping) await this.#pause(50);
    return this.#restartAll(rng);
  }

  async #perform(plan: FaultPlan): Promise<void> {
    const { history } = this.#options;
    this.#faults += 1;
    const id = this.#faults;
    this.counts.set(plan.kind, (this.counts.get(plan.kind) ?? 0) + 1);
    const base = { fault: id, target: plan.target, ...plan.detail };
    this.#active.set(id, { id, kind: plan.kind, target: plan.target });
    history.append('invoke', plan.kind, 'nemesis', { ...base, phase: 'start' });
    let early: EarlyEnd | undefined;
    try {
      early = await plan.start();
      history.append('info', plan.kind, 'nemesis', { ...base, phase: 'start' });
    } catch (error) {
      history.append('info', plan.kind, 'nemesis', { ...base, phase: 'start' }, errorText(error));
    }
    await this.#pause(plan.durationMs, early?.until);
    history.append('invoke', plan.kind, 'nemesis', { ...base, phase: 'stop' });
    try {
      const result = await plan.stop();
      history.append('info', plan.kind, 'nemesis', { ...base, ...result, phase: 'stop' });
    } catch (error) {
      history.append('info', plan.kind, 'nemesis', { ...base, phase: 'stop' }, errorText(error));
    }
    this.#active.delete(id);
  }

  async #plan(kind: FaultKind, rng: Rng): Promise<FaultPlan | undefined> {
    switch (kind) {
      case 'kill-participant':
        return this.#killParticipant(rng);
      case 'pause-participant':
        return this.#pauseParticipant(rng);
      case 'lock-participant':
        return this.#lockParticipant(rng);
      case 'kill-coordinator':
      case 'pause-coordinator':
        return this.#coordinatorFault(kind, rng);
      case 'kill-nats':
      case 'pause-nats':
        return this.#natsFault(kind, rng);
      case 'link-cut':
      case 'link-delay':
      case 'link-drop':
      case 'link-stall':
      case 'link-one-way':
      case 'link-duplicate':
        return this.#linkFault(kind, rng);
      case 'retry-storm':
        return this.#retryStorm(rng);
      case 'restart-all':
        return this.#restartAll(rng);
      case 'crash-point':
        return this.#crashPoint(rng);
    }
  }

  #killParticipant(rng: Rng): FaultPlan {
    const name = rng.pick(participantNames);
    const service = this.#options.stack.processes[name];
    return {
      kind: 'kill-participant',
      target: name,
      resources: [`svc:${name}`],
      durationMs: rng.int(500, 3_000),
      detail: { pid: service.pid },
      start: async () => {
        await service.kill();
        return undefined;
      },
      stop: () => restart(service),
    };
  }

  #pauseParticipant(rng: Rng): FaultPlan {
    const name = rng.pick(participantNames);
    const service = this.#options.stack.processes[name];
    const pause = new Pause(service);
    return {
      kind: 'pause-participant',
      target: name,
      resources: [`svc:${name}`],
      durationMs: rng.int(1_000, 5_000),
      detail: { pid: service.pid },
      start: async () => {
        await pause.start();
        return undefined;
      },
      stop: () => Promise.resolve(pause.stop()),
    };
  }

  /**
   * Another process (the party's own systems, which write to its database) takes a participant's
   * write lock and keeps it: the participant waits for it, or past the busy timeout answers
   * `unavailable`, and never exits (docs/decisions.md).
   */
  #lockParticipant(rng: Rng): FaultPlan {
    const name = rng.pick(participantNames);
    const durationMs = rng.int(1_000, 8_000);
    let holder: WriteLockHolder | undefined;
    return {
      kind: 'lock-participant',
      target: name,
      resources: [`svc:${name}`],
      durationMs,
      detail: {},
      start: async () => {
        const started = holdWriteLock(this.#options.stack.files[name], { locked: [] }, durationMs);
        holder = started;
        const exited = started.exited.then(() => false);
        if (!(await Promise.race([started.locked.then(() => true), exited]))) {
          const code = await started.exited;
          throw new Error(`the lock holder exited (${String(code)}) before it held the lock`);
        }
        return { until: started.exited };
      },
      stop: async () => ({ holderExit: (await holder?.exited) ?? null }),
    };
  }

  async #coordinatorFault(
    kind: 'kill-coordinator' | 'pause-coordinator',
    rng: Rng,
  ): Promise<FaultPlan> {
    const { instance, known } = await this.#activeCoordinator(rng);
    const service = this.#options.stack.processes[instance];
    const kill = kind === 'kill-coordinator';
    const pause = new Pause(service);
    return {
      kind,
      target: instance,
      resources: ['coordinators'],
      durationMs: kill ? rng.int(300, 2_000) : rng.int(800, 4_000),
      detail: { pid: service.pid, leaderKnown: known },
      start: async () => {
        if (kill) await service.kill();
        else await pause.start();
        return undefined;
      },
      stop: async () => (kill ? restart(service) : pause.stop()),
    };
  }

  #natsFault(kind: 'kill-nats' | 'pause-nats', rng: Rng): FaultPlan {
    const node = rng.pick(this.#options.stack.nats.nodes);
    const kill = kind === 'kill-nats';
    const pause = new Pause(node);
    return {
      kind,
      target: node.name,
      resources: ['nats'],
      durationMs: kill ? rng.int(1_000, 4_000) : rng.int(1_000, 5_000),
      detail: { pid: node.pid },
      start: async () => {
        if (kill) await node.kill();
        else await pause.start();
        return undefined;
      },
      stop: async () => (kill ? restartNode(node) : pause.stop()),
    };
  }

  async #linkFault(kind: LinkFaultKind, rng: Rng): Promise<FaultPlan> {
    const choice = rng.pick(['bank', 'vendor', 'customer', 'active', 'standby'] as const);
    let name: ProcessName;
    if (choice === 'active' || choice === 'standby') {
      const { instance } = await this.#activeCoordinator(rng);
      name = choice === 'active' ? instance : otherCoordinator(instance);
    } else {
      name = choice;
    }
    const mode = linkMode(kind, rng);
    const link = this.#options.stack.links[name];
    let before = link.damage;
    const coordinator = (coordinatorInstances as readonly string[]).includes(name);
    return {
      kind,
      target: name,
      resources: [coordinator ? 'coordinators' : `svc:${name}`],
      durationMs: kind === 'link-cut' ? rng.int(500, 3_000) : rng.int(1_000, 5_000),
      detail: { mode: describeMode(mode) },
      start: () => {
        before = link.damage;
        link.setMode(mode);
        return Promise.resolve(undefined);
      },
      stop: () => {
        link.setMode(passMode);
        // What the fault did, for the history: messages lost, and messages copied (whose copies
        // may still be on their way).
        const after = link.damage;
        return Promise.resolve({
          lost: after.lost - before.lost,
          copied: after.copied - before.copied,
        });
      },
    };
  }

  #retryStorm(rng: Rng): FaultPlan {
    const size = rng.int(16, 96);
    let storm: { key: string; done: Promise<void> } | undefined;
    return {
      kind: 'retry-storm',
      target: 'chaos-storm',
      resources: ['storm'],
      durationMs: paymentDeadlineMs + 2_000,
      detail: { requests: size },
      start: () => {
        storm = this.#options.workload.storm(size, rng);
        return Promise.resolve({ until: storm.done });
      },
      stop: async () => {
        await storm?.done;
        return { key: storm?.key };
      },
    };
  }

  #restartAll(rng: Rng): FaultPlan {
    const { stack } = this.#options;
    const services = processNames.map((name) => stack.processes[name]);
    return {
      kind: 'restart-all',
      target: 'everything',
      resources: [everything],
      durationMs: rng.int(300, 1_500),
      detail: {},
      start: async () => {
        await Promise.all([
          ...services.map((service) => service.kill()),
          ...stack.nats.nodes.map((node) => node.kill()),
        ]);
        return undefined;
      },
      stop: async () => {
        const nodes = await Promise.all(stack.nats.nodes.map(restartNode));
        const deadline = Date.now() + restartBoundMs;
        const started = await Promise.all(
          participantNames.map((name) => startWithRetry(stack.processes[name], {}, deadline)),
        );
        for (const instance of coordinatorInstances) {
          started.push(await startWithRetry(stack.processes[instance], {}, deadline));
        }
        const natsUp = nodes.every((node) => node['restarted'] === true);
        return { restarted: natsUp && started.every(Boolean) };
      },
    };
  }

  async #crashPoint(rng: Rng): Promise<FaultPlan | undefined> {
    const points = this.#options.crashPoints;
    if (points.length === 0) return undefined;
    const point = rng.pick(points);
    if ((participantCrashPoints as readonly string[]).includes(point)) {
      return this.#participantCrashPoint(point, rng.pick(participantNames));
    }
    const { instance } = await this.#activeCoordinator(rng);
    return this.#coordinatorCrashPoint(point, instance);
  }

  #participantCrashPoint(point: CrashPoint, name: ParticipantName): FaultPlan {
    const service = this.#options.stack.processes[name];
    return {
      kind: 'crash-point',
      target: name,
      resources: [`svc:${name}`],
      durationMs: crashPointWaitMs,
      detail: { point },
      start: async () => {
        await service.kill();
        await startWithRetry(service, { CONTINUUM_CRASH_AT: point }, Date.now() + restartBoundMs);
        return { until: service.exited() };
      },
      stop: async () => {
        const reached = !service.isRunning();
        await service.kill();
        return { reached, ...(await restart(service)) };
      },
    };
  }

  /**
   * Arms the standby and kills the active coordinator, so the armed one takes over and reaches
   * the point with payments of its own; the old active one comes back (unarmed) once it has.
   */
  #coordinatorCrashPoint(point: CrashPoint, active: CoordinatorInstance): FaultPlan {
    const { stack } = this.#options;
    const armed = stack.processes[otherCoordinator(active)];
    const old = stack.processes[active];
    return {
      kind: 'crash-point',
      target: otherCoordinator(active),
      resources: ['coordinators'],
      durationMs: crashPointWaitMs,
      detail: { point },
      start: async () => {
        const deadline = Date.now() + restartBoundMs;
        await armed.kill();
        await startWithRetry(armed, { CONTINUUM_CRASH_AT: point }, deadline);
        await old.kill();
        const takenOver = async (): Promise<boolean> =>
          !armed.isRunning() || (await stack.leader())?.instance === armed.spec.name;
        const until = Date.now() + 3_000;
        while (Date.now() < until && !(await takenOver())) await sleep(50);
        await startWithRetry(old, {}, deadline);
        return { until: armed.exited() };
      },
      stop: async () => {
        const reached = !armed.isRunning();
        await armed.kill();
        return { reached, ...(await restart(armed)) };
      },
    };
  }

  async #activeCoordinator(rng: Rng): Promise<{ instance: CoordinatorInstance; known: boolean }> {
    const leader = await this.#options.stack.leader();
    if (leader !== undefined) return { instance: leader.instance, known: true };
    return { instance: rng.pick(coordinatorInstances), known: false };
  }

  /** Restarts whatever died with no fault to account for it, and records it. */
  async #supervise(): Promise<void> {
    const { stack, history } = this.#options;
    while (!this.#stopping) {
      await this.#pause(supervisorPeriodMs);
      if (this.#halted() || this.#exclusivePending) continue;
      for (const name of processNames) {
        const service = stack.processes[name];
        const resource = name.startsWith('coordinator') ? 'coordinators' : `svc:${name}`;
        if (service.isRunning() || !this.#reserve([resource])) continue;
        try {
          if (service.isRunning()) continue;
          this.unexpectedExits.push({ name, time: history.now() });
          const tail = service.logTail(30);
          const exit = service.exitStatus ?? 'unknown';
          history.append('info', 'unexpected-exit', 'nemesis', { target: name, exit, log: tail });
          await restart(service);
        } finally {
          this.#busy.delete(resource);
        }
      }
    }
  }
}

async function restart(service: ServiceProcess): Promise<Detail> {
  const restarted = await startWithRetry(service, {}, Date.now() + restartBoundMs);
  return { restarted, pid: service.pid };
}

async function restartNode(node: NatsServerHandle): Promise<Detail> {
  try {
    await node.restart();
    return { restarted: true, pid: node.pid };
  } catch (error) {
    return { restarted: false, error: errorText(error) };
  }
}

/**
 * A pause fault's two ends: SIGSTOP to the process running at the start, and at the stop SIGCONT
 * and whether that same process was still stopped. If something else resumed or ended it early,
 * the run did not inject what its history says, and the checker reports the fault as lost
 * (docs/chaos.md). A process not running at the start was not paused, and no claim is made.
 */
class Pause {
  readonly #target: ServiceProcess | NatsServerHandle;
  #pid: number | undefined;

  constructor(target: ServiceProcess | NatsServerHandle) {
    this.#target = target;
  }

  async start(): Promise<void> {
    this.#pid = this.#target.pid;
    await this.#target.pause();
  }

  stop(): Detail {
    const stoppedToTheEnd = processState(this.#pid) === 'T';
    this.#target.resume();
    return this.#pid === undefined ? { paused: false } : { stoppedToTheEnd };
  }
}

function otherCoordinator(instance: CoordinatorInstance): CoordinatorInstance {
  return instance === 'coordinator-1' ? 'coordinator-2' : 'coordinator-1';
}

type LinkFaultKind = Extract<FaultKind, `link-${string}`>;

function linkMode(kind: LinkFaultKind, rng: Rng): LinkMode {
  switch (kind) {
    case 'link-cut':
      return { kind: 'cut' };
    case 'link-delay': {
      const delayMs = rng.int(20, 400);
      return { kind: 'delay', delayMs, jitterMs: rng.int(0, Math.floor(delayMs / 2)) };
    }
    case 'link-drop':
      return { kind: 'drop', probability: rng.int(10, 60) / 100 };
    case 'link-stall':
      return { kind: 'stall' };
    case 'link-one-way':
      return { kind: 'one-way', lose: rng.pick(['to-nats', 'from-nats'] as const) };
    case 'link-duplicate':
      return {
        kind: 'duplicate',
        probability: rng.int(10, 50) / 100,
        lateMsMax: rng.int(50, 2_000),
      };
  }
}

/** Every crash point, for `--crash-points` and the default of the `crash-point` fault. */
export const allCrashPoints: readonly CrashPoint[] = [
  ...coordinatorCrashPoints,
  ...participantCrashPoints,
];
