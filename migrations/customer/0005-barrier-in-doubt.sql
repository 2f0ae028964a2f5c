-- A YES vote stays in doubt until its decision is applied here. Its prepare row now records when
-- that happened (`decided_at`; NULL on other prepare rows), so a restarting participant finds
-- what is in doubt through a partial index holding only the undecided YES votes, instead of
-- scanning every transaction the barrier retention keeps (participants/service.ts,
-- docs/recovery.md).
ALTER TABLE barrier ADD COLUMN decided_at INTEGER;

UPDATE barrier SET decided_at = (
  SELECT min(decision.created_at) FROM barrier AS decision
  WHERE decision.tx_id = barrier.tx_id AND decision.phase IN ('commit', 'abort')
)
WHERE phase = 'prepare' AND outcome = 'yes';

CREATE INDEX barrier_in_doubt ON barrier (tx_id)
  WHERE phase = 'prepare' AND outcome = 'yes' AND decided_at IS NULL;
