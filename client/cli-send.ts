/**
 * `pay send` and `pay status`: the client library on the command line. `send` makes one payment
 * and prints its definitive outcome; its idempotency key is printed first, so that whatever
 * happens to this process the payment can be resumed (`pay send --key <key>` with the same
 * payment) or looked up (`pay status <key>`).
 */
import {
  ContinuumClient,
  PaymentOutcomeUnknownError,
  PaymentRefusedError,
  newIdempotencyKey,
  type AttemptEvent,
  type OutcomeReply,
  type Payment,
  type StatusReply,
} from './index.ts';
import { formatMoney } from './cli-format.ts';
import type { Output } from './cli-format.ts';

/** No NATS server of the list accepted a connection in time. */
export class NatsUnreachableError extends Error {
  override readonly name = 'NatsUnreachableError';
  readonly servers: readonly string[];
  constructor(servers: readonly string[], waitedMs: number) {
    super(`could not connect to any of ${servers.join(', ')} within ${waitedMs} ms`);
    this.servers = servers;
  }
}

/** Exit codes of `pay send` beyond 0 (committed), 1 (failure) and 2 (usage). */
export const sendExitCodes = { aborted: 3, refused: 4, unknown: 5 } as const;

const connectWaitMs = 5_000;

/**
 * Connects, or gives up after a few seconds. The NATS client itself retries for ever (the
 * services want that); a command-line user wants to hear that nothing is listening.
 */
export async function connectClient(
  servers: readonly string[],
  clientId: string,
): Promise<ContinuumClient> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new NatsUnreachableError(servers, connectWaitMs));
    }, connectWaitMs);
  });
  try {
    return await Promise.race([ContinuumClient.connect({ servers, clientId }), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface SendOptions {
  readonly servers: readonly string[];
  readonly clientId: string;
  readonly payment: Payment;
  readonly idempotencyKey: string | undefined;
  readonly deadlineMs: number;
  /** Where the lines came from, for the output: given with --lines or the seeded order's. */
  readonly linesFrom: 'flag' | 'seeded order';
}

export async function runSend(options: SendOptions, output: Output): Promise<number> {
  const { payment, clientId } = options;
  const idempotencyKey = options.idempotencyKey ?? newIdempotencyKey();
  const amount = formatMoney(payment.amountMinor, payment.currency);
  const what = `${payment.payer} → ${payment.payee} ${amount} for ${payment.orderId}`;
  output.progress(`pay: ${what}, key ${idempotencyKey} (client ${clientId})`);
  const events: (AttemptEvent & { at: number })[] = [];
  const onEvent = (event: AttemptEvent): void => {
    events.push({ ...event, at: Date.now() });
    if (event.kind === 'failed') {
      const { attempt, failure, detail } = event;
      output.progress(
        `pay: attempt ${attempt}: ${failure} (${detail}); retrying with the same key`,
      );
    }
  };
  const base = { command: 'send', clientId, idempotencyKey, payment, linesFrom: options.linesFrom };
  const client = await connectClient(options.servers, clientId);
  try {
    const outcome = await client.makePayment(payment, {
      idempotencyKey,
      deadlineMs: options.deadlineMs,
      onEvent,
    });
    const attempts = events.filter((event) => event.kind === 'sent').length;
    output.document({ ...base, result: outcome.outcome, outcome, attempts, events });
    output.text(describeOutcome(outcome, attempts));
    return outcome.outcome === 'committed' ? 0 : sendExitCodes.aborted;
  } catch (error) {
    if (error instanceof PaymentRefusedError) {
      const refused = { code: error.code, message: error.message };
      output.document({ ...base, result: 'refused', refused, events });
      output.text(`refused: ${error.message}\n  key ${idempotencyKey}: not executed`);
      return sendExitCodes.refused;
    }
    if (error instanceof PaymentOutcomeUnknownError) {
      const unknown = { attempts: error.attempts, message: error.message };
      output.document({ ...base, result: 'unknown', unknown, events });
      output.text(
        `outcome unknown after ${error.attempts} attempts\n` +
          `  resume with: pay send ... --key ${idempotencyKey}\n` +
          `  or ask:      pay status ${idempotencyKey} --client-id ${clientId}`,
      );
      return sendExitCodes.unknown;
    }
    throw error;
  } finally {
    await client.close();
  }
}

function describeOutcome(outcome: OutcomeReply, attempts: number): string {
  const head =
    outcome.outcome === 'committed'
      ? 'committed'
      : `aborted by ${outcome.abortedBy ?? '?'}: ${outcome.reason ?? 'no reason given'}`;
  const lines = [
    `${head}${outcome.replay ? ' (replayed: this key was already decided)' : ''}`,
    `  tx        ${outcome.txId}`,
    `  key       ${outcome.idempotencyKey}`,
  ];
  if (outcome.receipt !== undefined) lines.push(`  receipt   ${outcome.receipt}`);
  lines.push(`  attempts  ${attempts}`);
  return lines.join('\n');
}

export interface StatusOptions {
  readonly servers: readonly string[];
  readonly clientId: string;
  readonly idempotencyKey: string;
}

export async function runStatus(options: StatusOptions, output: Output): Promise<number> {
  const { clientId, idempotencyKey } = options;
  const client = await connectClient(options.servers, clientId);
  let status: StatusReply | undefined;
  try {
    status = await client.status(idempotencyKey);
  } catch (error) {
    // A coordinator that does not know the key may say so with an error rather than a state.
    if (!(error instanceof PaymentRefusedError) || error.code !== 'not-found') throw error;
  } finally {
    await client.close();
  }
  const state = status?.state ?? 'unknown';
  output.document({ command: 'status', clientId, idempotencyKey, state, status: status ?? null });
  output.text(describeStatus(status, clientId, idempotencyKey));
  return 0;
}

function describeStatus(
  status: StatusReply | undefined,
  clientId: string,
  idempotencyKey: string,
): string {
  if (status === undefined || status.state === 'unknown') {
    const which = `key ${idempotencyKey} for client ${clientId}`;
    return `unknown: the coordinator has no payment with ${which}`;
  }
  const tx = `  tx  ${status.txId ?? '?'}`;
  if (status.state === 'aborted') {
    return `aborted by ${status.abortedBy ?? '?'}: ${status.reason ?? 'no reason given'}\n${tx}`;
  }
  if (status.state === 'preparing') return `preparing: being decided now\n${tx}`;
  return `committed\n${tx}`;
}
