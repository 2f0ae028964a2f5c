/**
 * The coordinator's key retention helpers: how often the purge runs, and which retentions the
 * coordinator warns about at start (coordinator/main.ts logs `key-retention-short`).
 */
import test from 'ava';
import { clientDeadlineMsDefault } from '../../common/protocol.ts';
import { keyPurgeIntervalMs, keyRetentionRisk } from '../../coordinator/core/key-retention.ts';

test('the purge runs every half retention, between 50 ms and once a minute', (t) => {
  t.is(keyPurgeIntervalMs(100), 50);
  t.is(keyPurgeIntervalMs(101), 50);
  t.is(keyPurgeIntervalMs(5_001), 2_500);
  t.is(keyPurgeIntervalMs(24 * 60 * 60 * 1000), 60_000);
});

test('a retention shorter than the client library keeps retrying is named a risk', (t) => {
  t.is(keyRetentionRisk(24 * 60 * 60 * 1000), undefined, 'the default of 24 hours');
  t.is(keyRetentionRisk(clientDeadlineMsDefault), undefined);
  const risk = keyRetentionRisk(clientDeadlineMsDefault - 1);
  t.truthy(risk);
  t.regex(risk ?? '', /--key-retention-ms 29999 is shorter than .* \(30000 ms\).* pay again/);
  t.truthy(keyRetentionRisk(100));
});
