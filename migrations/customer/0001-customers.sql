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

-- Customers and what they may spend. There is deliberately no CHECK (spent <= limit): an operator
-- may lower a limit while a purchase is in doubt, and that purchase's commit must still succeed.
CREATE TABLE customers (
  customer_id TEXT NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'blocked')),
  currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
  spending_limit_minor INTEGER NOT NULL CHECK (spending_limit_minor >= 0),
  spent_minor INTEGER NOT NULL DEFAULT 0 CHECK (spent_minor >= 0)
) STRICT;

-- One purchase per transaction that voted YES. A completed purchase always has its receipt and
-- no other state has one.
CREATE TABLE purchases (
  tx_id TEXT NOT NULL PRIMARY KEY,
  customer_id TEXT NOT NULL REFERENCES customers (customer_id),
  vendor_id TEXT NOT NULL,
  order_id TEXT NOT NULL,
  amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
  currency TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'cancelled')),
  receipt TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  CHECK ((status = 'completed') = (receipt IS NOT NULL))
) STRICT;

-- Prepare sums a customer's pending purchases; this partial index covers that query.
CREATE INDEX purchases_pending_by_customer ON purchases (customer_id, amount_minor)
  WHERE status = 'pending';
