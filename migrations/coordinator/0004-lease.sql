-- The leadership lease, for coordinators that share this journal on one host and take turns
-- without JetStream (`--lease-journal on`, coordinator/adapters/sqlite-lease.ts). One row: who
-- holds it, the token of that acquisition (a renewal must name it), the term it was renewed for,
-- and when it expires (epoch ms, this host's clock). The epoch fence in `leadership` keeps safety;
-- the lease only decides who may try to lead.
CREATE TABLE lease (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  holder TEXT NOT NULL,
  token TEXT NOT NULL,
  epoch INTEGER NOT NULL CHECK (epoch >= 0),
  expires_at INTEGER NOT NULL
) STRICT;

INSERT INTO lease (id, holder, token, epoch, expires_at) VALUES (1, '', '', 0, 0);
