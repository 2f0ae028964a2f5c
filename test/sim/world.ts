/**
 * The vocabulary shared by the parts of the simulated world: node names, the packets the simulated
 * network carries, the events on the virtual clock, fault and violation kinds, and the narrow
 * context through which a simulated process reaches the world (time, the network, the checker).
 */
import type {
  ParticipantMessage,
  ParticipantName,
  ParticipantReply,
  PayReply,
  PayRequest,
  StatusReply,
} from '../../common/protocol.ts';
import type { StatusQuery } from '../../coordinator/core/types.ts';
import type { Checker } from './invariants.ts';
import type { Random } from './random.ts';
import type { SwarmParameters } from './swarm.ts';

/**
 * `coordinator` is the first coordinator process and also the address of the coordinators' queue
 * group: a request sent to it reaches one active coordinator, as NATS delivers a request to one
 * subscriber of the group. `coordinator-2` is the standby of the seeds that run two.
 */
export type CoordinatorName = 'coordinator' | 'coordinator-2';
export type ProcessName = CoordinatorName | ParticipantName;
export type ClientName = `client-${number}`;
export type NodeName = ProcessName | ClientName;

export type RequestBody =
  | { readonly kind: 'pay'; readonly request: PayRequest }
  | { readonly kind: 'status'; readonly query: StatusQuery }
  | { readonly kind: 'participant'; readonly message: ParticipantMessage; readonly epoch: number };

/** `no-responders` is what NATS answers at once when nobody subscribes: the target is down. */
export type ReplyBody =
  | { readonly kind: 'pay'; readonly reply: PayReply }
  | { readonly kind: 'status'; readonly reply: StatusReply; readonly epoch: number }
  | { readonly kind: 'participant'; readonly reply: ParticipantReply }
  | { readonly kind: 'no-responders' };

/** One NATS request or reply in flight. `requestId` pairs a reply with its request. */
export type Packet =
  | {
      readonly type: 'request';
      readonly requestId: number;
      readonly from: NodeName;
      readonly to: NodeName;
      readonly body: RequestBody;
    }
  | {
      readonly type: 'reply';
      readonly requestId: number;
      readonly from: NodeName;
      readonly to: NodeName;
      readonly body: ReplyBody;
    };

/**
 * Everything that happens in a run is one of these, due at a virtual time. Events aimed at one
 * incarnation of a process carry its number, so a timer or write of a process that has crashed
 * since is recognised and ignored, as a real kill would have cancelled it.
 */
export type SimEvent =
  /**
   * `sentAt`: when the network took the message (a server crash after it loses it); absent once a
   * paused process has it. `routed`: a request NATS already handed to that coordinator (it was
   * paused meanwhile).
   */
  | {
      readonly kind: 'deliver';
      readonly packet: Packet;
      readonly sentAt?: number;
      readonly routed?: CoordinatorName;
    }
  | { readonly kind: 'flush'; readonly node: ProcessName; readonly incarnation: number }
  | { readonly kind: 'write-done'; readonly node: ProcessName; readonly incarnation: number }
  | { readonly kind: 'purge'; readonly node: ProcessName; readonly incarnation: number }
  /** A shell's held decisions are due (the coordinator's or a participant's `decisionHoldMs`). */
  | {
      readonly kind: 'held-due';
      readonly node: ProcessName;
      readonly incarnation: number;
      readonly due: number;
    }
  /**
   * A lease timer; `renewing`: the answer to a renewal sent a round trip earlier, or a request
   * timeout later when the servers could not be reached (`failed`).
   */
  | {
      readonly kind: 'lease';
      readonly node: CoordinatorName;
      readonly incarnation: number;
      readonly renewing?: 'answered' | 'failed';
    }
  | {
      readonly kind: 'timer';
      readonly node: ProcessName;
      readonly incarnation: number;
      readonly due: number;
    }
  | { readonly kind: 'request-timeout'; readonly node: NodeName; readonly requestId: number }
  | { readonly kind: 'client-attempt'; readonly intent: number }
  | { readonly kind: 'fault' }
  | { readonly kind: 'crash'; readonly node: ProcessName; readonly incarnation: number }
  | { readonly kind: 'restart'; readonly node: ProcessName; readonly incarnation: number }
  | { readonly kind: 'resume'; readonly node: ProcessName; readonly pause: number }
  | { readonly kind: 'heal'; readonly link: number }
  | { readonly kind: 'chaos-end' };

export const faultKinds = [
  'message-lost',
  'message-duplicated',
  'message-delayed',
  'partition-drop',
  'partition',
  'one-way-cut',
  'server-crash',
  /** A message in flight through a crashed server, or published into a lost reconnect buffer. */
  'lost-in-server-crash',
  'lease-store-down',
  /** Another process took the journal's write lock (an operator's tool, a paused writer). */
  'journal-locked',
  /** A write or a term's start waited out the busy timeout and failed: the term ends. */
  'journal-busy',
  /** Another process took a participant's write lock (the party's own systems write there). */
  'participant-locked',
  /**
   * A participant's write (a batch, or a new term's record) waited out the busy timeout and
   * failed: its messages are answered `unavailable` and come again.
   */
  'participant-busy',
  'crash',
  'crash-all',
  'crash-mid-write',
  'crash-after-step',
  'write-survived-crash',
  /** Not a fault but what barrier expiry (swarm.ts) must lead to: a message met the watermark. */
  'message-for-forgotten',
  /**
   * Nor are these what key expiry (swarm.ts) leads to: payments purged, and a `begin` that found
   * its key's expired payment not purged yet and released it.
   */
  'key-purged',
  /**
   * Nor these, what two coordinators (swarm.ts) lead to: a standby took the lease, a leader cut
   * off from the servers by a partition lost it when its renewal timed out, a coordinator found
   * its term over (before a batch, or in a write), a participant refused an old term's message
   * or answer.
   */
  'lease-taken',
  'lease-unreachable',
  /** A lease request the servers applied whose answer was lost: taken or renewed, unknowingly. */
  'lease-answer-lost',
  'fenced',
  'stale-epoch',
  'expired-key-released',
  'journal-records-lost',
  /** Nor is this: a message encoded and decoded as the real processes would (wire.ts). */
  'message-through-wire',
  /** Nor this: a participant held a batch's decisions back for the next PREPARE's write. */
  'decisions-held',
  /** Nor this: the coordinator held a batch's decisions back to send with the next PREPAREs. */
  'decisions-held-to-send',
  'pause',
] as const;
export type FaultKind = (typeof faultKinds)[number];

export const violationKinds = [
  'atomicity',
  'decided-alone',
  'not-durable',
  'key-executed-twice',
  'wrong-answer',
  'mismatch-executed',
  'money',
  'machine-threw',
  'shell-threw',
  /** A message our own code sent that the real receiver's decoder refuses (wire.ts). */
  'undecodable',
  'liveness',
  'livelock',
] as const;
export type ViolationKind = (typeof violationKinds)[number];

export interface Violation {
  readonly kind: ViolationKind;
  readonly message: string;
  /** Virtual milliseconds since the start of the run, and the step it was found at. */
  readonly atMs: number;
  readonly step: number;
}

/** What a simulated process may do to the world around it. */
export interface ProcessContext {
  readonly now: number;
  readonly failed: boolean;
  /** True until the chaos phase ends; after it no fault is injected. */
  readonly chaos: boolean;
  readonly rng: Random;
  readonly params: SwarmParameters;
  readonly checker: Checker;
  readonly mutations: ReadonlySet<string>;
  schedule(at: number, event: SimEvent): void;
  send(packet: Packet): void;
  trace(node: string, what: string, detail?: unknown): void;
  count(kind: FaultKind): void;
  fail(kind: ViolationKind, message: string): void;
  crash(node: ProcessName, why: FaultKind): void;
  nextRequestId(): number;
  /** Whether the node's requests to the lease in JetStream KV are answered (network.ts). */
  reachesLease(node: ProcessName): boolean;
  nextTxId(): string;
  /** When `nextTxId` made this id: the time a real transaction id (a ULID) carries. */
  txCreatedAt(txId: string): number;
}

export function isProcessName(name: NodeName): name is ProcessName {
  return !name.startsWith('client-');
}
