/**
 * The coordinator's channel to the participants (coordinator/adapters/participant-channel.ts),
 * through a real nats-server, with a stand-in participant that answers as each test needs: what
 * goes to one participant at once travels as one batch, and every element of a batch gets exactly
 * one answer or one failure, whatever the participant answers, or fails to.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ValidationError } from '../../common/errors.ts';
import { connectNats, type Msg, type NatsConnection } from '../../common/nats.ts';
import {
  batchMessagesMax,
  decodeParticipantDelivery,
  encodeMessage,
  errorReply,
  readParticipantMessage,
  subjects,
  type ParticipantReply,
} from '../../common/protocol.ts';
import {
  ParticipantChannel,
  type Outgoing,
  type ParticipantAnswer,
} from '../../coordinator/adapters/participant-channel.ts';
import { startNatsServer, type NatsServerHandle } from '../../ops/nats-server.ts';
import { until } from '../helpers/wait.ts';

const timeoutMs = 300;
const bankSubject = subjects.participant('bank');

let server: NatsServerHandle;
const connections: NatsConnection[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'continuum-channel-'));

test.before(async () => {
  server = await startNatsServer({ dataDir });
});

test.after.always(async () => {
  for (const connection of connections) await connection.close();
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function connect(): Promise<NatsConnection> {
  const connection = await connectNats({ servers: [server.url], name: 'channel-test' });
  connections.push(connection);
  return connection;
}

/** A channel and what it reported, in order. */
async function openChannel(): Promise<{
  channel: ParticipantChannel;
  answers: ParticipantAnswer[];
}> {
  const answers: ParticipantAnswer[] = [];
  const channel = new ParticipantChannel({
    nats: await connect(),
    timeoutMs,
    now: Date.now,
    onAnswer: (answer) => answers.push(answer),
  });
  channel.open();
  return { channel, answers };
}

/** A stand-in bank on its own connection: every message it receives, and a way to answer. */
async function standInBank(subject = bankSubject): Promise<Msg[]> {
  const received: Msg[] = [];
  const nats = await connect();
  nats.subscribe(subject, {
    callback: (_error, msg) => {
      received.push(msg);
    },
  });
  await nats.flush();
  return received;
}

let nextTx = 0;
function txId(): string {
  nextTx += 1;
  return `01JZ${String(nextTx).padStart(22, '0')}`;
}

function commit(id: string): Outgoing {
  const message = { v: 1, kind: 'decision', txId: id, decision: 'commit', epoch: 1 } as const;
  return { sent: { kind: 'decision', txId: id }, data: encodeMessage(message) };
}

function yesVote(id: string): ParticipantReply {
  return { v: 1, kind: 'vote', txId: id, participant: 'bank', vote: 'yes' };
}

function ack(id: string): ParticipantReply {
  return { v: 1, kind: 'ack', txId: id, participant: 'bank', decision: 'commit' };
}

function prepare(id: string): Outgoing {
  const payment = {
    payer: 'alice',
    payee: 'acme',
    amountMinor: 100,
    currency: 'EUR',
    orderId: 'order-1',
    lines: [{ sku: 'book', quantity: 1, unitPriceMinor: 100 }],
  };
  const message = { v: 1, kind: 'prepare', txId: id, payment, epoch: 1 } as const;
  return { sent: { kind: 'prepare', txId: id }, data: encodeMessage(message) };
}

/** Waits, bounded, for what the test needs next; fails the test if it does not come. */
async function waitFor(condition: () => boolean, what: string, timeout = 5_000): Promise<void> {
  if (!(await until(condition, timeout))) throw new Error(`${what}: not within ${timeout} ms`);
}

function respond(msg: Msg, replies: { index: number; reply: ParticipantReply }[]): void {
  msg.respond(encodeMessage({ v: 1, kind: 'replies', replies }));
}

/** The stand-in's index-th message, which the test has waited for. */
function at(received: readonly Msg[], index: number): Msg {
  const msg = received[index];
  if (msg === undefined) throw new Error(`no message ${index}`);
  return msg;
}

/** The elements of a batch the stand-in received, checked. */
function elementsOf(msg: Msg) {
  const delivery = decodeParticipantDelivery(msg.data);
  if (delivery.kind !== 'batch') throw new Error('not a batch');
  return delivery.elements.map(readParticipantMessage);
}

/** A channel that has sent the stand-in bank two COMMITs, and the batch they arrived in. */
async function twoCommitsSent() {
  const received = await standInBank();
  const { channel, answers } = await openChannel();
  const [a, b] = [txId(), txId()];
  channel.send('bank', [commit(a), commit(b)], bankSubject);
  await waitFor(() => received.length === 1, 'the batch arrives');
  return { channel, answers, a, b, batch: at(received, 0) };
}

function summary(answer: ParticipantAnswer | undefined): string {
  if (answer === undefined) return 'none';
  const { kind, sent } = answer;
  const what = `${kind} ${sent.kind} ${sent.txId}`;
  if (answer.kind === 'failed') return `${what}: ${answer.error}`;
  try {
    const reply = answer.read();
    return `${what}: ${reply.kind}`;
  } catch (error) {
    return `${what}: unreadable (${error instanceof ValidationError ? error.field : 'other'})`;
  }
}

test.serial('a message alone travels as it is and its reply finds it', async (t) => {
  const received = await standInBank();
  const { channel, answers } = await openChannel();
  const id = txId();
  channel.send('bank', [prepare(id)], bankSubject);
  await waitFor(() => received.length === 1, 'the PREPARE arrives');
  const delivery = decodeParticipantDelivery(at(received, 0).data);
  t.is(delivery.kind, 'single');
  at(received, 0).respond(encodeMessage(yesVote(id)));
  await waitFor(() => answers.length === 1, 'the vote arrives');
  t.is(summary(answers[0]), `reply prepare ${id}: vote`);
  channel.close();
});

test.serial('what goes to one participant at once is one batch, answered by index', async (t) => {
  const received = await standInBank();
  const { channel, answers } = await openChannel();
  const [a, b] = [txId(), txId()];
  channel.send('bank', [commit(a), prepare(b)], bankSubject);
  await waitFor(() => received.length === 1, 'the batch arrives');
  t.deepEqual(
    elementsOf(at(received, 0)).map((message) => `${message.kind} ${message.txId}`),
    [`decision ${a}`, `prepare ${b}`],
  );
  // Answers leave as they are ready: the vote first, the acknowledgement later.
  respond(at(received, 0), [{ index: 1, reply: yesVote(b) }]);
  await waitFor(() => answers.length === 1, 'the vote arrives');
  respond(at(received, 0), [{ index: 0, reply: ack(a) }]);
  await waitFor(() => answers.length === 2, 'the ack arrives');
  t.deepEqual(answers.map(summary), [`reply prepare ${b}: vote`, `reply decision ${a}: ack`]);
  // Nothing else comes, not even a timeout, once every element is answered.
  await new Promise((resolve) => setTimeout(resolve, timeoutMs * 2));
  t.is(answers.length, 2);
  channel.close();
});

test.serial(
  'a batch holds at most batchMessagesMax messages; the rest follow in order',
  async (t) => {
    const received = await standInBank();
    const { channel } = await openChannel();
    const ids = Array.from({ length: batchMessagesMax + 8 }, () => txId());
    channel.send('bank', ids.map(commit), bankSubject);
    await waitFor(() => received.length === 2, 'two batches arrive');
    const [first, second] = [elementsOf(at(received, 0)), elementsOf(at(received, 1))];
    t.is(first.length, batchMessagesMax);
    t.is(second.length, 8);
    t.deepEqual(
      [...first, ...second].map((message) => message.txId),
      ids,
    );
    channel.close();
  },
);

test.serial('an error for the whole batch answers every element with it', async (t) => {
  const { channel, answers, a, b, batch } = await twoCommitsSent();
  batch.respond(encodeMessage(errorReply('payload-too-large', 'too big')));
  await waitFor(() => answers.length === 2, 'both answered');
  t.deepEqual(answers.map(summary), [`reply decision ${a}: error`, `reply decision ${b}: error`]);
  channel.close();
});

test.serial("an unreadable answer is every waiting element's unreadable reply", async (t) => {
  const { channel, answers, a, b, batch } = await twoCommitsSent();
  respond(batch, [{ index: 0, reply: ack(a) }]);
  await waitFor(() => answers.length === 1, 'the first answered');
  batch.respond(new TextEncoder().encode('{"v":1,"kind":"replies"'));
  await waitFor(() => answers.length === 2, 'the second answered');
  t.deepEqual(answers.map(summary), [
    `reply decision ${a}: ack`,
    `reply decision ${b}: unreadable (message)`,
  ]);
  channel.close();
});

test.serial('an element left unanswered times out once; its late answer is dropped', async (t) => {
  const { channel, answers, a, b, batch } = await twoCommitsSent();
  respond(batch, [{ index: 0, reply: ack(a) }]);
  await waitFor(() => answers.length === 2, 'the second times out', timeoutMs * 10);
  t.deepEqual(answers.map(summary), [
    `reply decision ${a}: ack`,
    `failed decision ${b}: timeout after ${timeoutMs} ms`,
  ]);
  // The batch is forgotten once each element has settled: a late answer finds nothing.
  respond(batch, [{ index: 1, reply: ack(b) }]);
  await new Promise((resolve) => setTimeout(resolve, timeoutMs * 2));
  t.is(answers.length, 2);
  channel.close();
});

test.serial('a re-sent element is answered under its newest send only once', async (t) => {
  const received = await standInBank();
  const { channel, answers } = await openChannel();
  const [a, b, c] = [txId(), txId(), txId()];
  channel.send('bank', [commit(a), commit(b)], bankSubject);
  channel.send('bank', [commit(b), commit(c)], bankSubject);
  await waitFor(() => received.length === 2, 'both batches arrive');
  // The first batch's answer for b comes while b waits under the second batch: it answers b.
  respond(at(received, 0), [
    { index: 0, reply: ack(a) },
    { index: 1, reply: ack(b) },
  ]);
  respond(at(received, 1), [{ index: 1, reply: ack(c) }]);
  await waitFor(() => answers.length === 3, 'all three answered');
  await new Promise((resolve) => setTimeout(resolve, timeoutMs * 2));
  t.deepEqual(answers.map(summary), [
    `reply decision ${a}: ack`,
    `reply decision ${b}: ack`,
    `reply decision ${c}: ack`,
  ]);
  channel.close();
});

test.serial(
  'with no participant listening, every element fails as having no responders',
  async (t) => {
    const { channel, answers } = await openChannel();
    const [a, b, c] = [txId(), txId(), txId()];
    const nobody = subjects.participant('vendor');
    channel.send('vendor', [commit(a), commit(b)], nobody);
    channel.send('vendor', [commit(c)], nobody);
    await waitFor(() => answers.length === 3, 'all three fail');
    t.deepEqual(
      answers.map(summary).sort(),
      [
        `failed decision ${a}: no responders`,
        `failed decision ${b}: no responders`,
        `failed decision ${c}: no responders`,
      ].sort(),
    );
    channel.close();
  },
);
