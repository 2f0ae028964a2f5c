-- The newest coordinator term this participant has seen. Messages and status answers from an
-- older term are refused, so a coordinator that lost its lease can do no harm here.
CREATE TABLE fence (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  epoch INTEGER NOT NULL CHECK (epoch >= 0)
) STRICT;
INSERT INTO fence (id, epoch) VALUES (1, 0);
