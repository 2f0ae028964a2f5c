/**
 * Barrier retention at the participants, on the real stack: finished transactions' barrier rows
 * expire (here after 1 s), the business records stay, and a very late message for a forgotten
 * transaction is answered as the protocol needs: a decision is acknowledged, a PREPARE refused.
 */
import test from 'ava';
import Database from 'better-sqlite3';
import { monotonicFactory } from 'ulid';
import {
  decodeParticipantReply,
  encodeMessage,
  participantNames,
  subjects,
} from '../../common/protocol.ts';
import { paymentFor } from '../../participants/seed.ts';
import { fastFlags, startTestStack } from '../helpers/harness.ts';
import { until } from '../helpers/wait.ts';

const retention = ['--barrier-retention-ms', '1000'];
/** The term of a fresh stack's only coordinator (bad-input.test.ts checks it). */
const epoch = 1;

test('finished transactions leave the barrier after the retention; late messages are answered', async (t) => {
  const ts = await startTestStack(t, {
    flags: {
      ...fastFlags,
      bank: [...(fastFlags.bank ?? []), ...retention],
      vendor: [...(fastFlags.vendor ?? []), ...retention],
      customer: [...(fastFlags.customer ?? []), ...retention],
    },
  });
  // A transaction in doubt is never forgotten, however old: written here as the bank's barrier
  // would hold a YES vote from long ago that still waits for its decision.
  const inDoubt = monotonicFactory()(1);
  const bankDb = new Database(ts.files.bank);
  t.teardown(() => bankDb.close());
  bankDb.pragma('busy_timeout = 5000');
  const insertVote = bankDb.prepare(
    "INSERT INTO barrier (tx_id, vote, created_at) VALUES (?, 'yes', 1)",
  );
  insertVote.run(inDoubt);
  // A transaction finished long ago by the bank's clock but made (by its id) after every cutoff
  // of this test, as when the coordinator's clock runs ahead: it must not be forgotten before the
  // watermark covers its id, or a late PREPARE for it would find neither rows nor the watermark
  // and be executed as new.
  const ahead = monotonicFactory()(Date.now() + 3_600_000);
  bankDb
    .prepare(
      "INSERT INTO barrier (tx_id, vote, reason, created_at, decided_at) VALUES (?, 'no', 'x', 1, 1)",
    )
    .run(ahead);
  const committed = await ts.client.makePayment(paymentFor('order-1001'));
  t.is(committed.outcome, 'committed');
  const refused = await ts.client.makePayment(paymentFor('order-1002'));
  t.like(refused, { outcome: 'aborted', abortedBy: 'bank' });
  const barrierRows = (): number =>
    participantNames.reduce(
      (sum, name) =>
        sum + (ts.query<{ n: number }>(name, 'SELECT count(*) AS n FROM barrier')[0]?.n ?? 0),
      0,
    );
  t.true(barrierRows() > 1, 'the payments left barrier rows');
  t.true(await until(() => barrierRows() === 2, 15_000), 'every finished transaction expired');
  t.deepEqual(
    ts.query('bank', 'SELECT tx_id FROM barrier ORDER BY tx_id'),
    [{ tx_id: inDoubt }, { tx_id: ahead }],
    'but not the one in doubt, nor the one the watermark does not cover yet',
  );
  bankDb.prepare('DELETE FROM barrier WHERE tx_id IN (?, ?)').run(inDoubt, ahead);

  // The parties' records stay: retention is for protocol state only.
  const captured = ts.query('bank', "SELECT tx_id FROM holds WHERE state = 'captured'");
  t.deepEqual(captured, [{ tx_id: committed.txId }]);
  const purchases = ts.query(
    'customer',
    'SELECT status FROM purchases WHERE tx_id = ?',
    committed.txId,
  );
  t.deepEqual(purchases, [{ status: 'completed' }]);
  const [watermark] = ts.query<{ forgotten_before: number }>(
    'bank',
    'SELECT forgotten_before FROM barrier_retention',
  );
  t.true(watermark !== undefined && watermark.forgotten_before > 0, 'the watermark is durable');

  // A coordinator that was away longer than the retention re-sends its decision: acknowledged,
  // and nothing is applied twice. A PREPARE that late is refused.
  const ask = async (message: object) =>
    decodeParticipantReply(
      await ts.client.requestRaw(subjects.participant('bank'), encodeMessage(message), 2_000),
    );
  const txId = committed.txId;
  t.like(await ask({ v: 1, kind: 'decision', txId, decision: 'commit', epoch }), {
    kind: 'ack',
    decision: 'commit',
  });
  t.like(await ask({ v: 1, kind: 'prepare', txId, payment: paymentFor('order-1001'), epoch }), {
    kind: 'vote',
    vote: 'no',
    reason: 'transaction older than the barrier retention',
  });
  t.deepEqual(ts.query('bank', 'SELECT tx_id FROM barrier'), [], 'and it wrote nothing');

  // A new transaction the bank has not seen is still new: an ABORT leaves its tombstone.
  const fresh = monotonicFactory()();
  t.like(await ask({ v: 1, kind: 'decision', txId: fresh, decision: 'abort', epoch }), {
    kind: 'ack',
  });
  t.deepEqual(ts.query('bank', 'SELECT vote, decision FROM barrier WHERE tx_id = ?', fresh), [
    { vote: 'tombstone', decision: 'abort' },
  ]);

  // And the system still works and holds every invariant.
  const later = await ts.client.makePayment(paymentFor('order-1005'));
  t.is(later.outcome, 'committed');
  await ts.assertConsistent(t);
});
