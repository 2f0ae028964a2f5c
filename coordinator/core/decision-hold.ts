/**
 * How the coordinator holds back the decisions of a batch that sends no PREPARE
 * (coordinator/service.ts), shared with the simulator's model of it
 * (test/sim/coordinator-shell.ts).
 *
 * Such a batch's decisions wait at most `decisionHoldMs` so that they reach each participant
 * together with the next PREPARE: one wake-up of the participant, its nats-server delivery and its
 * SQLite transaction for both, and no participant woken while the client's reply is on its way.
 * The decision is durable already, and its acknowledgement is off the client's critical path; a
 * participant holds a decision that arrives alone for the same reason
 * (participants/core/decision-hold.ts). At one client this takes about 1.3 of a participant's five
 * wake-ups per payment (docs/performance.md, fifth round).
 */
export const decisionHoldMs = 2;
