/**
 * `pay demo`: a whole system in a temp directory (a 3-node NATS cluster, the coordinator, bank,
 * vendor and customer, each its own process with its own SQLite file, the demo world seeded) and
 * six scenarios played against it, each with the faults it is about injected for real: a
 * nats-server killed with SIGKILL, a participant killing itself at a crash point.
 *
 * Every scenario ends with its ladder diagram, drawn from what the processes recorded (see
 * ScenarioRecorder), and with what the three parties hold. The demo passes only when every
 * scenario got its expected outcome and, at the end, the invariant checker finds nothing wrong
 * across the four databases.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { checkInvariants, moneyBaseline, waitUntilSettled } from '../ops/checker.ts';
import type { NatsServerHandle } from '../ops/nats-server.ts';
import { databaseFiles, startStack, type Stack } from '../ops/stack.ts';
import { paymentFor, seedDemoData } from '../participants/seed.ts';
import { newIdempotencyKey, type ContinuumClient, type Payment } from './index.ts';
import { markSymbols } from './ladder.ts';
import { wrapText, type Output } from './cli-format.ts';
import { connectClient } from './cli-send.ts';
import {
  countRows,
  findConnection,
  formatSnapshot,
  lanesOn,
  partySnapshot,
  traceClock,
  untilCoordinatorAnswers,
  waitForTrace,
  ScenarioRecorder,
  type PartySnapshot,
  type PayResult,
} from './cli-demo-support.ts';

const demoClientId = 'demo';

interface DemoContext {
  readonly stack: Stack;
  /**
   * Waits until every payment has finished everywhere. The client hears the decision before the
   * participants apply it, so a check of their rows must wait for this first.
   */
  settle(): Promise<void>;
  client: ContinuumClient;
  /** Scenario 1's key and payment, which scenario 4 reuses with another amount. */
  first: { readonly idempotencyKey: string; readonly payment: Payment } | undefined;
}

/** What a scenario reports: its outcome in words, and every expectation that failed. */
interface Verdict {
  readonly outcome: string;
  readonly failures: readonly string[];
  /** The payment whose parties are shown after the ladder. */
  readonly payment: Payment;
}

interface Scenario {
  readonly title: string;
  readonly expected: string;
  /** What is about to happen, in a sentence or two, printed above the ladder. */
  readonly story: string;
  /** Set-up that is not part of the story, done before the scenario's clock starts. */
  arrange?(context: DemoContext): Promise<void>;
  play(context: DemoContext, recorder: ScenarioRecorder): Promise<Verdict>;
}

export interface ScenarioReport {
  readonly number: number;
  readonly title: string;
  readonly expected: string;
  readonly outcome: string;
  readonly ok: boolean;
  readonly failures: readonly string[];
  readonly idempotencyKeys: readonly string[];
  readonly txIds: readonly string[];
  readonly ladder: string;
  readonly parties: PartySnapshot | undefined;
  readonly durationMs: number;
}

function describe(result: PayResult): string {
  if (result.kind === 'refused') return `refused (${result.code})`;
  const { outcome } = result;
  if (outcome.outcome === 'committed') return `committed, tx ${outcome.txId}`;
  return `aborted by ${outcome.abortedBy ?? '?'} (${outcome.reason ?? ''}), tx ${outcome.txId}`;
}

function expect(failures: string[], condition: boolean, what: string): void {
  if (!condition) failures.push(what);
}

async function committedOnce(
  context: DemoContext,
  result: PayResult,
  idempotencyKey: string,
  failures: string[],
): Promise<void> {
  const { stack } = context;
  await context.settle();
  expect(
    failures,
    result.kind === 'outcome' && result.outcome.outcome === 'committed',
    'committed',
  );
  const payments = countRows(
    stack,
    'coordinator',
    'SELECT count(*) AS n FROM payments WHERE client_id = ? AND idempotency_key = ?',
    demoClientId,
    idempotencyKey,
  );
  expect(failures, payments === 1, `one transaction for the key (found ${payments})`);
  if (result.kind !== 'outcome') return;
  const captured = countRows(
    stack,
    'bank',
    "SELECT count(*) AS n FROM holds WHERE tx_id = ? AND state = 'captured'",
    result.outcome.txId,
  );
  expect(failures, captured === 1, `the bank captured the money once (found ${captured})`);
}

const plainPayment: Scenario = {
  title: 'A plain payment',
  expected: 'committed',
  story: 'alice pays acme 25.00 EUR for order-1001 (two books); nothing goes wrong.',
  async play(context, recorder) {
    const payment = paymentFor('order-1001');
    const idempotencyKey = newIdempotencyKey();
    context.first = { idempotencyKey, payment };
    const result = await recorder.pay(context.client, payment, { idempotencyKey });
    const failures: string[] = [];
    await committedOnce(context, result, idempotencyKey, failures);
    return { outcome: describe(result), failures, payment };
  },
};

/**
 * Reconnects the client until it sits on a server that no service uses, or failing that one that
 * neither the coordinator nor the vendor uses, so that hanging and killing that server loses the
 * client's answer and as little else as possible. Connections are spread at random over the
 * servers; a few tries find one.
 */
async function clientOnQuietServer(context: DemoContext): Promise<number> {
  const name = `client-${demoClientId}`;
  const attemptsMax = 12;
  for (let attempt = 1; ; attempt++) {
    const found = await findConnection(context.stack.nats, name, 5_000);
    if (found === undefined) throw new Error("the demo client's connection is in no /connz");
    const node = context.stack.nats[found.index];
    const busy = node === undefined ? [] : await lanesOn(node);
    const bystander = !busy.includes('coordinator') && !busy.includes('vendor');
    const good = busy.length === 0 || (attempt > attemptsMax / 2 && bystander);
    if (good || attempt === attemptsMax) return found.index;
    await context.client.close();
    context.client = await connectClient(context.stack.natsUrls, demoClientId);
  }
}

/**
 * Loses the coordinator's answer with the client's server: hangs the server (SIGSTOP) once the
 * coordinator has the request, lets the vendor vote, waits for the coordinator to answer into
 * the hung server, then kills it (SIGKILL) and watches the client reconnect elsewhere.
 */
async function loseTheAnswer(
  context: DemoContext,
  recorder: ScenarioRecorder,
  node: NatsServerHandle,
  idempotencyKey: string,
): Promise<boolean> {
  const { stack } = context;
  const others = await lanesOn(node);
  const coordinatorLog = stack.services.coordinator.spec.logFile;
  await waitForTrace(coordinatorLog, [idempotencyKey, '"what":"pay"'], 5_000);
  // The bank and customer vote within milliseconds; let their votes through first.
  await sleep(100);
  await node.pause();
  const hung = `SIGSTOP of nats-server ${node.name}, the client's server`;
  recorder.mark('client', 'pause', `${node.name} hangs`, hung);
  stack.services.vendor.resume();
  recorder.mark('vendor', 'restart', 'resumed', 'SIGCONT: it votes');
  await waitForTrace(coordinatorLog, [idempotencyKey, '"step":"reply"'], 3_000);
  const killedAt = Date.now();
  const killed = `kill -9 of nats-server ${node.name}: what it held is lost`;
  recorder.mark('client', 'fault', `${node.name} killed`, killed);
  await node.kill();
  for (const lane of others) {
    recorder.mark(lane, 'fault', 'conn lost', `its server ${node.name} died; it reconnects`);
  }
  const name = `client-${demoClientId}`;
  const moved = await findConnection(stack.nats, name, 5_000, killedAt - 1);
  if (moved === undefined) return false;
  const to = stack.nats[moved.index]?.name ?? '?';
  const detail = `reconnected to ${to} (its /connz)`;
  recorder.mark('client', 'restart', `on ${to}`, detail, moved.connection.startAt);
  return true;
}

const serverDies: Scenario = {
  title: "The client's NATS server dies before the answer comes back (the seed's scenario)",
  expected: 'committed, once, after a retry with the same key',
  story:
    'alice pays globex 30.00 EUR for order-1005. The vendor is paused so the payment is still ' +
    "undecided when the client's nats-server hangs; the answer is sent into the hung server, " +
    'which is then killed with kill -9. The client, given all three servers, reconnects to ' +
    'another, hears nothing, and retries with the same key.',
  async play(context, recorder) {
    const { stack } = context;
    const payment = paymentFor('order-1005');
    const idempotencyKey = newIdempotencyKey();
    const index = await clientOnQuietServer(context);
    const node = stack.nats[index];
    if (node === undefined) throw new Error(`no NATS node ${index}`);
    await stack.services.vendor.pause();
    recorder.mark('vendor', 'pause', 'paused', 'SIGSTOP: the payment stays undecided for now');
    let moved = false;
    let result: PayResult;
    try {
      // A long vote deadline: the vendor is held up on purpose, and that is not the story.
      const options = { idempotencyKey, paymentTimeoutMs: 20_000 };
      const paying = recorder.pay(context.client, payment, options);
      moved = await loseTheAnswer(context, recorder, node, idempotencyKey);
      result = await paying;
    } finally {
      // Whatever failed above, leave the system whole for the scenarios that follow.
      stack.services.vendor.resume();
      await node.restart();
    }
    const back = `nats-server ${node.name} restarted, rejoined the cluster`;
    recorder.mark('client', 'info', `${node.name} back`, back);
    const failures: string[] = [];
    await committedOnce(context, result, idempotencyKey, failures);
    const { attempts } = result;
    expect(failures, attempts >= 2, `a retry with the same key (attempts: ${attempts})`);
    expect(failures, moved, 'the client reconnected to another server');
    return { outcome: `${describe(result)}, ${attempts} attempts`, failures, payment };
  },
};

const pressedTwice: Scenario = {
  title: 'Submit pressed twice',
  expected: 'committed, applied once',
  story:
    'alice pays acme 82.50 EUR for order-1010; the shop sends the same request twice at once, ' +
    'with the same key, as if the buyer pressed submit twice.',
  async play(context, recorder) {
    const payment = paymentFor('order-1010');
    const idempotencyKey = newIdempotencyKey();
    const [first, second] = await Promise.all(
      ['submit 1', 'submit 2'].map((tag) =>
        recorder.pay(context.client, payment, { idempotencyKey, tag }),
      ),
    );
    const failures: string[] = [];
    if (first === undefined || second === undefined) throw new Error('two submissions expected');
    await committedOnce(context, first, idempotencyKey, failures);
    const sameTx =
      first.kind === 'outcome' &&
      second.kind === 'outcome' &&
      first.outcome.txId === second.outcome.txId;
    expect(failures, sameTx, 'both submissions answered with the same transaction');
    const purchases = countRows(
      context.stack,
      'customer',
      'SELECT count(*) AS n FROM purchases WHERE order_id = ?',
      payment.orderId,
    );
    expect(failures, purchases === 1, `one purchase at the customer (found ${purchases})`);
    return { outcome: `${describe(first)} (both submissions)`, failures, payment };
  },
};

const changedAmount: Scenario = {
  title: 'The same key with a changed amount',
  expected: 'refused (key-mismatch), nothing executed',
  story:
    "The shop reuses scenario 1's key for alice's order-1001 but asks for 30.00 EUR instead of " +
    '25.00 EUR.',
  async play(context, recorder) {
    const first = context.first;
    if (first === undefined) throw new Error('scenario 1 did not run');
    const payment = { ...first.payment, amountMinor: first.payment.amountMinor + 500 };
    await context.settle();
    const before = partySnapshot(context.stack, payment);
    const result = await recorder.pay(context.client, payment, {
      idempotencyKey: first.idempotencyKey,
    });
    await context.settle();
    const after = partySnapshot(context.stack, payment);
    const failures: string[] = [];
    expect(
      failures,
      result.kind === 'refused' && result.code === 'key-mismatch',
      'refused as key-mismatch',
    );
    expect(failures, JSON.stringify(before) === JSON.stringify(after), 'no party changed');
    return { outcome: describe(result), failures, payment };
  },
};

const participantDies: Scenario = {
  title: 'A participant killed after voting',
  expected: 'committed',
  story:
    'The bank was restarted with CONTINUUM_CRASH_AT=participant-after-vote: it kills itself ' +
    'right after its YES vote is durable, before replying. alice pays acme 12.50 EUR for ' +
    'order-1011; the demo restarts the bank normally once it has died.',
  async arrange(context) {
    await context.stack.services.bank.restart({ CONTINUUM_CRASH_AT: 'participant-after-vote' });
  },
  async play(context, recorder) {
    const { stack } = context;
    const payment = paymentFor('order-1011');
    const idempotencyKey = newIdempotencyKey();
    const bank = stack.services.bank;
    const paying = recorder.pay(context.client, payment, {
      idempotencyKey,
      paymentTimeoutMs: 20_000,
    });
    const died = await Promise.race([bank.exited().then(() => true), sleep(10_000, false)]);
    if (died) {
      const crash = 'crash point participant-after-vote: SIGKILL before replying';
      recorder.mark('bank', 'fault', 'killed', crash);
      await bank.start();
      const back = 'without the crash point; its barrier holds the YES vote';
      recorder.mark('bank', 'restart', 'restarted', back);
    } else {
      await bank.restart(); // Disarms the crash point for the scenarios that follow.
    }
    const result = await paying;
    const failures: string[] = [];
    expect(failures, died, 'the bank died at its crash point');
    await committedOnce(context, result, idempotencyKey, failures);
    return { outcome: describe(result), failures, payment };
  },
};

const insufficientFunds: Scenario = {
  title: 'Insufficient funds',
  expected: 'aborted by the bank, everywhere',
  story: 'bob, who has 20.00 EUR, pays acme 45.00 EUR for a lamp (order-1002).',
  async play(context, recorder) {
    const { stack } = context;
    const payment = paymentFor('order-1002');
    const idempotencyKey = newIdempotencyKey();
    const result = await recorder.pay(context.client, payment, { idempotencyKey });
    const failures: string[] = [];
    const outcome = result.kind === 'outcome' ? result.outcome : undefined;
    expect(
      failures,
      outcome?.outcome === 'aborted' && outcome.abortedBy === 'bank',
      'aborted by the bank',
    );
    expect(
      failures,
      outcome?.reason?.startsWith('insufficient funds') === true,
      'reason: insufficient funds',
    );
    const txId = outcome?.txId ?? '';
    await context.settle();
    const applied =
      countRows(
        stack,
        'bank',
        "SELECT count(*) AS n FROM holds WHERE tx_id = ? AND state <> 'released'",
        txId,
      ) +
      countRows(
        stack,
        'vendor',
        "SELECT count(*) AS n FROM reservations WHERE tx_id = ? AND state <> 'released'",
        txId,
      ) +
      countRows(
        stack,
        'customer',
        "SELECT count(*) AS n FROM purchases WHERE tx_id = ? AND status <> 'cancelled'",
        txId,
      );
    expect(failures, applied === 0, `nothing held or applied anywhere (found ${applied} rows)`);
    return { outcome: describe(result), failures, payment };
  },
};

const scenarios: readonly Scenario[] = [
  plainPayment,
  serverDies,
  pressedTwice,
  changedAmount,
  participantDies,
  insufficientFunds,
];

export interface DemoOptions {
  readonly keep: boolean;
}

export async function runDemo(options: DemoOptions, output: Output): Promise<number> {
  output.progress('Starting a 3-node NATS cluster, the coordinator, bank, vendor and customer ...');
  const started = Date.now();
  const stack = await startStack({
    cluster: true,
    env: { CONTINUUM_TRACE: '1' },
    seed: seedDemoData,
  });
  // Ctrl-C stops the processes started here and removes the temp directory before exiting.
  const interrupted = (): void => {
    void stack.stop({ remove: !options.keep }).finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const files = databaseFiles(stack);
  const reports: ScenarioReport[] = [];
  let violations: string[] = [];
  let settled = false;
  try {
    output.text(`Ready in ${Date.now() - started} ms; data in ${stack.root}`);
    output.text(legend());
    const baseline = moneyBaseline(files.bank);
    const client = await connectClient(stack.natsUrls, demoClientId);
    await untilCoordinatorAnswers(client, 10_000);
    const settle = async (): Promise<void> => {
      await waitUntilSettled(files, 10_000);
    };
    const context: DemoContext = { stack, settle, client, first: undefined };
    try {
      for (const [index, scenario] of scenarios.entries()) {
        const report = await playScenario(context, scenario, index + 1);
        reports.push(report);
        output.text(formatReport(report, scenario.story));
      }
    } finally {
      await context.client.close();
    }
    settled = await waitUntilSettled(files, 15_000);
    violations = checkInvariants(files, { baseline, settled });
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await stack.stop({ remove: !options.keep });
  }
  const ok = reports.every((report) => report.ok) && settled && violations.length === 0;
  output.document({
    command: 'demo',
    ok,
    root: stack.root,
    kept: options.keep,
    clientId: demoClientId,
    scenarios: reports,
    settled,
    violations,
  });
  output.text(summary(reports, settled, violations, options.keep ? stack.root : undefined));
  return ok ? 0 : 1;
}

async function playScenario(
  context: DemoContext,
  scenario: Scenario,
  number: number,
): Promise<ScenarioReport> {
  await scenario.arrange?.(context);
  const recorder = new ScenarioRecorder();
  let verdict: Verdict | undefined;
  let error: string | undefined;
  try {
    verdict = await scenario.play(context, recorder);
  } catch (caught) {
    error = caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught);
  }
  // Let the transaction finish everywhere (acks, the `completed` record) before drawing it, and
  // give the services' log streams a moment to reach their files.
  await context.settle();
  await sleep(200);
  const endAt = traceClock();
  const ladder = recorder.ladder(context.stack, endAt);
  const failures = error === undefined ? [...(verdict?.failures ?? [])] : [error];
  return {
    number,
    title: scenario.title,
    expected: scenario.expected,
    outcome: verdict?.outcome ?? 'failed',
    ok: failures.length === 0,
    failures,
    idempotencyKeys: [...recorder.idempotencyKeys],
    txIds: [...recorder.txIds],
    ladder: ladder.text,
    parties: verdict === undefined ? undefined : partySnapshot(context.stack, verdict.payment),
    durationMs: Math.round(endAt - recorder.startAt),
  };
}

function legend(): string {
  const marks = [
    `${markSymbols.write} durable write`,
    `${markSymbols.fault} kill, lost message or failed attempt`,
    `${markSymbols.restart} restart or reconnection`,
    `${markSymbols.pause} paused (SIGSTOP)`,
    `${markSymbols.wait} no answer`,
  ];
  return `Ladder diagrams: one row per event, ms since the scenario began; ${marks.join(', ')}.`;
}

function formatReport(report: ScenarioReport, story: string): string {
  const heading = `━━━ ${report.number}/6  ${report.title} `;
  const lines = ['', heading.padEnd(100, '━'), wrapText(story, 100), '', report.ladder, ''];
  const mark = report.ok ? '✓' : '✗';
  lines.push(`${mark} ${report.outcome}; expected ${report.expected}`);
  for (const failure of report.failures) lines.push(`  FAILED: ${failure}`);
  if (report.parties !== undefined) lines.push(formatSnapshot(report.parties));
  return lines.join('\n');
}

function summary(
  reports: readonly ScenarioReport[],
  settled: boolean,
  violations: readonly string[],
  keptRoot: string | undefined,
): string {
  const passed = reports.filter((report) => report.ok).length;
  const lines = ['', `${passed} of ${scenarios.length} scenarios got their expected outcome.`];
  if (!settled) lines.push('The system did not settle: something is still held or undecided.');
  lines.push(
    violations.length === 0
      ? 'Checked all four databases: every payment all-or-nothing, money conserved, nothing held.'
      : `INVARIANT VIOLATIONS:\n${violations.map((v) => `  ${v}`).join('\n')}`,
  );
  if (keptRoot !== undefined) {
    lines.push(
      `Data kept in ${keptRoot}; try:`,
      `  npm run pay -- balances --data ${keptRoot}`,
      `  npm run pay -- inspect <key or tx> --data ${keptRoot}`,
    );
  }
  return lines.join('\n');
}
