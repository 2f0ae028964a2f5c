/**
 * The `pay` command, run as a child process exactly as a person or a script runs it
 * (`node --import tsx client/cli.ts ...`), against a real stack started here, and `pay demo`
 * end to end with its own stack. One stack for the whole file: the tests use distinct orders
 * and keys.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { waitUntilSettled } from '../../ops/checker.ts';
import { projectRoot } from '../../ops/service-process.ts';
import { HookCleanup, startTestStack, type TestStack } from '../helpers/harness.ts';

let ts: TestStack;
const cleanup = new HookCleanup();

test.before(async (t) => {
  ts = await startTestStack(cleanup.context(t));
});

test.after.always(() => cleanup.run());

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `pay` with these arguments and waits for it to exit. */
async function pay(args: readonly string[], timeoutMs = 30_000): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'client/cli.ts', ...args], {
    cwd: projectRoot,
    // Every test names its servers, so none may come from the environment.
    env: { ...process.env, CONTINUUM_NATS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

function nats(): string[] {
  return ['--nats', ts.stack.natsUrls.join(',')];
}

function json(run: Run): Record<string, unknown> {
  return JSON.parse(run.stdout) as Record<string, unknown>;
}

const alicePaysBooks = [
  'send',
  '--from',
  'alice',
  '--to',
  'acme',
  '--amount',
  '1250',
  '--currency',
  'EUR',
];

test.serial('send commits and prints the outcome; the same key again is a replay', async (t) => {
  const key = 'cli-key-0000000000001';
  const args = [...alicePaysBooks, '--order', 'order-1011', '--key', key, ...nats()];
  const text = await pay(args);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^committed\n {2}tx {8}[0-9A-Z]{26}\n/);
  t.regex(text.stdout, /receipt {3}rcpt-/);
  t.regex(text.stderr, new RegExp(`key ${key} \\(client pay-cli\\)`), 'the key comes first');
  const again = await pay([...args, '--json']);
  t.is(again.code, 0, again.stderr);
  const document = json(again);
  t.like(document, {
    command: 'send',
    result: 'committed',
    clientId: 'pay-cli',
    idempotencyKey: key,
    linesFrom: 'seeded order',
    outcome: { outcome: 'committed', replay: true },
    attempts: 1,
  });
  t.is(again.stderr, '', 'nothing but the document in JSON mode');
});

test.serial('send with --lines; an abort exits 3, a reused key exits 4', async (t) => {
  const pen = ['send', '--from', 'bob', '--to', 'acme', '--amount', '300', '--currency', 'EUR'];
  const lines = await pay([...pen, '--order', 'order-1009', '--lines', 'pen:1:300', ...nats()]);
  t.is(lines.code, 0, lines.stderr);
  const lamp = ['--from', 'bob', '--to', 'acme', '--amount', '4500', '--currency', 'EUR'];
  const aborted = await pay(['send', ...lamp, '--order', 'order-1002', '--json', ...nats()]);
  t.is(aborted.code, 3, aborted.stderr);
  t.like(json(aborted), { result: 'aborted', outcome: { outcome: 'aborted', abortedBy: 'bank' } });
  const key = 'cli-key-0000000000002';
  const first = await pay([...alicePaysBooks, '--order', 'order-1012', '--key', key, ...nats()]);
  t.is(first.code, 0, first.stderr);
  const changed = alicePaysBooks.map((arg) => (arg === '1250' ? '1300' : arg));
  const reused = await pay([...changed, '--order', 'order-1012', '--key', key, ...nats()]);
  t.is(reused.code, 4);
  t.regex(reused.stdout, /^refused: key-mismatch/);
});

test.serial(
  'status answers by key, in text and JSON, and says unknown for a new key',
  async (t) => {
    const known = await pay(['status', 'cli-key-0000000000001', ...nats()]);
    t.is(known.code, 0, known.stderr);
    t.regex(known.stdout, /^committed\n {2}tx {2}[0-9A-Z]{26}$/m);
    const document = await pay(['status', 'cli-key-0000000000001', '--json', ...nats()]);
    t.like(json(document), { command: 'status', state: 'committed', clientId: 'pay-cli' });
    const otherClient = ['--client-id', 'someone-else', '--json', ...nats()];
    const scoped = await pay(['status', 'cli-key-0000000000001', ...otherClient]);
    t.like(json(scoped), { state: 'unknown' }, 'keys are scoped to the client id');
    const unknown = await pay(['status', 'cli-key-never-used-01', ...nats()]);
    t.regex(unknown.stdout, /^unknown: the coordinator has no payment/);
  },
);

test.serial('balances and inspect read the databases of a running stack', async (t) => {
  t.true(await waitUntilSettled(ts.files, 10_000));
  const data = ['--data', ts.stack.root];
  const text = await pay(['balances', ...data]);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^Bank accounts\n/);
  t.regex(text.stdout, /alice +acct-alice-eur +475\.00 EUR/, '500.00 - 12.50 - 12.50');
  const balances = json(await pay(['balances', ...data, '--json']));
  const orders = balances['openOrders'] as { orderId: string }[];
  t.false(
    orders.some((order) => order.orderId === 'order-1011'),
    'a paid order is not open',
  );
  t.true(
    orders.some((order) => order.orderId === 'order-1002'),
    'the aborted one still is',
  );
  const purchases = balances['purchases'] as { orderId: string; status: string }[];
  t.like(
    purchases.find((p) => p.orderId === 'order-1011'),
    { status: 'completed' },
  );

  const inspect = await pay(['inspect', 'cli-key-0000000000001', ...data]);
  t.is(inspect.code, 0, inspect.stderr);
  t.regex(inspect.stdout, /^Transaction [0-9A-Z]{26}: committed\n {2}client pay-cli, key cli-/);
  for (const row of [
    /journal +#\d+ begin: alice → acme 12\.50 EUR/,
    /bank +holds +hold captured/,
  ]) {
    t.regex(inspect.stdout, row);
  }
  const document = json(await pay(['inspect', 'cli-key-0000000000001', ...data, '--json']));
  const timeline = document['timeline'] as { at: number; party: string; what: string }[];
  const times = timeline.map((entry) => entry.at);
  t.deepEqual(
    times,
    [...times].sort((a, b) => a - b),
    'sorted by time',
  );
  t.regex(timeline[0]?.what ?? '', /begin/);
  t.regex(timeline.at(-1)?.what ?? '', /completed/);
  for (const party of ['bank', 'vendor', 'customer']) {
    t.true(
      timeline.some((e) => e.party === party && e.what === 'prepare yes'),
      party,
    );
    t.true(
      timeline.some((e) => e.party === party && e.what === 'commit done'),
      party,
    );
  }
  const byTx = json(await pay(['inspect', String(document['txId']), ...data, '--json']));
  t.deepEqual(byTx['timeline'], timeline, 'a transaction id finds the same transaction');
  const missing = await pay(['inspect', 'cli-key-never-used-01', ...data]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /no transaction or idempotency key cli-key-never-used-01/);
});

test.serial('bad command lines exit 2 with a message that names the problem', async (t) => {
  const cases: [string[], RegExp][] = [
    [[], /^pay <command>/],
    [['refund'], /unknown command "refund"/],
    [['send', '--bogus'], /unknown flag --bogus/],
    [['send', '--from'], /--from needs a value/],
    [['send', '--from', 'alice', '--from', 'bob'], /--from is given twice/],
    [['send', '--to', 'acme'], /--from is required/],
    [[...alicePaysBooks, '--order', 'order-9'], /--lines is required: order-9 is not an order/],
    [[...alicePaysBooks, '--order', 'o-1', '--lines', 'book:2'], /sku:quantity:unitPriceMinor/],
    [
      [...alicePaysBooks.slice(0, 6), '12.50', '--currency', 'EUR', '--order', 'order-1013'],
      /--amount .* not "12\.50"/,
    ],
    [
      [...alicePaysBooks.map((arg) => (arg === 'alice' ? 'Alice' : arg)), '--order', 'o-1'],
      /--from must be 1-64 of a-z/,
    ],
    [[...alicePaysBooks.slice(0, -1), 'eur', '--order', 'order-1013'], /--currency must be/],
    [[...alicePaysBooks, '--order', 'order-1013', '--key', 'short'], /--key must be 16-64/],
    [[...alicePaysBooks, '--order', 'order-1013', '--nats', 'http://x:1'], /not a nats:\/\//],
    [['status'], /pay status takes <key>, got none/],
    [['balances'], /--data is required/],
    [['balances', '--data', '/nonexistent-dir'], /is not a directory/],
    [['inspect', 'x', '--data', '.'], /must be a transaction id or an idempotency key/],
    [['demo', '--keep=yes'], /--keep takes no value/],
  ];
  const runs = await Promise.all(cases.map(([args]) => pay(args)));
  for (const [index, [args, message]] of cases.entries()) {
    t.is(runs[index]?.code, 2, `pay ${args.join(' ')}`);
    t.regex(runs[index]?.stderr ?? '', message, `pay ${args.join(' ')}`);
  }
  const document = await pay(['send', '--bogus', '--json']);
  t.like(json(document), { command: 'send', error: { name: 'UsageError' }, exitCode: 2 });
  const help = await pay(['send', '--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /^pay send \[flags\]/);
});

test.serial('pay demo --json plays all six scenarios as expected, with no violation', async (t) => {
  const run = await pay(['demo', '--json'], 55_000);
  t.is(run.code, 0, run.stderr);
  const document = json(run);
  const scenarios = document['scenarios'] as {
    number: number;
    ok: boolean;
    outcome: string;
    failures: string[];
    ladder: string;
  }[];
  t.deepEqual(
    scenarios.map((s) => [s.number, s.ok, s.failures]),
    [1, 2, 3, 4, 5, 6].map((n) => [n, true, []]),
  );
  const [plain, serverDies, twice, changed, participantDies, poor] = scenarios;
  t.regex(plain?.outcome ?? '', /^committed/);
  t.regex(serverDies?.outcome ?? '', /^committed, tx \w+, [2-9] attempts/);
  t.regex(serverDies?.ladder ?? '', /✗ node-\d killed/);
  t.regex(serverDies?.ladder ?? '', /pay #2 same key/);
  t.regex(twice?.outcome ?? '', /\(both submissions\)/);
  t.is(changed?.outcome, 'refused (key-mismatch)');
  t.regex(participantDies?.ladder ?? '', /✗ killed/);
  t.regex(poor?.outcome ?? '', /^aborted by bank \(insufficient funds/);
  t.like(document, { ok: true, settled: true, violations: [] });
});
