-- The coordinator's journal: an append-only log of checkpoint records, and an index of payments by
-- idempotency key kept in step with it (both written in the same SQLite transaction).

-- One row per record. `body` is the record as JSON; recovery replays the records of every
-- transaction that has no 'completed' record, in `seq` order.
CREATE TABLE journal (
  seq INTEGER PRIMARY KEY,
  tx_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  body TEXT NOT NULL,
  written_at INTEGER NOT NULL
) STRICT;
CREATE INDEX journal_by_transaction ON journal (tx_id, kind);

-- One row per transaction. The UNIQUE constraint is the idempotency claim: the insert happens in
-- the same SQLite transaction as the 'begin' record, never as a read followed by an insert.
-- The outcome (state, aborted_by, reason) is written in the same SQLite transaction as the
-- 'decided' record, so the stored answer for a key and the decision can never disagree.
CREATE TABLE payments (
  tx_id TEXT PRIMARY KEY,
  client_id TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('preparing', 'committed', 'aborted')),
  aborted_by TEXT,
  reason TEXT,
  created_at INTEGER NOT NULL,
  decided_at INTEGER,
  completed_at INTEGER,
  UNIQUE (client_id, idempotency_key)
) STRICT, WITHOUT ROWID;
CREATE INDEX payments_incomplete ON payments (created_at) WHERE completed_at IS NULL;
