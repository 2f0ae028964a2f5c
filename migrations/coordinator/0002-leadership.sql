-- Terms of leadership. Coordinators share this journal file; the one that holds the lease starts
-- a term by incrementing `epoch` (a forced write), and every later journal write checks, inside
-- the same SQLite transaction, that the epoch is still its own. A coordinator whose term is over
-- (it lost the lease while paused or cut off) can therefore never write a record again.
CREATE TABLE leadership (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  epoch INTEGER NOT NULL CHECK (epoch >= 0),
  holder TEXT NOT NULL,
  since INTEGER NOT NULL
) STRICT;
INSERT INTO leadership (id, epoch, holder, since) VALUES (1, 0, '', 0);

-- The term that wrote each record, for audits: after a takeover, no record of an older term can
-- appear (the fence above refuses it).
ALTER TABLE journal ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
