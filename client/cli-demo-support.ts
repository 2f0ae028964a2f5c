/**
 * What `pay demo` needs besides the scenarios themselves: a recorder that collects one scenario's
 * events (the client's attempts, the demo's own faults, the services' trace lines) for its ladder
 * diagram; a look at the NATS servers' monitoring endpoints to see who is connected where; and a
 * read-only snapshot of what the three parties hold for a payment.
 *
 * Every event is timestamped with `performance.timeOrigin + performance.now()`, the clock the
 * services' trace lines use, so events of all processes on this host sort together.
 */
import Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsServerHandle } from '../ops/nats-server.ts';
import type { ServiceName, Stack } from '../ops/stack.ts';
import type { ParticipantName } from '../common/protocol.ts';
import {
  newIdempotencyKey,
  PaymentRefusedError,
  type AttemptEvent,
  type ContinuumClient,
  type OutcomeReply,
  type Payment,
} from './index.ts';
import { renderLadder, type LadderColumn, type LadderEvent, type MarkKind } from './ladder.ts';
import {
  clientEventToLadderEvent,
  parseTraceLines,
  selectTraceLines,
  traceToLadderEvent,
} from './ladder-sources.ts';
import { formatMoney } from './cli-format.ts';

/** The host clock the services' traces use: epoch milliseconds with a fraction. */
export function traceClock(): number {
  return performance.timeOrigin + performance.now();
}

export type PayResult =
  | { readonly kind: 'outcome'; readonly outcome: OutcomeReply; readonly attempts: number }
  | {
      readonly kind: 'refused';
      readonly code: string;
      readonly message: string;
      readonly attempts: number;
    };

export interface PayOptions {
  readonly idempotencyKey: string;
  /** Tells concurrent submissions of one key apart on the ladder. */
  readonly tag?: string;
  /** The coordinator's deadline for votes; longer where the demo holds a participant up. */
  readonly paymentTimeoutMs?: number;
}

const serviceNames: readonly ServiceName[] = ['coordinator', 'bank', 'vendor', 'customer'];

/** Collects one scenario's events and draws its ladder. */
export class ScenarioRecorder {
  readonly startAt = traceClock();
  readonly idempotencyKeys = new Set<string>();
  readonly txIds = new Set<string>();
  readonly #events: LadderEvent[] = [];

  /** A mark drawn on a lane: a kill, a pause, a restart, a reconnection. */
  mark(
    column: LadderColumn,
    mark: MarkKind,
    label: string,
    detail?: string,
    at = traceClock(),
  ): void {
    this.#events.push({
      kind: 'mark',
      at,
      column,
      mark,
      label,
      ...(detail === undefined ? {} : { detail }),
    });
  }

  /** Makes a payment, recording every attempt; a refusal is a result, not an exception. */
  async pay(client: ContinuumClient, payment: Payment, options: PayOptions): Promise<PayResult> {
    const { idempotencyKey, tag } = options;
    this.idempotencyKeys.add(idempotencyKey);
    let attempts = 0;
    const onEvent = (event: AttemptEvent): void => {
      if (event.kind === 'sent') attempts += 1;
      const context = { at: traceClock(), idempotencyKey, ...(tag === undefined ? {} : { tag }) };
      const drawn = clientEventToLadderEvent(event, context);
      if (drawn !== undefined) this.#events.push(drawn);
    };
    const paymentOptions = {
      idempotencyKey,
      deadlineMs: 30_000,
      onEvent,
      ...(options.paymentTimeoutMs === undefined
        ? {}
        : { paymentTimeoutMs: options.paymentTimeoutMs }),
    };
    try {
      const outcome = await client.makePayment(payment, paymentOptions);
      this.txIds.add(outcome.txId);
      const replay = outcome.replay ? ' (replay)' : '';
      this.#labelLastAnswer(idempotencyKey, `${outcome.outcome}${replay}`);
      return { kind: 'outcome', outcome, attempts };
    } catch (error) {
      if (!(error instanceof PaymentRefusedError)) throw error;
      this.#labelLastAnswer(idempotencyKey, `error: ${error.code}`);
      return { kind: 'refused', code: error.code, message: error.message, attempts };
    }
  }

  /** The client learns what the answer meant only when makePayment returns; label it then. */
  #labelLastAnswer(idempotencyKey: string, label: string): void {
    for (let index = this.#events.length - 1; index >= 0; index--) {
      const event = this.#events[index];
      if (event?.kind === 'receive' && event.to === 'client' && event.ref === idempotencyKey) {
        this.#events[index] = { ...event, label };
        return;
      }
    }
  }

  /** Reads the services' traces of this scenario and draws everything, sorted by time. */
  ladder(stack: Stack, endAt: number): { text: string; events: readonly LadderEvent[] } {
    const traced: LadderEvent[] = [];
    const selection = {
      fromAt: this.startAt,
      toAt: endAt,
      idempotencyKeys: this.idempotencyKeys,
      txIds: this.txIds,
    };
    for (const name of serviceNames) {
      const lines = parseTraceLines(readLog(stack.services[name].spec.logFile));
      for (const line of selectTraceLines(lines, selection)) {
        const event = traceToLadderEvent(line);
        if (event !== undefined) traced.push(event);
      }
    }
    const events = [...this.#events, ...traced];
    return { text: renderLadder(events, { startAt: this.startAt }), events };
  }
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Waits until a service's log holds a trace line with all the given fragments. */
export async function waitForTrace(
  logFile: string,
  fragments: readonly string[],
  waitMs: number,
): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    const found = readLog(logFile)
      .split('\n')
      .some(
        (line) => line.startsWith('{"event":"trace"') && fragments.every((f) => line.includes(f)),
      );
    if (found) return true;
    await sleep(5);
  }
  return false;
}

/**
 * Waits until the coordinator answers this client. A service is ready once it has subscribed on
 * its own server; the other servers of a cluster learn of that subscription a moment later, and
 * until then a request through them finds "no responders".
 */
export async function untilCoordinatorAnswers(
  client: ContinuumClient,
  waitMs: number,
): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      await client.status(newIdempotencyKey(), 500);
      return;
    } catch (error) {
      if (error instanceof PaymentRefusedError) return; // An answer, though not a status.
      if (Date.now() >= deadline) throw error;
      await sleep(50);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Who is connected where: the servers' /connz monitoring endpoint.

export interface Connection {
  readonly name: string;
  /** When the server accepted the connection, epoch ms. */
  readonly startAt: number;
}

/** The named client connections of one running server; empty when it does not answer. */
async function connectionsOf(node: NatsServerHandle): Promise<Connection[]> {
  if (!node.isRunning()) return [];
  try {
    const url = `http://127.0.0.1:${node.httpPort}/connz?limit=1024`;
    const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    const body = (await response.json()) as { connections?: { name?: string; start?: string }[] };
    return (body.connections ?? []).flatMap((connection) =>
      connection.name === undefined
        ? []
        : [{ name: connection.name, startAt: Date.parse(connection.start ?? '') }],
    );
  } catch {
    return [];
  }
}

/** The index of the server a named connection is on, polled until `waitMs` passes. */
export async function findConnection(
  nodes: readonly NatsServerHandle[],
  name: string,
  waitMs: number,
  notBefore = 0,
): Promise<{ index: number; connection: Connection } | undefined> {
  const deadline = Date.now() + waitMs;
  do {
    for (const [index, node] of nodes.entries()) {
      const connection = (await connectionsOf(node)).find(
        (candidate) => candidate.name === name && candidate.startAt >= notBefore,
      );
      if (connection !== undefined) return { index, connection };
    }
    await sleep(20);
  } while (Date.now() < deadline);
  return undefined;
}

/** The lane of a service's connection name: `continuum-bank`, `continuum-coordinator-<n>`. */
function laneOfConnection(name: string): ServiceName | undefined {
  if (!name.startsWith('continuum-')) return undefined;
  const rest = name.slice('continuum-'.length);
  return serviceNames.find((service) => rest === service || rest.startsWith(`${service}-`));
}

/** The ladder lanes whose processes are connected to a server. */
export async function lanesOn(node: NatsServerHandle): Promise<ServiceName[]> {
  const lanes = new Set<ServiceName>();
  for (const connection of await connectionsOf(node)) {
    const lane = laneOfConnection(connection.name);
    if (lane !== undefined) lanes.add(lane);
  }
  return serviceNames.filter((service) => lanes.has(service));
}

// ---------------------------------------------------------------------------------------------
// What the three parties hold for one payment.

export interface PartySnapshot {
  readonly bank: readonly { ownerId: string; balanceMinor: number; heldMinor: number }[];
  readonly vendor: {
    readonly orderId: string;
    readonly status: string;
    readonly txId: string | null;
    readonly stock: readonly { sku: string; onHand: number; reserved: number }[];
  };
  readonly customer: {
    readonly customerId: string;
    readonly spentMinor: number;
    readonly limitMinor: number;
    readonly purchases: readonly { status: string; receipt: string | null }[];
  };
  readonly currency: string;
}

function query<T>(file: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma('query_only = ON');
    db.pragma('busy_timeout = 5000');
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

export function partySnapshot(stack: Stack, payment: Payment): PartySnapshot {
  const bank = query<{ ownerId: string; balanceMinor: number; heldMinor: number }>(
    stack.dbFile('bank'),
    `SELECT owner_id AS ownerId, balance_minor AS balanceMinor, held_minor AS heldMinor
     FROM accounts WHERE currency = ? AND owner_id IN (?, ?) ORDER BY owner_id = ? DESC`,
    payment.currency,
    payment.payer,
    payment.payee,
    payment.payer,
  );
  const vendorFile = stack.dbFile('vendor');
  const [order] = query<{ status: string; txId: string | null }>(
    vendorFile,
    'SELECT status, tx_id AS txId FROM orders WHERE order_id = ?',
    payment.orderId,
  );
  const stock = payment.lines.flatMap((line) =>
    query<{ sku: string; onHand: number; reserved: number }>(
      vendorFile,
      'SELECT sku, on_hand AS onHand, reserved FROM stock WHERE vendor_id = ? AND sku = ?',
      payment.payee,
      line.sku,
    ),
  );
  const customerFile = stack.dbFile('customer');
  const [customer] = query<{ spentMinor: number; limitMinor: number }>(
    customerFile,
    `SELECT spent_minor AS spentMinor, spending_limit_minor AS limitMinor
     FROM customers WHERE customer_id = ?`,
    payment.payer,
  );
  const purchases = query<{ status: string; receipt: string | null }>(
    customerFile,
    'SELECT status, receipt FROM purchases WHERE order_id = ? ORDER BY created_at',
    payment.orderId,
  );
  return {
    currency: payment.currency,
    bank,
    vendor: {
      orderId: payment.orderId,
      status: order?.status ?? 'missing',
      txId: order?.txId ?? null,
      stock,
    },
    customer: {
      customerId: payment.payer,
      spentMinor: customer?.spentMinor ?? 0,
      limitMinor: customer?.limitMinor ?? 0,
      purchases,
    },
  };
}

export function formatSnapshot(snapshot: PartySnapshot): string {
  const money = (minor: number): string => formatMoney(minor, snapshot.currency);
  const accounts = snapshot.bank
    .map((a) => `${a.ownerId} ${money(a.balanceMinor)} (held ${money(a.heldMinor)})`)
    .join(' · ');
  const { vendor, customer } = snapshot;
  const stock = vendor.stock
    .map((s) => `${s.sku}: ${s.onHand} on hand, ${s.reserved} reserved`)
    .join(', ');
  const paidBy = vendor.txId === null ? '' : ` (tx ${vendor.txId})`;
  const purchases =
    customer.purchases.length === 0
      ? `no purchase for ${vendor.orderId}`
      : customer.purchases
          .map((p) => `${vendor.orderId} ${p.status}${p.receipt === null ? '' : ` ${p.receipt}`}`)
          .join(', ');
  return [
    `  bank      ${accounts}`,
    `  vendor    ${vendor.orderId} ${vendor.status}${paidBy} · ${stock}`,
    `  customer  ${customer.customerId} spent ${money(customer.spentMinor)} ` +
      `of ${money(customer.limitMinor)} · ${purchases}`,
  ].join('\n');
}

/** Counts rows in one service's database, read-only. */
export function countRows(
  stack: Stack,
  name: 'coordinator' | ParticipantName,
  sql: string,
  ...params: unknown[]
): number {
  const [row] = query<{ n: number }>(stack.dbFile(name), sql, ...params);
  return row?.n ?? 0;
}
