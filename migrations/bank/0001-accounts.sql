-- The two-phase-commit barrier (dtm's pattern): one row per transaction and phase, written in the
-- same SQLite transaction as the business change. A second PREPARE, COMMIT or ABORT for the same
-- transaction finds its row and changes nothing. An ABORT that arrives before its PREPARE writes a
-- 'prepare' row with outcome 'tombstone', so the late PREPARE votes NO.
CREATE TABLE barrier (
  tx_id TEXT NOT NULL,
  phase TEXT NOT NULL CHECK (phase IN ('prepare', 'commit', 'abort')),
  outcome TEXT NOT NULL CHECK (outcome IN ('yes', 'no', 'tombstone', 'done')),
  reason TEXT,
  payment TEXT,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tx_id, phase)
) STRICT, WITHOUT ROWID;

-- Accounts hold money as integer minor units in one currency each; an owner (a customer or a
-- vendor) has at most one account per currency. `held_minor` is the part of the balance promised
-- to transactions that voted YES and await their decision, so `balance_minor - held_minor` is what
-- a new payment may use. The checks make an overdraft or an over-hold impossible to store: commit
-- lowers balance and held together, so it can never break them.
CREATE TABLE accounts (
  account_id TEXT NOT NULL PRIMARY KEY,
  owner_id TEXT NOT NULL,
  currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
  balance_minor INTEGER NOT NULL CHECK (balance_minor >= 0),
  held_minor INTEGER NOT NULL DEFAULT 0 CHECK (held_minor >= 0),
  frozen INTEGER NOT NULL DEFAULT 0 CHECK (frozen IN (0, 1)),
  CHECK (held_minor <= balance_minor),
  -- Also serves prepare's look-up of an owner's accounts (owner_id is its first column).
  UNIQUE (owner_id, currency),
  -- Lets a hold reference (account, currency), so a hold in the wrong currency cannot be stored.
  UNIQUE (account_id, currency)
) STRICT;

-- One hold per transaction that voted YES: the money it moves and what became of it.
CREATE TABLE holds (
  tx_id TEXT NOT NULL PRIMARY KEY,
  payer_account TEXT NOT NULL,
  payee_account TEXT NOT NULL,
  amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
  currency TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('held', 'captured', 'released')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  CHECK (payer_account <> payee_account),
  FOREIGN KEY (payer_account, currency) REFERENCES accounts (account_id, currency),
  FOREIGN KEY (payee_account, currency) REFERENCES accounts (account_id, currency)
) STRICT;

-- Reconciliation (sum of open holds per account = held_minor) reads only the open holds.
CREATE INDEX holds_open_by_payer ON holds (payer_account) WHERE state = 'held';
