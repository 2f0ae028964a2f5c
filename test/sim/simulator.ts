/**
 * The deterministic simulator: one seed, one world, one run.
 *
 * A world holds the real coordinator and participant machines inside simulated shells, the
 * simulated network and clients, a virtual clock and one event queue. Nothing in it reads the
 * wall clock or `Math.random`: every choice comes from a generator seeded by the run's seed, so a
 * seed replays exactly, step for step. The run has two phases. During the chaos phase the world
 * injects faults (lost, duplicated, delayed messages; partitions and one-way cuts; crashes, also
 * aimed inside writes; pauses) while the clients make payments. Then everything heals: crashed
 * processes restart, paused ones resume, the network stops misbehaving, and a bounded quiet period
 * follows, after which liveness is checked. Safety is checked at every step along the way.
 */
import { assert } from '../../common/assert.ts';
import { leaseTimings } from '../../coordinator/core/lease-timing.ts';
import { participantNames, type ParticipantName } from '../../common/protocol.ts';
import { SimClients } from './clients.ts';
import { SimCoordinator, SimLease } from './coordinator-shell.ts';
import { EventQueue } from './event-queue.ts';
import { Checker, type CheckedWorld } from './invariants.ts';
import { SimJournal } from './journal.ts';
import type { MutationName } from './mutations.ts';
import { SimNetwork } from './network.ts';
import { throughWire, WireError } from './wire.ts';
import { SimParticipant } from './participant-shell.ts';
import { Random } from './random.ts';
import { SimLedger } from './storage.ts';
import { defaultScale, drawParameters, type Scale, type SwarmParameters } from './swarm.ts';
import { shorten, Trace } from './trace.ts';
import {
  isProcessName,
  type CoordinatorName,
  type FaultKind,
  type NodeName,
  type Packet,
  type ProcessContext,
  type ProcessName,
  type SimEvent,
  type Violation,
  type ViolationKind,
} from './world.ts';

export interface RunOptions {
  readonly mutation?: MutationName;
  readonly scale?: Scale;
  /** How many of the last events a failure prints. */
  readonly traceLines?: number;
  /** Keep and return the whole trace (for replay comparisons); slower. */
  readonly fullTrace?: boolean;
  /** A run that takes more steps than this is reported as a livelock. */
  readonly stepsMax?: number;
}

export interface SeedResult {
  readonly seed: number;
  readonly steps: number;
  readonly virtualMs: number;
  readonly faults: Readonly<Partial<Record<FaultKind, number>>>;
  readonly committed: number;
  /** Aborted by a NO vote; aborted by the coordinator (deadline, or restart before deciding). */
  readonly abortedByVote: number;
  readonly abortedByCoordinator: number;
  readonly keyMismatches: number;
  readonly violation: Violation | undefined;
  /** The last `traceLines` events on failure, every event with `fullTrace`, else empty. */
  readonly trace: readonly string[];
}

/** Virtual time starts at a realistic epoch, so machines see plausible timestamps. */
const startMs = 1_700_000_000_000;
const traceLinesDefault = 60;
const stepsMaxDefault = 2_000_000;
/** Steps at one virtual instant past which the clock is clearly stuck (a timer loop). */
const stepsPerInstantMax = 100_000;

export function runSeed(seed: number, options: RunOptions = {}): SeedResult {
  return new World(seed, options).run();
}

class World implements ProcessContext, CheckedWorld {
  now = startMs;
  failed = false;
  chaos = true;
  readonly rng: Random;
  readonly params: SwarmParameters;
  readonly checker: Checker;
  readonly mutations: ReadonlySet<string>;
  readonly journal: SimJournal;
  readonly #coordinators: SimCoordinator[] = [];
  readonly #seed: number;
  readonly #options: RunOptions;
  readonly #queue = new EventQueue<SimEvent>();
  readonly #network: SimNetwork;
  readonly #faultRng: Random;
  readonly #participants = new Map<ParticipantName, SimParticipant>();
  readonly #clients: SimClients;
  readonly #trace: Trace;
  readonly #faults: Partial<Record<FaultKind, number>> = {};
  readonly #pauses = new Map<ProcessName, number>();
  #violation: Violation | undefined;
  #steps = 0;
  #nextRequestId = 1;
  #nextTxId = 1;
  readonly #txCreatedAt = new Map<string, number>();
  #nextPause = 1;
  /** Which member of the coordinators' queue group NATS hands a request to. */
  readonly #routeRng: Random;

  constructor(seed: number, options: RunOptions) {
    this.#seed = seed;
    this.#options = options;
    const root = new Random(seed);
    // Parameters come first and from their own stream: a mutation never changes the workload.
    this.params = drawParameters(root.fork(), options.scale ?? defaultScale);
    this.#network = new SimNetwork(this, root.fork(), this.params.network);
    this.#faultRng = root.fork();
    const clientRng = root.fork();
    this.rng = root.fork();
    this.#routeRng = root.fork();
    this.mutations = new Set(options.mutation === undefined ? [] : [options.mutation]);
    this.#trace = new Trace(options.traceLines ?? traceLinesDefault, options.fullTrace === true);
    // Test-only mutation: see test/sim/mutations.ts
    const purgeRule = this.mutations.has('purge-by-age') ? 'begun-before-cutoff' : undefined;
    this.journal = new SimJournal(this.params.keys?.retentionMs, purgeRule, (record) =>
      this.checker.onRecordDurable(record),
    );
    this.checker = new Checker(this);
    const config = { ...this.params.coordinator, mutations: this.mutations };
    const { standby } = this.params;
    const lease = standby && {
      lease: new SimLease(),
      store: standby.leaseStore,
      ttlMs: standby.leaseTtlMs,
      ...leaseTimings(standby.leaseTtlMs),
    };
    const names: CoordinatorName[] = standby ? ['coordinator', 'coordinator-2'] : ['coordinator'];
    for (const name of names) {
      this.#coordinators.push(new SimCoordinator(name, this, config, this.journal, lease));
    }
    for (const name of participantNames) this.#participants.set(name, this.#newParticipant(name));
    this.#clients = new SimClients(this, clientRng, this.params.workload);
  }

  barrierOf(participant: ParticipantName): SimParticipant['barrier'] {
    return this.#participant(participant).barrier;
  }

  run(): SeedResult {
    this.trace('world', 'params', JSON.stringify(this.params));
    for (const node of this.#processes()) node.start();
    this.#clients.start();
    const { faults, chaosMs, quietMs } = this.params;
    if (faults.kinds.length > 0) this.#scheduleFault();
    this.schedule(startMs + chaosMs, { kind: 'chaos-end' });
    this.#loop(startMs + chaosMs + quietMs);
    if (!this.failed) this.#checkLiveness();
    return this.#result();
  }

  // ---------------------------------------------------------------------------------------------
  // ProcessContext: what processes, clients and the network may do to the world.

  schedule(at: number, event: SimEvent): void {
    this.#queue.push(at, event);
  }

  send(packet: Packet): void {
    if (!this.params.wire) {
      this.#network.send(packet);
      return;
    }
    let decoded: Packet;
    try {
      decoded = throughWire(packet);
      this.count('message-through-wire');
    } catch (error) {
      if (!(error instanceof WireError)) throw error;
      this.fail('undecodable', error.message);
      return;
    }
    this.#network.send(decoded);
  }

  trace(node: string, what: string, detail?: unknown): void {
    this.#trace.add(this.now - startMs, this.#steps, node, what, detail);
  }

  count(kind: FaultKind): void {
    this.#faults[kind] = (this.#faults[kind] ?? 0) + 1;
  }

  fail(kind: ViolationKind, message: string): void {
    if (this.failed) return;
    this.failed = true;
    const atMs = this.now - startMs;
    this.#violation = { kind, message: shorten(message), atMs, step: this.#steps };
    this.trace('world', 'VIOLATED', `${kind}: ${message}`);
  }

  crash(node: ProcessName, why: FaultKind): void {
    const process = this.#process(node);
    if (!process.up) return;
    this.count(why);
    this.trace(node, 'crash', why);
    process.crash();
    this.#pauses.delete(node);
    const restartAt = this.now + this.#faultRng.int(0, this.params.faults.downMsMax);
    this.schedule(restartAt, { kind: 'restart', node, incarnation: process.incarnation });
  }

  nextRequestId(): number {
    const id = this.#nextRequestId;
    this.#nextRequestId += 1;
    return id;
  }

  reachesLease(node: ProcessName): boolean {
    return this.#network.reachesLease(node);
  }

  /** Shaped as a ULID, which is what the decoders accept: `0TX` and 23 digits. */
  nextTxId(): string {
    const id = `0TX${String(this.#nextTxId).padStart(23, '0')}`;
    this.#nextTxId += 1;
    this.#txCreatedAt.set(id, this.now);
    return id;
  }

  txCreatedAt(txId: string): number {
    const createdAt = this.#txCreatedAt.get(txId);
    assert(createdAt !== undefined, `${txId} was made by nextTxId`);
    return createdAt;
  }

  // ---------------------------------------------------------------------------------------------
  // The loop and the events.

  #loop(endAt: number): void {
    const stepsMax = this.#options.stepsMax ?? stepsMaxDefault;
    let instant = Number.NaN;
    let stepsAtInstant = 0;
    while (!this.failed) {
      const next = this.#queue.pop();
      if (next === undefined || next.at > endAt) return;
      this.now = next.at;
      this.#steps += 1;
      stepsAtInstant = next.at === instant ? stepsAtInstant + 1 : 0;
      instant = next.at;
      if (this.#steps > stepsMax || stepsAtInstant > stepsPerInstantMax) {
        const why = this.#steps > stepsMax ? `more than ${stepsMax} steps` : 'the clock is stuck';
        this.fail('livelock', why);
        return;
      }
      this.#dispatch(next.event);
    }
  }

  #dispatch(event: SimEvent): void {
    switch (event.kind) {
      case 'deliver':
        this.#deliver(event.packet, event.sentAt, event.routed);
        return;
      case 'flush':
      case 'write-done':
      case 'timer':
      case 'purge':
      case 'lease':
      case 'held-due':
        this.#toProcess(event);
        return;
      case 'request-timeout':
        this.#requestTimeout(event);
        return;
      case 'client-attempt':
        this.#clients.onAttempt(event.intent);
        return;
      case 'fault':
        this.#injectFault();
        return;
      case 'crash':
        if (this.#process(event.node).incarnation === event.incarnation) {
          this.crash(event.node, 'crash-mid-write');
        }
        return;
      default:
        this.#dispatchRecovery(event);
    }
  }

  #dispatchRecovery(event: SimEvent): void {
    switch (event.kind) {
      case 'restart': {
        const process = this.#process(event.node);
        if (!process.up && process.incarnation === event.incarnation) process.start();
        return;
      }
      case 'resume':
        if (this.#pauses.get(event.node) === event.pause) this.#resume(event.node);
        return;
      case 'heal':
        this.#network.heal(event.link);
        return;
      case 'chaos-end':
        this.#endChaos();
        return;
      default:
        return;
    }
  }

  #toProcess(
    event: Extract<
      SimEvent,
      { kind: 'flush' | 'write-done' | 'timer' | 'purge' | 'lease' | 'held-due' }
    >,
  ): void {
    const process = this.#process(event.node);
    if (process.incarnation !== event.incarnation) return;
    if (process.paused) {
      process.deferred.push(event);
      return;
    }
    const timer = event.kind === 'purge' || event.kind === 'lease' || event.kind === 'held-due';
    if (timer && process.writing) {
      // A timer of the real shell runs between batches, never inside one.
      this.schedule(this.now + 1, event);
      return;
    }
    if (event.kind === 'flush') process.onFlush();
    else if (event.kind === 'write-done') process.onWriteDone();
    else if (event.kind === 'purge') process.onPurge();
    else if (event.kind === 'held-due') process.onHeldDue(event.due);
    else if (event.kind === 'lease') this.#coordinator(event.node).onLease(event.renewing);
    else process.onTimer(event.due);
  }

  #requestTimeout(event: Extract<SimEvent, { kind: 'request-timeout' }>): void {
    const { node, requestId } = event;
    if (!isProcessName(node)) {
      this.#clients.onRequestTimeout(requestId);
      return;
    }
    // A paused process's timers fire only once it runs again.
    const process = this.#process(node);
    if (process.paused) process.deferred.push(event);
    else process.onRequestTimeout(requestId);
  }

  /**
   * NATS hands a request for the coordinators' queue group to one subscribed member: an active
   * coordinator, paused or not. A standby does not subscribe.
   */
  #route(): CoordinatorName | undefined {
    const members = this.#coordinators.filter((coordinator) => coordinator.active);
    if (members.length <= 1) return members[0]?.name;
    return this.#routeRng.pick(members).name;
  }

  #deliver(packet: Packet, sentAt: number | undefined, routed?: CoordinatorName): void {
    const { from } = packet;
    let { to } = packet;
    if (packet.type === 'request' && to === 'coordinator') to = routed ?? this.#route() ?? to;
    if (sentAt !== undefined && this.#network.lostInCrash(from, to, sentAt)) {
      this.count('lost-in-server-crash');
      this.trace(to, 'lost in a server crash', packet);
      return;
    }
    if (!this.#network.connected(from, to)) {
      this.count('partition-drop');
      this.trace(to, 'cut off', packet);
      return;
    }
    if (!isProcessName(to)) {
      this.trace(to, 'receive', packet);
      this.#clients.onPacket(packet);
      return;
    }
    const process = this.#process(to);
    const member = process instanceof SimCoordinator ? process.active : process.up;
    if (!member) {
      // Nobody subscribes: NATS answers a request at once with "no responders".
      if (packet.type === 'request') {
        const { requestId } = packet;
        this.send({
          type: 'reply',
          requestId,
          from: to,
          to: from,
          body: { kind: 'no-responders' },
        });
      }
      return;
    }
    if (process.paused) {
      const routedTo = process instanceof SimCoordinator ? process.name : undefined;
      process.deferred.push({ kind: 'deliver', packet, ...(routedTo && { routed: routedTo }) });
      return;
    }
    this.trace(to, 'receive', packet);
    if (packet.type === 'request') process.onRequest(packet);
    else process.onReply(packet);
  }

  // ---------------------------------------------------------------------------------------------
  // Faults.

  #scheduleFault(): void {
    const intervalMs = this.#faultRng.int(1, 2 * this.params.faults.meanIntervalMs);
    this.schedule(this.now + intervalMs, { kind: 'fault' });
  }

  #injectFault(): void {
    if (!this.chaos) return;
    const rng = this.#faultRng;
    const { faults } = this.params;
    switch (rng.pick(faults.kinds)) {
      case 'crash':
        this.crash(this.#pickProcess(), 'crash');
        break;
      case 'crash-all':
        // A total restart: every process dies at the same instant.
        for (const process of this.#processes()) this.crash(process.name, 'crash-all');
        break;
      case 'pause':
        this.#pause(this.#pickProcess());
        break;
      case 'partition':
        this.#partition();
        break;
      case 'one-way-cut':
        this.#cut();
        break;
      case 'server-crash':
        this.#serverCrash();
        break;
      case 'journal-locked': {
        const until = this.now + rng.int(1, faults.journalLockMsMax);
        this.journal.lockedUntil = Math.max(this.journal.lockedUntil, until);
        this.count('journal-locked');
        this.trace('journal', 'locked', `by another process for ${until - this.now} ms`);
        break;
      }
      case 'participant-locked': {
        const participant = this.#participant(rng.pick(participantNames));
        const until = this.now + rng.int(1, faults.participantLockMsMax);
        participant.databaseLockedUntil = Math.max(participant.databaseLockedUntil, until);
        this.count('participant-locked');
        const lockedMs = until - this.now;
        this.trace(participant.name, 'locked', `by another process for ${lockedMs} ms`);
        break;
      }
      case 'lease-store-down': {
        const healAt = this.now + rng.int(1, faults.leaseStoreDownMsMax);
        this.#link('lease-store-down', this.#network.leaseStoreDown(), 'JetStream', healAt);
        break;
      }
    }
    this.#scheduleFault();
  }

  #pickProcess(): ProcessName {
    const rng = this.#faultRng;
    return rng.chance(this.params.faults.coordinatorShare)
      ? this.#pickCoordinator()
      : rng.pick(participantNames);
  }

  /** One of the coordinator processes (no draw when there is one, as before standbys existed). */
  #pickCoordinator(): CoordinatorName {
    const [first, ...others] = this.#coordinators;
    if (others.length === 0) return (first as SimCoordinator).name;
    return this.#faultRng.pick(this.#coordinators).name;
  }

  #pause(node: ProcessName): void {
    const process = this.#process(node);
    if (!process.up || process.paused) return;
    this.count('pause');
    this.trace(node, 'pause');
    process.paused = true;
    const pause = this.#nextPause;
    this.#nextPause += 1;
    this.#pauses.set(node, pause);
    const resumeAt = this.now + this.#faultRng.int(1, this.params.faults.pauseMsMax);
    this.schedule(resumeAt, { kind: 'resume', node, pause });
  }

  #resume(node: ProcessName): void {
    const process = this.#process(node);
    this.#pauses.delete(node);
    process.paused = false;
    this.trace(node, 'resume');
    const deferred = process.deferred;
    process.deferred = [];
    for (const event of deferred) this.schedule(this.now, event);
  }

  #partition(): void {
    const rng = this.#faultRng;
    const nodes: ProcessName[] = this.#processes().map((process) => process.name);
    let isolated: NodeName[] = nodes.filter(() => rng.chance(0.5));
    if (isolated.length === 0 || isolated.length === nodes.length) isolated = [rng.pick(nodes)];
    this.#link('partition', this.#network.partition(isolated), isolated.join(', '));
  }

  /** One server of the three dies: each node was connected to it with a chance of one in three. */
  #serverCrash(): void {
    const rng = this.#faultRng;
    const clients = Array.from(
      { length: this.params.workload.clients },
      (_, index): NodeName => `client-${index}`,
    );
    const nodes: NodeName[] = [...this.#processes().map((process) => process.name), ...clients];
    let crashed = nodes.filter(() => rng.chance(1 / 3));
    if (crashed.length === 0) crashed = [rng.pick(nodes)];
    const until = this.now + rng.int(1, this.params.faults.serverDownMsMax);
    this.#link('server-crash', this.#network.serverDown(crashed, until), crashed.join(', '), until);
  }

  #cut(): void {
    const rng = this.#faultRng;
    const clients = this.params.workload.clients;
    const other: NodeName = rng.chance(0.7)
      ? rng.pick(participantNames)
      : `client-${rng.int(0, clients - 1)}`;
    const coordinator = this.#pickCoordinator();
    const [from, to]: [NodeName, NodeName] = rng.chance(0.5)
      ? [other, coordinator]
      : [coordinator, other];
    this.#link('one-way-cut', this.#network.cut(from, to), `${from} -> ${to}`);
  }

  #link(
    kind: 'partition' | 'one-way-cut' | 'server-crash' | 'lease-store-down',
    link: number,
    what: string,
    healAt = this.now + this.#faultRng.int(1, this.params.faults.partitionMsMax),
  ): void {
    this.count(kind);
    this.trace('network', kind, `link ${link}: ${what}`);
    this.schedule(healAt, { kind: 'heal', link });
  }

  #endChaos(): void {
    this.chaos = false;
    this.trace('world', 'heal', 'faults stop; every process runs; the network is calm');
    this.#network.calm();
    for (const process of this.#processes()) {
      if (!process.up) process.start();
      else if (process.paused) this.#resume(process.name);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The end of a run.

  #checkLiveness(): void {
    this.checker.checkLiveness({
      coordinatorInFlight: this.#coordinators.find((coordinator) => coordinator.leader)
        ?.inFlightCount,
      participants: [...this.#participants.values()].map((participant) => ({
        name: participant.name,
        inDoubt: participant.inDoubtCount,
        barrier: participant.barrier,
        ledger: participant.ledger,
      })),
      unanswered: this.#clients.unanswered(),
    });
  }

  #result(): SeedResult {
    let committed = 0;
    let abortedByVote = 0;
    let abortedByCoordinator = 0;
    for (const { decided } of [...this.journal.transactions(), ...this.journal.forgotten()]) {
      if (decided?.decision === 'commit') committed += 1;
      else if (decided?.abortedBy === 'coordinator') abortedByCoordinator += 1;
      else if (decided !== undefined) abortedByVote += 1;
    }
    const traceLines = this.#options.traceLines ?? traceLinesDefault;
    let trace: string[] = [];
    if (this.#options.fullTrace === true) trace = this.#trace.all();
    else if (this.failed) trace = this.#trace.tail(traceLines);
    return {
      seed: this.#seed,
      steps: this.#steps,
      virtualMs: this.now - startMs,
      faults: this.#faults,
      committed,
      abortedByVote,
      abortedByCoordinator,
      keyMismatches: this.#clients.keyMismatches,
      violation: this.#violation,
      trace,
    };
  }

  #newParticipant(name: ParticipantName): SimParticipant {
    const config = { name, ...this.params.participant, mutations: this.mutations };
    return new SimParticipant(this, config, new SimLedger(this.params.workload.balances[name]));
  }

  #processes(): (SimCoordinator | SimParticipant)[] {
    return [...this.#coordinators, ...this.#participants.values()];
  }

  #process(name: ProcessName): SimCoordinator | SimParticipant {
    return name === 'coordinator' || name === 'coordinator-2'
      ? this.#coordinator(name)
      : this.#participant(name);
  }

  #coordinator(name: CoordinatorName): SimCoordinator {
    const coordinator = this.#coordinators.find((candidate) => candidate.name === name);
    if (coordinator === undefined) throw new Error(`no coordinator ${name}`);
    return coordinator;
  }

  #participant(name: ParticipantName): SimParticipant {
    const participant = this.#participants.get(name);
    if (participant === undefined) throw new Error(`no participant ${name}`);
    return participant;
  }
}
