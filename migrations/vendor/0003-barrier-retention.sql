-- Barrier rows of finished transactions expire after the barrier retention (--barrier-retention-ms).
-- `forgotten_before` is how far the purge has gone, as a time: a transaction with no rows whose
-- id (a ULID, which carries its creation time) is older than it was finished and forgotten, so a
-- late decision for it is acknowledged and a late PREPARE refused (participants/core/machine.ts).
CREATE TABLE barrier_retention (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  forgotten_before INTEGER NOT NULL CHECK (forgotten_before >= 0)
) STRICT;

INSERT INTO barrier_retention (id, forgotten_before) VALUES (1, 0);

-- The purge finds finished transactions by age: a decision row, or a NO vote (the coordinator
-- sends no ABORT to a participant that voted NO).
CREATE INDEX barrier_finished ON barrier (created_at)
  WHERE phase IN ('commit', 'abort') OR outcome = 'no';
