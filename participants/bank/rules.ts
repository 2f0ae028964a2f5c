/**
 * The bank's business rules: what PREPARE, COMMIT and ABORT mean for money.
 *
 * Theory of operation. PREPARE checks that the payer can pay and places a hold: the amount moves
 * from "available" to "held" on the payer's account (`held_minor`), and a row in `holds` records
 * the transaction, both accounts and the amount. Nothing moves between accounts yet, so an abort
 * only has to lift the hold. COMMIT captures the hold: the payer's balance and held amount drop
 * together and the payee's balance rises by the same amount, in one local transaction, so the sum
 * of balances per currency never changes. Every check runs before the first write, so a NO vote
 * leaves the tables exactly as they were (the caller stores the vote in the same transaction).
 */
import { assert } from '../../common/assert.ts';
import type { Payment } from '../../common/protocol.ts';
import { statementCache, type SqliteDatabase } from '../../common/sqlite.ts';
import { voteNo, type LocalVote, type ResourceManager } from '../resource-manager.ts';

interface AccountRow {
  readonly account_id: string;
  readonly currency: string;
  readonly balance_minor: number;
  readonly held_minor: number;
  readonly frozen: number;
}

export type HoldState = 'held' | 'captured' | 'released';

interface HoldRow {
  readonly payer_account: string;
  readonly payee_account: string;
  readonly amount_minor: number;
  readonly state: HoldState;
}

const accountColumns = 'account_id, currency, balance_minor, held_minor, frozen';

/** Statements prepared once per connection: prepare, commit and abort run thousands per second. */
function prepareStatements(db: SqliteDatabase) {
  return {
    accountsOfOwner: db.prepare<[string], AccountRow>(
      `SELECT ${accountColumns} FROM accounts WHERE owner_id = ?`,
    ),
    accountOf: db.prepare<[string, string], AccountRow>(
      `SELECT ${accountColumns} FROM accounts WHERE owner_id = ? AND currency = ?`,
    ),
    hold: db.prepare<[string], HoldRow>(
      'SELECT payer_account, payee_account, amount_minor, state FROM holds WHERE tx_id = ?',
    ),
    insertHold: db.prepare<[string, string, string, number, string, number, number]>(
      `INSERT INTO holds (tx_id, payer_account, payee_account, amount_minor, currency, state,
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'held', ?, ?)`,
    ),
    setHoldState: db.prepare<[HoldState, number, string, HoldState]>(
      'UPDATE holds SET state = ?, updated_at = ? WHERE tx_id = ? AND state = ?',
    ),
    addHeld: db.prepare<[number, string]>(
      'UPDATE accounts SET held_minor = held_minor + ? WHERE account_id = ?',
    ),
    releaseHeld: db.prepare<[number, string]>(
      'UPDATE accounts SET held_minor = held_minor - ? WHERE account_id = ?',
    ),
    capture: db.prepare<[number, number, string]>(
      `UPDATE accounts SET balance_minor = balance_minor - ?, held_minor = held_minor - ?
       WHERE account_id = ?`,
    ),
    credit: db.prepare<[number, string]>(
      'UPDATE accounts SET balance_minor = balance_minor + ? WHERE account_id = ?',
    ),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

const statementsFor = statementCache(prepareStatements);

/** Finds the two accounts a payment moves money between, or the reason it cannot. */
function findAccounts(
  statements: Statements,
  payment: Payment,
): { readonly payer: AccountRow; readonly payee: AccountRow } | { readonly reason: string } {
  const payerAccounts = statements.accountsOfOwner.all(payment.payer);
  if (payerAccounts.length === 0) return { reason: 'unknown payer account' };
  const payer = payerAccounts.find((account) => account.currency === payment.currency);
  if (payer === undefined) {
    return { reason: `currency mismatch: payer has no ${payment.currency} account` };
  }
  if (payer.frozen !== 0) return { reason: 'payer account frozen' };
  const payee = statements.accountOf.get(payment.payee, payment.currency);
  if (payee === undefined) return { reason: 'unknown payee account' };
  // Paying oneself would move nothing; refusing it keeps holds between two distinct accounts.
  if (payee.account_id === payer.account_id) return { reason: 'payer and payee are the same' };
  return { payer, payee };
}

function prepare(db: SqliteDatabase, txId: string, payment: Payment, now: number): LocalVote {
  const statements = statementsFor(db);
  const accounts = findAccounts(statements, payment);
  if ('reason' in accounts) return voteNo(accounts.reason);
  const { payer, payee } = accounts;
  const availableMinor = payer.balance_minor - payer.held_minor;
  if (availableMinor < payment.amountMinor) {
    return voteNo(`insufficient funds: available ${availableMinor} < ${payment.amountMinor}`);
  }
  const held = statements.addHeld.run(payment.amountMinor, payer.account_id);
  assert(held.changes === 1, `bank prepare ${txId}: payer account vanished`);
  statements.insertHold.run(
    txId,
    payer.account_id,
    payee.account_id,
    payment.amountMinor,
    payment.currency,
    now,
    now,
  );
  return { vote: 'yes' };
}

function commit(db: SqliteDatabase, txId: string, now: number): void {
  const statements = statementsFor(db);
  const hold = statements.hold.get(txId);
  assert(hold !== undefined, `bank commit ${txId}: no hold`);
  assert(hold.state === 'held', `bank commit ${txId}: hold is ${hold.state}, not held`);
  const captured = statements.capture.run(hold.amount_minor, hold.amount_minor, hold.payer_account);
  assert(captured.changes === 1, `bank commit ${txId}: payer account missing`);
  const credited = statements.credit.run(hold.amount_minor, hold.payee_account);
  assert(credited.changes === 1, `bank commit ${txId}: payee account missing`);
  statements.setHoldState.run('captured', now, txId, 'held');
}

function abort(db: SqliteDatabase, txId: string, now: number): void {
  const statements = statementsFor(db);
  const hold = statements.hold.get(txId);
  assert(hold !== undefined, `bank abort ${txId}: no hold`);
  assert(hold.state !== 'captured', `bank abort ${txId}: hold already captured`);
  if (hold.state !== 'held') return;
  const released = statements.releaseHeld.run(hold.amount_minor, hold.payer_account);
  assert(released.changes === 1, `bank abort ${txId}: payer account missing`);
  statements.setHoldState.run('released', now, txId, 'held');
}

export const bank: ResourceManager = { name: 'bank', prepare, commit, abort };
