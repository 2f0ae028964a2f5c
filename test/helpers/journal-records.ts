/** Journal records for tests of the journal and of what writes it. */
import { paymentFingerprint, participantNames } from '../../common/protocol.ts';
import type { JournalRecord } from '../../coordinator/core/types.ts';
import { paymentFor } from '../../participants/seed.ts';

export type Begin = Extract<JournalRecord, { kind: 'begin' }>;

/** A payment's `begin` for order-1001, due 5 s after it was made. */
export function beginRecord(
  txId: string,
  idempotencyKey: string,
  { clientId, createdAt }: { readonly clientId: string; readonly createdAt: number },
): Begin {
  const payment = paymentFor('order-1001');
  return {
    kind: 'begin',
    txId,
    clientId,
    idempotencyKey,
    fingerprint: paymentFingerprint(payment),
    payment,
    participants: participantNames,
    createdAt,
    deadlineAt: createdAt + 5_000,
  };
}
