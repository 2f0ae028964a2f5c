/**
 * Swarm testing (Groce et al.): every seed draws its own fault probabilities, timings and workload
 * mix, and switches whole kinds of fault on or off. A fixed "everything a little" mix hides bugs
 * that need one fault to be frequent and another absent; a swarm of different mixes finds them.
 * The ranges follow TigerBeetle's VOPR: loss 0-30 %, duplication 0-50 %.
 */
import { participantNames, type ParticipantName } from '../../common/protocol.ts';
import { inProgressRetryMsMax } from '../../coordinator/core/machine.ts';
import type { CoordinatorConfig } from '../../coordinator/core/types.ts';
import type { Random } from './random.ts';

export interface NetworkParameters {
  readonly lossRate: number;
  readonly duplicateRate: number;
  readonly delayMsMin: number;
  readonly delayMsMax: number;
  /** A message held back much longer than the rest: reordering past later messages. */
  readonly delayedRate: number;
  readonly delayedMsMax: number;
  /** How late a duplicate may arrive: a replay of an old message. */
  readonly replayMsMax: number;
}

export const injectedFaults = ['crash', 'crash-all', 'pause', 'partition', 'one-way-cut'] as const;
/**
 * Faults of what the processes share, drawn after every other parameter so that a seed without
 * them runs exactly as it did before they existed. `server-crash`: one NATS server of the three
 * dies, and the processes and clients connected to it lose what was in flight and reach nobody
 * until they reconnect to another. `lease-store-down`: JetStream loses its quorum, so requests to
 * the lease fail for everyone while core NATS still carries messages (only with the lease in
 * NATS). `journal-locked`: another process holds the shared journal's write lock, up to past the
 * busy timeout (only with two coordinators, who share the journal's file).
 */
export const sharedFaults = ['server-crash', 'lease-store-down', 'journal-locked'] as const;
/**
 * Another process holds one participant's write lock, up to past the busy timeout: the party's
 * own systems write to its database too (the vendor's order system adds orders). Drawn after the
 * shared faults, for the same reason.
 */
export const participantLockFault = 'participant-locked';
export type InjectedFault =
  (typeof injectedFaults)[number] | (typeof sharedFaults)[number] | typeof participantLockFault;

export interface FaultParameters {
  readonly kinds: readonly InjectedFault[];
  readonly meanIntervalMs: number;
  /** The chance that a crash or pause hits the coordinator rather than a participant. */
  readonly coordinatorShare: number;
  readonly downMsMax: number;
  readonly pauseMsMax: number;
  readonly partitionMsMax: number;
  /**
   * How long the nodes of a crashed server stay disconnected: from a reconnect at once (the
   * socket broke, 250 ms ± 100 ms in `common/nats.ts`) to the two missed pings of a server that
   * hangs instead (`pingInterval` 2 s, `maxPingOut` 2).
   */
  readonly serverDownMsMax: number;
  readonly leaseStoreDownMsMax: number;
  /** How long another process holds the journal's write lock: up to past the 5 s busy timeout. */
  readonly journalLockMsMax: number;
  /** How long another process holds a participant's write lock: up to past the busy timeout. */
  readonly participantLockMsMax: number;
  /** Crash right after a batch, and crash while a write is being made durable. */
  readonly crashAfterStepRate: number;
  readonly crashInWriteRate: number;
}

export interface WorkloadParameters {
  readonly clients: number;
  readonly intents: number;
  readonly startWindowMs: number;
  readonly owners: readonly string[];
  /** Opening balances per participant and owner, in minor units. */
  readonly balances: Readonly<Record<ParticipantName, Readonly<Record<string, number>>>>;
  readonly amountMax: number;
  /** The same key with a different payment, and another client's key (a different payment). */
  readonly rogueRate: number;
  readonly crossClientRate: number;
  readonly duplicateSubmitRate: number;
  readonly statusQueryRate: number;
  /** Undefined: attempts wait for the decision; otherwise each attempt waits at most this long. */
  readonly waitMsMax: number | undefined;
  readonly paymentTimeoutMsMax: number;
  readonly requestTimeoutMs: number;
  readonly retryMsMax: number;
}

export interface SwarmParameters {
  readonly network: NetworkParameters;
  readonly faults: FaultParameters;
  readonly workload: WorkloadParameters;
  readonly coordinator: CoordinatorConfig & { readonly sendTimeoutMs: number };
  readonly participant: {
    readonly inDoubtQueryAfterMs: number;
    readonly inDoubtQueryMsMax: number;
    readonly statusTimeoutMs: number;
  };
  readonly fsyncMsMax: number;
  /** Faults are injected for `chaosMs`; then everything heals and `quietMs` bounds liveness. */
  readonly chaosMs: number;
  readonly quietMs: number;
  /** Barrier expiry; undefined: nothing expires, as with the real 7 days in a run of seconds. */
  readonly barrier: BarrierParameters | undefined;
  /** Key expiry at the coordinator; undefined: nothing expires, as with the real 24 hours. */
  readonly keys: KeyParameters | undefined;
  /** A second coordinator and a lease; undefined: one coordinator, leading from its start. */
  readonly standby: StandbyParameters | undefined;
  /**
   * Every message through the real encoder and decoders (wire.ts). Half the seeds: it makes a
   * seed 2.4 times slower, and a message's shape, not its timing, decides whether it decodes.
   */
  readonly wire: boolean;
}

export interface StandbyParameters {
  /**
   * `--lease-ttl-ms`: a leader that does not renew for this long loses the lease to the standby.
   * Often shorter than a pause, so a paused leader wakes up deposed and finds out by its fence.
   */
  readonly leaseTtlMs: number;
  /**
   * `--lease`: in JetStream KV on the NATS servers, or in the journal's own SQLite file, which a
   * coordinator cut off from NATS still reaches (and renews).
   */
  readonly leaseStore: 'nats' | 'journal';
}

export interface KeyParameters {
  /**
   * `--key-retention-ms`: how long a completed payment answers for its key. A retry or a reuse
   * of the key after that is a new payment. Always longer than the longest gap between two
   * attempts of one client: a shorter retention is a misconfiguration (docs/idempotency.md).
   */
  readonly retentionMs: number;
}

export interface BarrierParameters {
  /** `--barrier-retention-ms`, from its smallest allowed value (1 s) up. */
  readonly retentionMs: number;
  /**
   * How far each participant's clock is ahead of the coordinator's. Only the watermark's test
   * sees it: a transaction's creation time is the coordinator's, the cutoff the participant's.
   * Some skews exceed the retention, a misconfiguration that may refuse payments but must not
   * break one.
   */
  readonly clockSkewMs: Readonly<Record<ParticipantName, number>>;
}

/** How big a seed may get: the knob that trades seeds per second for depth per seed. */
export interface Scale {
  readonly intentsMax: number;
}

export const defaultScale: Scale = { intentsMax: 64 };

const ownerPool = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'] as const;

export function drawParameters(rng: Random, scale: Scale = defaultScale): SwarmParameters {
  const network = drawNetwork(rng);
  const fsyncMsMax = rng.int(0, 5);
  // Every request timeout exceeds a calm round trip. A shorter one is a misconfiguration, not a
  // protocol bug: every reply would come after its request gave up, and nothing could finish.
  const roundTripMs = 2 * (network.delayMsMax + fsyncMsMax) + 1;
  const workload = drawWorkload(rng, scale, roundTripMs);
  const chaosMs = workload.startWindowMs + rng.int(0, 3_000);
  const decisionResendMsMin = rng.int(10, 200);
  const inDoubtQueryAfterMs = rng.int(20, 1_000);
  const drawn = {
    network,
    faults: drawFaults(rng),
    workload,
    coordinator: {
      participants: participantNames,
      prepareResendMs: rng.int(20, 500),
      decisionResendMsMin,
      decisionResendMsMax: rng.int(decisionResendMsMin, 3_000),
      inFlightMax: rng.chance(0.3) ? rng.int(1, 4) : rng.int(5, 64),
      waitersPerTransactionMax: rng.int(1, 8),
      sendTimeoutMs: roundTripMs + rng.int(0, 500),
    },
    participant: {
      inDoubtQueryAfterMs,
      inDoubtQueryMsMax: rng.int(inDoubtQueryAfterMs, 5_000),
      statusTimeoutMs: roundTripMs + rng.int(0, 500),
    },
    fsyncMsMax,
    chaosMs,
    quietMs: 60_000,
    // Drawn last, so that every other parameter of a seed is what it was before expiry existed.
    barrier: drawBarrier(rng),
    keys: drawKeys(rng, workload),
    standby: rng.chance(0.5) ? { leaseTtlMs: rng.int(100, 2_000) } : undefined,
    wire: rng.chance(0.5),
  };
  return withSharedFaults(rng, drawn);
}

type DrawnFaults = Omit<
  FaultParameters,
  'serverDownMsMax' | 'leaseStoreDownMsMax' | 'journalLockMsMax' | 'participantLockMsMax'
>;

/** Drawn last: see `sharedFaults`. */
function withSharedFaults(
  rng: Random,
  drawn: Omit<SwarmParameters, 'standby' | 'faults'> & {
    readonly standby: Omit<StandbyParameters, 'leaseStore'> | undefined;
    readonly faults: DrawnFaults;
  },
): SwarmParameters {
  const leaseStore: StandbyParameters['leaseStore'] = rng.chance(0.3) ? 'journal' : 'nats';
  const standby = drawn.standby && { ...drawn.standby, leaseStore };
  const applies = {
    'server-crash': true,
    'lease-store-down': standby?.leaseStore === 'nats',
    'journal-locked': standby !== undefined,
  };
  const added = sharedFaults.filter((kind) => rng.chance(0.4) && applies[kind]);
  const faults = {
    ...drawn.faults,
    kinds: [...drawn.faults.kinds, ...added],
    serverDownMsMax: rng.int(300, 6_000),
    leaseStoreDownMsMax: rng.int(100, 5_000),
    journalLockMsMax: rng.int(100, 8_000),
  };
  // After everything else: see `participantLockFault`.
  const participantLocked = rng.chance(0.3);
  const participantLockMsMax = rng.int(100, 8_000);
  const kinds: readonly InjectedFault[] = participantLocked
    ? [...faults.kinds, participantLockFault]
    : faults.kinds;
  return { ...drawn, standby, faults: { ...faults, kinds, participantLockMsMax } };
}

function drawBarrier(rng: Random): BarrierParameters | undefined {
  if (!rng.chance(0.5)) return undefined;
  const retentionMs = rng.int(1_000, 4_000);
  const skew = (): number => (rng.chance(0.3) ? rng.int(-6_000, 6_000) : rng.int(-50, 50));
  return { retentionMs, clockSkewMs: { bank: skew(), vendor: skew(), customer: skew() } };
}

function drawKeys(rng: Random, workload: WorkloadParameters): KeyParameters | undefined {
  if (!rng.chance(0.5)) return undefined;
  // The longest a client may take to ask again after its payment completed: a request that
  // waited for the answer and lost it times out, then the client waits out its longest pause (an
  // "in progress" hint, or its retry delay). With a shorter retention the key may expire in that
  // gap every time, and the client pays again on every retry and never has its answer: the
  // simulator found exactly that in 15 of 100,000 seeds while it drew retentions from 100 ms.
  const gapMs = workload.requestTimeoutMs + Math.max(workload.retryMsMax, inProgressRetryMsMax);
  return { retentionMs: gapMs + rng.int(1, 4_000) };
}

function drawNetwork(rng: Random): NetworkParameters {
  const delayMsMin = rng.int(0, 2);
  return {
    lossRate: rng.chance(0.6) ? rng.float() * 0.3 : 0,
    duplicateRate: rng.chance(0.6) ? rng.float() * 0.5 : 0,
    delayMsMin,
    delayMsMax: delayMsMin + rng.int(1, 40),
    delayedRate: rng.chance(0.5) ? rng.float() * 0.1 : 0,
    delayedMsMax: rng.int(20, 800),
    replayMsMax: rng.int(10, 3_000),
  };
}

function drawFaults(rng: Random): DrawnFaults {
  // A total restart is rarer than the others: it would otherwise dominate the seeds that have it.
  const kinds = injectedFaults.filter((kind) => rng.chance(kind === 'crash-all' ? 0.2 : 0.5));
  return {
    kinds,
    meanIntervalMs: rng.int(20, 1_500),
    coordinatorShare: rng.float() * 0.6,
    downMsMax: rng.int(1, 2_000),
    pauseMsMax: rng.int(1, 3_000),
    partitionMsMax: rng.int(10, 3_000),
    crashAfterStepRate: rng.chance(0.3) ? rng.float() * 0.02 : 0,
    crashInWriteRate: rng.chance(0.3) ? rng.float() * 0.05 : 0,
  };
}

function drawWorkload(rng: Random, scale: Scale, roundTripMs: number): WorkloadParameters {
  const owners = ownerPool.slice(0, rng.int(2, ownerPool.length));
  const amountMax = rng.int(10, 1_000);
  // Balances of a few to many payments' worth: some payers run dry, so NO votes and commits both
  // happen, in proportions that differ from seed to seed.
  const paymentsPerBalanceMax = rng.int(1, 30);
  const balanceOf = (): number =>
    rng.chance(0.05) ? 0 : rng.int(0, amountMax * paymentsPerBalanceMax);
  const balancesOf = (): Record<string, number> =>
    Object.fromEntries(owners.map((owner) => [owner, balanceOf()]));
  const withWait = rng.chance(0.5);
  return {
    clients: rng.int(1, 4),
    intents: rng.int(1, scale.intentsMax),
    startWindowMs: rng.int(1, 10_000),
    owners,
    balances: { bank: balancesOf(), vendor: balancesOf(), customer: balancesOf() },
    amountMax,
    rogueRate: rng.chance(0.5) ? rng.float() * 0.3 : 0,
    crossClientRate: rng.chance(0.3) ? rng.float() * 0.3 : 0,
    duplicateSubmitRate: rng.chance(0.5) ? rng.float() * 0.5 : 0,
    statusQueryRate: rng.chance(0.5) ? rng.float() * 0.5 : 0,
    waitMsMax: withWait ? rng.int(0, 2_000) : undefined,
    paymentTimeoutMsMax: rng.int(100, 3_000),
    requestTimeoutMs: roundTripMs + rng.int(0, 3_000),
    retryMsMax: rng.int(1, 2_000),
  };
}
