-- The purge finds completed payments older than the retention period, oldest first. Without an
-- index it scanned and sorted the whole table on every call: at thousands of payments a second
-- and a 24-hour retention, hundreds of millions of rows. Only completed payments are indexed.
CREATE INDEX payments_completed ON payments (completed_at) WHERE completed_at IS NOT NULL;
