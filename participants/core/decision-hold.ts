/**
 * How a participant holds back a batch that only applies decisions (participants/service.ts),
 * shared with the simulator's model of it (test/sim/participant-shell.ts).
 *
 * Such a batch waits at most `decisionHoldMs` so that its decisions share the SQLite transaction
 * (and fsync) of the next batch with a PREPARE. The acknowledgements wait accordingly; they are
 * off the client's critical path, and nothing is acknowledged before it is durable.
 */
export const decisionHoldMs = 3;

/**
 * Decisions held back at most. Under load, batches carry PREPAREs anyway, and a batch of many
 * decisions is applied at once rather than added to the next PREPARE's critical path.
 */
export const heldDecisionsMax = 8;
