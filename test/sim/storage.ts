/**
 * A participant's durable state, in memory: the barrier (one row per transaction, with its vote and
 * its decision, as in `participants/service.ts`) and a small bank-like ledger (balances and holds
 * per owner). Both are changed only inside a local transaction that the simulated shell makes
 * durable as a whole, so after a crash they hold exactly what a committed SQLite transaction would.
 *
 * The barrier refuses a second vote or a second decision for one transaction, as the real shell's
 * primary key and conditional updates do, and reports its status by the same rules as the real shell's `#storedStatus`. It expires as the
 * real one does: a purge forgets the transactions finished before a cutoff by the participant's
 * clock and made before it by the coordinator's (which a ULID carries), and raises the durable
 * watermark to the cutoff; a transaction with no rows made before the watermark is then
 * `forgotten`. The ledger follows
 * the bank's rules (`participants/bank/rules.ts`): PREPARE checks the available amount and places
 * a hold, COMMIT captures it and credits the payee, ABORT releases it.
 */
import { assert } from '../../common/assert.ts';
import type { Payment } from '../../common/protocol.ts';
import type { StoredStatus } from '../../participants/core/machine.ts';
import type { LocalVote } from '../../participants/resource-manager.ts';

export type PrepareOutcome = 'yes' | 'no' | 'tombstone';

interface BarrierRows {
  prepare: { readonly outcome: PrepareOutcome; readonly reason: string | undefined } | undefined;
  commit: boolean;
  abort: boolean;
  /**
   * The participant's clock when the first row that finishes the transaction was written (a
   * decision, or a NO vote): what the real purge compares with its cutoff.
   */
  finishedAt: number | undefined;
}

/** What SQLite would refuse with a constraint error. */
export class BarrierConstraintError extends Error {
  override readonly name = 'BarrierConstraintError';
}

export class SimBarrier {
  readonly #rows = new Map<string, BarrierRows>();
  readonly #createdAt: (txId: string) => number;
  readonly #clockSkewMs: number;
  /** Durable, as the `barrier_retention` row: no rows and created before this means forgotten. */
  #forgottenBefore = 0;
  /** The newest coordinator term seen; durable, as the `fence` row (raised, never lowered). */
  epoch = 0;

  /**
   * `createdAt` gives a transaction's creation time on the coordinator's clock; `clockSkewMs` is
   * how far this participant's clock is ahead of it. Without them nothing is ever forgotten.
   */
  constructor(
    createdAt: (txId: string) => number = () => Number.POSITIVE_INFINITY,
    clockSkewMs = 0,
  ) {
    this.#createdAt = createdAt;
    this.#clockSkewMs = clockSkewMs;
  }

  /** INSERT of the vote's row: fails if the transaction already has one (PRIMARY KEY). */
  checkPrepareAbsent(txId: string): void {
    if (this.#rows.get(txId)?.prepare !== undefined) {
      throw new BarrierConstraintError(`PRIMARY KEY: barrier already has (${txId}, prepare)`);
    }
  }

  /** `now` is the simulation's clock; rows carry the participant's, as `created_at` does. */
  insertPrepare(
    txId: string,
    outcome: PrepareOutcome,
    reason: string | undefined,
    now: number,
  ): void {
    this.checkPrepareAbsent(txId);
    const rows = this.#rowsOf(txId);
    rows.prepare = { outcome, reason };
    if (outcome === 'no') rows.finishedAt ??= now + this.#clockSkewMs;
  }

  /** INSERT OR IGNORE: true when the row was written, false when it was already there. */
  insertIfAbsent(txId: string, phase: 'prepare' | 'commit' | 'abort', now: number): boolean {
    const rows = this.#rowsOf(txId);
    if (phase === 'prepare') {
      if (rows.prepare !== undefined) return false;
      rows.prepare = { outcome: 'tombstone', reason: undefined };
      return true;
    }
    if (rows[phase]) return false;
    rows[phase] = true;
    rows.finishedAt ??= now + this.#clockSkewMs;
    return true;
  }

  /**
   * The real `#purge`: forgets every transaction finished more than `retentionMs` ago by this
   * participant's clock and created before that cutoff (by its id), and raises the watermark to
   * the cutoff. Returns how many it forgot.
   */
  purge(now: number, retentionMs: number): number {
    const cutoff = now + this.#clockSkewMs - retentionMs;
    let purged = 0;
    for (const [txId, rows] of this.#rows) {
      if (rows.finishedAt === undefined || rows.finishedAt >= cutoff) continue;
      if (this.#createdAt(txId) >= cutoff) continue;
      this.#rows.delete(txId);
      purged += 1;
    }
    this.#forgottenBefore = Math.max(this.#forgottenBefore, cutoff);
    return purged;
  }

  prepareOutcome(txId: string): PrepareOutcome | undefined {
    return this.#rows.get(txId)?.prepare?.outcome;
  }

  /** The status the real shell derives from the rows, with the same assertions. */
  status(txId: string): StoredStatus | undefined {
    const rows = this.#rows.get(txId);
    if (rows === undefined) {
      return this.#createdAt(txId) < this.#forgottenBefore ? { status: 'forgotten' } : undefined;
    }
    if (rows.commit) return { status: 'committed' };
    if (rows.abort) return { status: 'aborted' };
    assert(rows.prepare, `barrier of ${txId} has a prepare row`);
    if (rows.prepare.outcome === 'yes') return { status: 'voted-yes' };
    assert(rows.prepare.outcome === 'no', `barrier of ${txId}: a tombstone has an abort row`);
    return { status: 'voted-no', reason: rows.prepare.reason ?? 'refused' };
  }

  /** Transactions voted YES with no decision yet, ordered by id as the primary key orders them. */
  inDoubt(): string[] {
    const found: string[] = [];
    for (const [txId, rows] of this.#rows) {
      if (rows.prepare?.outcome === 'yes' && !rows.commit && !rows.abort) found.push(txId);
    }
    return found.sort();
  }

  /** Every transaction with its rows, for the liveness check. */
  entries(): IterableIterator<[string, Readonly<BarrierRows>]> {
    return this.#rows.entries();
  }

  #rowsOf(txId: string): BarrierRows {
    let rows = this.#rows.get(txId);
    if (rows === undefined) {
      rows = { prepare: undefined, commit: false, abort: false, finishedAt: undefined };
      this.#rows.set(txId, rows);
    }
    return rows;
  }
}

interface Account {
  balanceMinor: number;
  heldMinor: number;
}

interface Hold {
  readonly payer: string;
  readonly payee: string;
  readonly amountMinor: number;
  state: 'held' | 'captured' | 'released';
}

export class SimLedger {
  readonly #accounts = new Map<string, Account>();
  readonly #holds = new Map<string, Hold>();
  readonly totalMinor: number;

  constructor(balances: Readonly<Record<string, number>>) {
    let total = 0;
    for (const [owner, balanceMinor] of Object.entries(balances)) {
      this.#accounts.set(owner, { balanceMinor, heldMinor: 0 });
      total += balanceMinor;
    }
    this.totalMinor = total;
  }

  prepare(txId: string, payment: Payment): LocalVote {
    const payer = this.#accounts.get(payment.payer);
    if (payer === undefined) return { vote: 'no', reason: 'unknown payer account' };
    if (!this.#accounts.has(payment.payee)) return { vote: 'no', reason: 'unknown payee account' };
    if (payment.payee === payment.payer) {
      return { vote: 'no', reason: 'payer and payee are the same' };
    }
    const availableMinor = payer.balanceMinor - payer.heldMinor;
    if (availableMinor < payment.amountMinor) {
      const reason = `insufficient funds: available ${availableMinor} < ${payment.amountMinor}`;
      return { vote: 'no', reason };
    }
    assert(!this.#holds.has(txId), `ledger prepare ${txId}: one hold per transaction`);
    payer.heldMinor += payment.amountMinor;
    const { payer: from, payee: to, amountMinor } = payment;
    this.#holds.set(txId, { payer: from, payee: to, amountMinor, state: 'held' });
    return { vote: 'yes' };
  }

  commit(txId: string): void {
    const hold = this.#holds.get(txId);
    assert(hold !== undefined, `ledger commit ${txId}: no hold`);
    assert(hold.state === 'held', `ledger commit ${txId}: hold is ${hold.state}, not held`);
    const payer = this.#account(hold.payer);
    payer.balanceMinor -= hold.amountMinor;
    payer.heldMinor -= hold.amountMinor;
    this.#account(hold.payee).balanceMinor += hold.amountMinor;
    hold.state = 'captured';
  }

  abort(txId: string): void {
    const hold = this.#holds.get(txId);
    assert(hold !== undefined, `ledger abort ${txId}: no hold`);
    assert(hold.state !== 'captured', `ledger abort ${txId}: hold already captured`);
    if (hold.state !== 'held') return;
    this.#account(hold.payer).heldMinor -= hold.amountMinor;
    hold.state = 'released';
  }

  holdState(txId: string): Hold['state'] | undefined {
    return this.#holds.get(txId)?.state;
  }

  /** Money is conserved and no account is overdrawn or over-held; a message if not. */
  conservationProblem(): string | undefined {
    let total = 0;
    for (const [owner, account] of this.#accounts) {
      total += account.balanceMinor;
      if (account.heldMinor < 0 || account.heldMinor > account.balanceMinor) {
        return `${owner} holds ${account.heldMinor} of a balance of ${account.balanceMinor}`;
      }
    }
    if (total !== this.totalMinor) return `balances sum to ${total}, not ${this.totalMinor}`;
    return undefined;
  }

  heldMinor(): number {
    let held = 0;
    for (const account of this.#accounts.values()) held += account.heldMinor;
    return held;
  }

  #account(owner: string): Account {
    const account = this.#accounts.get(owner);
    assert(account !== undefined, `ledger has an account for ${owner}`);
    return account;
  }
}
