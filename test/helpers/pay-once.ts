/**
 * A client process for tests: connects with durable intents and makes one payment for a seeded
 * order. The test kills it mid-payment, like a crashed application server, and resumes its intents
 * from another process. Arguments: <nats urls> <client id> <intents file> <order id> <key>.
 */
import { ContinuumClient } from '../../client/index.ts';
import { paymentFor } from '../../participants/seed.ts';

const [servers, clientId, intentsFile, orderId, idempotencyKey] = process.argv.slice(2);
if (!servers || !clientId || !intentsFile || !orderId || !idempotencyKey) {
  console.error('usage: pay-once <nats urls> <client id> <intents file> <order id> <key>');
  process.exit(2);
}
const client = await ContinuumClient.connect({
  servers: servers.split(','),
  clientId,
  intentsFile,
});
const outcome = await client.makePayment(paymentFor(orderId), {
  idempotencyKey,
  onEvent: (event) => {
    if (event.kind === 'sent') console.log(JSON.stringify({ event: 'sent' }));
  },
});
console.log(JSON.stringify(outcome));
await client.close();
