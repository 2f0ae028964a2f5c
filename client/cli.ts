/**
 * `pay`: make payments, look them up, read what the parties hold, and watch the whole system
 * survive faults (`pay demo`). Every subcommand takes `--json` for one machine-readable document
 * on stdout, and `--help`.
 *
 * Exit codes: 0 done (for `send`: committed); 1 failed (for `demo`: a scenario or an invariant
 * failed); 2 the command line is wrong; `send` only: 3 aborted, 4 refused (an invalid request or
 * a key reused for another payment; never executed), 5 outcome unknown before the deadline
 * (resume with the same key).
 *
 * Run it as `npm run pay -- <command> ...`, `npx pay <command> ...` or, after `npm link`, `pay`.
 */
import { errorText } from '../common/log.ts';
import { demoWorld } from '../participants/seed.ts';
import {
  UsageError,
  amountFlag,
  booleanFlag,
  clientIdDefault,
  clientIdFlag,
  currencyFlag,
  directoryFlag,
  helpText,
  identifierFlag,
  idempotencyKey,
  integerFlag,
  linesText,
  natsFlag,
  natsUrlDefault,
  optionalClientIdFlag,
  optionalKeyFlag,
  parseCommandLine,
  type CommandSpec,
  type FlagSpec,
  type ParsedCommand,
} from './cli-args.ts';
import {
  dataFiles,
  formatBalances,
  formatInspection,
  inspectTransaction,
  readBalances,
  TransactionNotFoundError,
} from './cli-data.ts';
import { runDemo } from './cli-demo.ts';
import { createOutput, type Output } from './cli-format.ts';
import { runSend, runStatus } from './cli-send.ts';
import { runStack } from './cli-stack.ts';
import { idempotencyKeyPattern, type OrderLine } from '../common/protocol.ts';
import type { Payment } from './index.ts';

const common: Readonly<Record<string, FlagSpec>> = {
  json: { type: 'boolean', help: 'print one JSON document on stdout instead of text' },
  help: { type: 'boolean', help: 'show this help' },
};

const connection: Readonly<Record<string, FlagSpec>> = {
  nats: {
    type: 'string',
    value: '<urls>',
    help:
      'comma-separated nats:// URLs, every node of a cluster ' +
      `(default $CONTINUUM_NATS or ${natsUrlDefault})`,
  },
  'client-id': {
    type: 'string',
    value: '<id>',
    help: `who is paying: keys are scoped to it (default ${clientIdDefault})`,
  },
};

const dataFlag: Readonly<Record<string, FlagSpec>> = {
  data: {
    type: 'string',
    value: '<dir>',
    help: 'a stack root (<dir>/bank/bank.sqlite ...) or a directory of bank.sqlite ...',
  },
};

interface Command {
  readonly spec: CommandSpec;
  run(parsed: ParsedCommand, output: Output): Promise<number>;
}

const send: Command = {
  spec: {
    name: 'send',
    summary: 'Make one payment and print its definitive outcome.',
    positionals: [],
    flags: {
      from: { type: 'string', value: '<customer>', help: 'the paying customer, e.g. alice' },
      to: { type: 'string', value: '<vendor>', help: 'the vendor paid, e.g. acme' },
      amount: {
        type: 'string',
        value: '<minor units>',
        help: 'the amount in cents (2500 = 25.00 EUR)',
      },
      currency: { type: 'string', value: '<code>', help: 'ISO 4217 code, e.g. EUR' },
      order: { type: 'string', value: '<id>', help: "the vendor's order this pays" },
      lines: {
        type: 'string',
        value: '<sku:qty:price,...>',
        help: "the order's lines; default: the seeded demo order's lines, when --order names one",
      },
      key: {
        type: 'string',
        value: '<key>',
        help: 'idempotency key: reuse one to resume (default: a new ULID)',
      },
      'deadline-ms': {
        type: 'string',
        value: '<ms>',
        help: 'give up (exit 5) after this long (default 30000)',
      },
      ...connection,
      ...common,
    },
    notes: [
      'The key is printed on stderr before the first attempt. Run the same command with ' +
        '--key <key> to resume a payment whose outcome you did not see: it is executed at ' +
        'most once.',
      'Exit codes: 0 committed, 3 aborted, 4 refused (never executed), 5 outcome unknown, ' +
        '1 failed, 2 usage.',
    ],
    examples: [
      'pay send --from alice --to acme --amount 2500 --currency EUR --order order-1001',
      'pay send --from bob --to acme --amount 300 --currency EUR --order order-1009 ' +
        '--lines pen:1:300 --json',
    ],
  },
  async run({ values }, output) {
    const name = 'send';
    // Checked in the order the flags are documented, so the first complaint is the first flag.
    const payer = identifierFlag(values, 'from', name);
    const payee = identifierFlag(values, 'to', name);
    const amountMinor = amountFlag(values, name);
    const currency = currencyFlag(values, name);
    const orderId = identifierFlag(values, 'order', name);
    const lines = orderLines(values['lines'], orderId);
    const payment: Payment = { payer, payee, amountMinor, currency, orderId, lines: lines.lines };
    return runSend(
      {
        payment,
        servers: natsFlag(values, name),
        clientId: clientIdFlag(values, name),
        idempotencyKey: optionalKeyFlag(values, name),
        deadlineMs: integerFlag(
          values,
          'deadline-ms',
          { min: 100, max: 3_600_000, fallback: 30_000 },
          name,
        ),
        linesFrom: lines.from,
      },
      output,
    );
  },
};

/** The order lines: from --lines, or the seeded demo order's when --order names one. */
function orderLines(
  text: string | boolean | undefined,
  orderId: string,
): { lines: OrderLine[]; from: 'flag' | 'seeded order' } {
  if (typeof text === 'string') return { lines: linesText(text, 'send'), from: 'flag' };
  const seeded = demoWorld.orders.find((order) => order.orderId === orderId);
  if (seeded === undefined) {
    throw new UsageError(
      `--lines is required: ${orderId} is not an order of the seeded demo world ` +
        `(${demoWorld.orders[0]?.orderId ?? ''} ... ${demoWorld.orders.at(-1)?.orderId ?? ''})`,
      'send',
    );
  }
  return { lines: [...seeded.lines], from: 'seeded order' };
}

const status: Command = {
  spec: {
    name: 'status',
    summary: 'Ask the coordinator what became of a payment, by its idempotency key.',
    positionals: [{ name: 'key', help: 'the idempotency key the payment was sent with' }],
    flags: { ...connection, ...common },
    notes: ['States: committed, aborted, preparing (being decided), unknown (no such key).'],
    examples: [
      'pay status 01KAP1Y8S9TT5ZB1Q6Y9N5QJ3M',
      'pay status 01KAP1Y8S9TT5ZB1Q6Y9N5QJ3M --client-id demo --json',
    ],
  },
  async run({ values, positionals }, output) {
    return runStatus(
      {
        idempotencyKey: idempotencyKey(positionals[0] ?? '', '<key>', 'status'),
        servers: natsFlag(values, 'status'),
        clientId: clientIdFlag(values, 'status'),
      },
      output,
    );
  },
};

const balances: Command = {
  spec: {
    name: 'balances',
    summary: "Show the parties' accounts, unpaid orders and purchases (read-only).",
    positionals: [],
    flags: { ...dataFlag, ...common },
    notes: [
      'Reads the bank, vendor and customer SQLite files read-only; the services may keep running.',
    ],
    examples: ['pay balances --data /tmp/continuum-Xc81Qa', 'pay balances --data . --json'],
  },
  async run({ values }, output) {
    const dir = directoryFlag(values, 'data', 'balances');
    const result = readBalances(dataFiles(dir, ['bank', 'vendor', 'customer'], 'balances'));
    output.document({ command: 'balances', data: dir, ...result });
    output.text(formatBalances(result));
    return Promise.resolve(0);
  },
};

const inspect: Command = {
  spec: {
    name: 'inspect',
    summary: 'Show one transaction as a timeline across the four databases (read-only).',
    positionals: [{ name: 'key|txId', help: 'a transaction id, or an idempotency key' }],
    flags: {
      ...dataFlag,
      'client-id': {
        type: 'string',
        value: '<id>',
        help: "which client's key, when several clients used it",
      },
      ...common,
    },
    notes: [
      "Shows the coordinator's journal records and payments row, and each participant's barrier " +
        'rows and business rows (holds, reservations, orders, purchases), sorted by time.',
    ],
    examples: ['pay inspect 01KAP1Y8S9TT5ZB1Q6Y9N5QJ3M --data /tmp/continuum-Xc81Qa'],
  },
  async run({ values, positionals }, output) {
    const id = positionals[0] ?? '';
    // A transaction id (a ULID, 26 characters) matches the idempotency key pattern too.
    if (!idempotencyKeyPattern.test(id)) {
      throw new UsageError(
        `<key|txId> must be a transaction id or an idempotency key, not ${JSON.stringify(id)}`,
        'inspect',
      );
    }
    const dir = directoryFlag(values, 'data', 'inspect');
    const files = dataFiles(dir, ['coordinator', 'bank', 'vendor', 'customer'], 'inspect');
    const inspection = inspectTransaction(
      files,
      id,
      optionalClientIdFlag(values, 'inspect'),
      'inspect',
    );
    output.document({ command: 'inspect', data: dir, ...inspection });
    output.text(formatInspection(inspection));
    return Promise.resolve(0);
  },
};

const demo: Command = {
  spec: {
    name: 'demo',
    summary: 'Start a whole system and play six scenarios with real faults, as ladders.',
    positionals: [],
    flags: {
      keep: { type: 'boolean', help: 'keep the temp directory (for pay balances / inspect)' },
      ...common,
    },
    notes: [
      'Starts a 3-node NATS cluster, the coordinator, bank, vendor and customer in a temp ' +
        "directory, seeded with the demo world, and plays: a plain payment; the client's NATS " +
        'server killed before the answer comes back; submit pressed twice; a key reused with ' +
        'another amount; a participant killed after voting; insufficient funds.',
      'Exit code 0 only if every scenario got its expected outcome and every invariant holds.',
    ],
    examples: ['pay demo', 'pay demo --json --keep'],
  },
  async run({ values }, output) {
    return runDemo({ keep: booleanFlag(values, 'keep') }, output);
  },
};

const stack: Command = {
  spec: {
    name: 'stack',
    summary: 'Run a seeded system for send, status, balances and inspect, until Ctrl-C.',
    positionals: [],
    flags: {
      cluster: { type: 'boolean', help: 'run a 3-node NATS cluster instead of one server' },
      keep: { type: 'boolean', help: 'keep the temp directory when stopped' },
      ...common,
    },
    notes: [
      'Starts nats-server, the coordinator, bank, vendor and customer in a temp directory, ' +
        'seeded with the demo world (participants/seed.ts), and prints the NATS URLs and the ' +
        'data directory. With --json that is one JSON document, printed once all is ready.',
    ],
    examples: ['pay stack', 'pay stack --cluster --keep'],
  },
  async run({ values }, output) {
    const options = { cluster: booleanFlag(values, 'cluster'), keep: booleanFlag(values, 'keep') };
    return runStack(options, output);
  },
};

const commands: Readonly<Record<string, Command>> = {
  send,
  status,
  balances,
  inspect,
  demo,
  stack,
};

function overview(): string {
  const names = Object.values(commands).map((command) => command.spec);
  const width = Math.max(...names.map((spec) => spec.name.length));
  return [
    'pay <command> [flags]: payments through Continuum, from the command line',
    '',
    ...names.map((spec) => `  ${spec.name.padEnd(width)}  ${spec.summary}`),
    '',
    'Every command takes --json (one JSON document on stdout) and --help.',
    'Exit codes: 0 done, 1 failed, 2 bad command line; ' +
      'pay send adds 3 aborted, 4 refused, 5 unknown.',
  ].join('\n');
}

/** Runs one command line; returns the exit code. Never throws. */
async function main(argv: readonly string[]): Promise<number> {
  const json = argv.includes('--json');
  const output = createOutput(json);
  const [name, ...rest] = argv;
  try {
    if (name === undefined) {
      process.stderr.write(`${overview()}\n`);
      return 2;
    }
    if (name === 'help' || name === '--help' || name === '-h') {
      process.stdout.write(`${overview()}\n`);
      return 0;
    }
    const command = commands[name];
    if (command === undefined) {
      throw new UsageError(
        `unknown command ${JSON.stringify(name)}; commands: ${Object.keys(commands).join(', ')}`,
      );
    }
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(`${helpText(command.spec)}\n`);
      return 0;
    }
    return await command.run(parseCommandLine(command.spec, rest), output);
  } catch (error) {
    return reportError(error, name, json);
  }
}

function reportError(error: unknown, command: string | undefined, json: boolean): number {
  const code = error instanceof UsageError ? 2 : 1;
  const name = error instanceof Error ? error.name : 'Error';
  const message = error instanceof Error ? error.message : String(error);
  if (json) {
    const document = { command: command ?? null, error: { name, message }, exitCode: code };
    process.stdout.write(`${JSON.stringify(document)}\n`);
  }
  const hint =
    error instanceof UsageError
      ? `\n(run: pay ${error.command === undefined ? '' : `${error.command} `}--help)`
      : '';
  const known = error instanceof UsageError || error instanceof TransactionNotFoundError;
  process.stderr.write(`pay: ${known ? message : errorText(error)}${hint}\n`);
  return code;
}

const exitCode = await main(process.argv.slice(2));
// The NATS client may still be retrying a connection that never came; nothing else is pending.
process.stdout.write('', () => process.exit(exitCode));
