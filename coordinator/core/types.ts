/**
 * The coordinator machine's vocabulary: the inputs it accepts, the effects it asks the shell to
 * carry out, and the journal records that survive a crash. All plain readonly data tagged by
 * `kind`, so a test or the simulator can build and compare them without any IO.
 */
import type {
  AbortSource,
  Decision,
  ParticipantMessage,
  ParticipantName,
  Payment,
  PayRequest,
  PayReply,
  StatusReply,
} from '../../common/protocol.ts';

/** Records of the coordinator's journal. Replaying them through the machine rebuilds its state. */
export type JournalRecord =
  | {
      readonly kind: 'begin';
      readonly txId: string;
      readonly clientId: string;
      readonly idempotencyKey: string;
      readonly fingerprint: string;
      readonly payment: Payment;
      readonly participants: readonly ParticipantName[];
      readonly createdAt: number;
      readonly deadlineAt: number;
    }
  | {
      readonly kind: 'decided';
      readonly txId: string;
      readonly decision: Decision;
      readonly abortedBy?: AbortSource;
      readonly reason?: string;
      readonly decidedAt: number;
    }
  | { readonly kind: 'completed'; readonly txId: string; readonly completedAt: number };

/** What the journal knows of an idempotency key or transaction, looked up by the shell. */
export interface StoredPayment {
  readonly txId: string;
  /** The client whose key this is: a client asking by transaction id sees only its own. */
  readonly clientId: string;
  readonly idempotencyKey: string;
  readonly fingerprint: string;
  readonly decided?: {
    readonly decision: Decision;
    readonly abortedBy?: AbortSource;
    readonly reason?: string;
  };
}

/** Identifies a request waiting for a reply; opaque to the machine, chosen by the shell. */
export type RequestRef = number;

/**
 * A status question. By transaction id it comes from a service (no `clientId`: any transaction
 * answers) or from a client on its own subject (`clientId` set: only that client's transactions
 * answer; any other is `unknown`, so nothing leaks). By key it is always one client's key.
 */
export type StatusQuery =
  | { readonly txId: string; readonly clientId?: string }
  | { readonly clientId: string; readonly idempotencyKey: string };

export type CoordinatorInput =
  | {
      readonly kind: 'pay-requested';
      readonly now: number;
      readonly requestRef: RequestRef;
      readonly request: PayRequest;
      /** A fresh transaction id, used only if the request starts a new transaction. */
      readonly newTxId: string;
      /** The journal's entry for this client's key, if any. */
      readonly stored: StoredPayment | undefined;
    }
  | {
      readonly kind: 'status-requested';
      readonly now: number;
      readonly requestRef: RequestRef;
      readonly query: StatusQuery;
      readonly stored: StoredPayment | undefined;
    }
  | {
      readonly kind: 'vote-received';
      readonly now: number;
      readonly txId: string;
      readonly participant: ParticipantName;
      readonly vote: 'yes' | 'no';
      readonly reason?: string;
    }
  | {
      readonly kind: 'ack-received';
      readonly now: number;
      readonly txId: string;
      readonly participant: ParticipantName;
      readonly decision: Decision;
    }
  | {
      readonly kind: 'send-failed';
      readonly now: number;
      readonly txId: string;
      readonly participant: ParticipantName;
      readonly error: string;
    }
  | { readonly kind: 'tick'; readonly now: number }
  | { readonly kind: 'record-recovered'; readonly record: JournalRecord }
  | { readonly kind: 'recovery-finished'; readonly now: number };

export type CoordinatorEffect =
  /** Append to the journal. A forced record is durable before any later effect is carried out. */
  | { readonly kind: 'journal'; readonly record: JournalRecord; readonly forced: boolean }
  | {
      readonly kind: 'send';
      readonly participant: ParticipantName;
      readonly message: ParticipantMessage;
    }
  | {
      readonly kind: 'reply';
      readonly requestRef: RequestRef;
      readonly reply: PayReply | StatusReply;
    };

export interface CoordinatorConfig {
  readonly participants: readonly ParticipantName[];
  /** Re-send PREPARE to a participant that has not voted after this long. */
  readonly prepareResendMs: number;
  /** First and largest delay between re-sends of a decision; doubles in between, with jitter. */
  readonly decisionResendMsMin: number;
  readonly decisionResendMsMax: number;
  /** Payments in flight at once; more are refused with "overloaded" and nothing is journaled. */
  readonly inFlightMax: number;
  /** Requests that may wait on one transaction; more are answered "in progress" at once. */
  readonly waitersPerTransactionMax: number;
  /** Test-only mutation: see test/sim/mutations.ts. Deliberate bugs; production never sets it. */
  readonly mutations?: ReadonlySet<string>;
}

/** The view of one in-flight transaction that operators see (issue: "awaiting acknowledgement"). */
export interface TransactionView {
  readonly txId: string;
  readonly idempotencyKey: string;
  readonly phase: 'preparing' | 'committing' | 'aborting';
  readonly ageMs: number;
  readonly sendAttempts: number;
  readonly waitingFor: readonly ParticipantName[];
  readonly lastError: string | undefined;
}
