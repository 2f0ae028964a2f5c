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

-- Stock per vendor and item. `reserved` counts units promised to transactions that voted YES and
-- await their decision; commit lowers on_hand and reserved together, so it can never make
-- reserved exceed on_hand.
CREATE TABLE stock (
  vendor_id TEXT NOT NULL,
  sku TEXT NOT NULL,
  on_hand INTEGER NOT NULL CHECK (on_hand >= 0),
  reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
  CHECK (reserved <= on_hand),
  PRIMARY KEY (vendor_id, sku)
) STRICT, WITHOUT ROWID;

-- An order is 'open' until a transaction reserves it, 'reserved' while that transaction (tx_id)
-- is in doubt, and 'paid' once it commits; tx_id then names the payment that paid it. An open
-- order has no transaction, and a reserved or paid one always has one.
CREATE TABLE orders (
  order_id TEXT NOT NULL PRIMARY KEY,
  vendor_id TEXT NOT NULL,
  customer_id TEXT NOT NULL,
  currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
  total_minor INTEGER NOT NULL CHECK (total_minor >= 0),
  status TEXT NOT NULL CHECK (status IN ('open', 'reserved', 'paid')),
  tx_id TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  CHECK ((status = 'open') = (tx_id IS NULL))
) STRICT;

-- Commit and abort find the order by its transaction; a transaction holds at most one order.
CREATE UNIQUE INDEX orders_by_tx ON orders (tx_id) WHERE tx_id IS NOT NULL;

CREATE TABLE order_lines (
  order_id TEXT NOT NULL REFERENCES orders (order_id),
  sku TEXT NOT NULL,
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor >= 0),
  PRIMARY KEY (order_id, sku)
) STRICT, WITHOUT ROWID;

-- The units one transaction reserved, per item. Prepare reserves only items that are in stock,
-- so every reservation names an existing stock row.
CREATE TABLE reservations (
  tx_id TEXT NOT NULL,
  sku TEXT NOT NULL,
  vendor_id TEXT NOT NULL,
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  state TEXT NOT NULL CHECK (state IN ('reserved', 'consumed', 'released')),
  PRIMARY KEY (tx_id, sku),
  FOREIGN KEY (vendor_id, sku) REFERENCES stock (vendor_id, sku)
) STRICT, WITHOUT ROWID;
