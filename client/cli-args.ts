/**
 * Command-line parsing for `pay`: each subcommand declares its flags and positionals once, and
 * that declaration drives both the parser and the help text. Every value is checked here, before
 * anything is opened or connected; a bad one is a UsageError that names the flag, and `pay`
 * exits with code 2.
 */
import { existsSync, statSync } from 'node:fs';
import { parseCommandArgs } from '../common/cli.ts';
import { currencyCodes } from '../common/currencies.ts';
import { ConfigError } from '../common/errors.ts';
import {
  amountMinorMax,
  clientIdPattern,
  identifierPattern,
  idempotencyKeyPattern,
  orderLineCountMax,
  quantityMax,
  type OrderLine,
} from '../common/protocol.ts';
import { wrapText } from './cli-format.ts';

/** The command line cannot be used as given: an unknown flag, a missing or malformed value. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  /** The subcommand whose help explains the fix, when there is one. */
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(message);
    this.command = command;
  }
}

export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  /** How the value is shown in help, e.g. `<customer>`. */
  readonly value?: string;
  readonly help: string;
}

export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  readonly positionals: readonly { readonly name: string; readonly help: string }[];
  readonly flags: Readonly<Record<string, FlagSpec>>;
  readonly examples: readonly string[];
  /** Further paragraphs of help: defaults, exit codes. */
  readonly notes?: readonly string[];
}

export type FlagValues = Readonly<Record<string, string | boolean | undefined>>;

export interface ParsedCommand {
  readonly values: FlagValues;
  readonly positionals: readonly string[];
}

/** Parses one subcommand's arguments strictly: unknown, repeated or valueless flags are errors. */
export function parseCommandLine(spec: CommandSpec, args: readonly string[]): ParsedCommand {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const [name, flag] of Object.entries(spec.flags)) options[name] = { type: flag.type };
  let parsed;
  try {
    parsed = parseCommandArgs({
      args: [...args],
      options,
      strict: true,
      allowPositionals: true,
      tokens: true,
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new UsageError(error.message, spec.name);
  }
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    if (seen.has(token.name)) throw new UsageError(`--${token.name} is given twice`, spec.name);
    seen.add(token.name);
  }
  const expected = spec.positionals.map((positional) => `<${positional.name}>`);
  if (parsed.positionals.length !== spec.positionals.length) {
    const what = expected.length === 0 ? 'no arguments' : expected.join(' ');
    const got = parsed.positionals.length === 0 ? 'none' : parsed.positionals.join(' ');
    throw new UsageError(`pay ${spec.name} takes ${what}, got ${got}`, spec.name);
  }
  return { values: parsed.values, positionals: parsed.positionals };
}

const helpWidth = 100;

export function helpText(spec: CommandSpec): string {
  const positionals = spec.positionals.map((positional) => ` <${positional.name}>`).join('');
  const lines = [`pay ${spec.name}${positionals} [flags]`, '', `  ${spec.summary}`, ''];
  const rows: [string, string][] = spec.positionals.map((p) => [`<${p.name}>`, p.help]);
  for (const [name, flag] of Object.entries(spec.flags)) {
    rows.push([`--${name}${flag.value === undefined ? '' : ` ${flag.value}`}`, flag.help]);
  }
  const width = Math.max(...rows.map(([left]) => left.length));
  const hanging = ' '.repeat(width + 4);
  for (const [left, right] of rows) {
    lines.push(`  ${left.padEnd(width)}  ${wrapText(right, helpWidth - hanging.length, hanging)}`);
  }
  for (const note of spec.notes ?? []) lines.push('', `  ${wrapText(note, helpWidth - 2, '  ')}`);
  lines.push('', 'Examples:', ...spec.examples.map((example) => `  ${example}`));
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Values. Each reads one flag and returns it typed, or throws a UsageError that names it.

function stringValue(values: FlagValues, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

export function booleanFlag(values: FlagValues, name: string): boolean {
  return values[name] === true;
}

export function requiredString(values: FlagValues, name: string, command: string): string {
  const value = stringValue(values, name);
  if (value === undefined) throw new UsageError(`--${name} is required`, command);
  return value;
}

/** A customer, vendor, order or item id: 1-64 of [a-z0-9._-], starting alphanumeric. */
export function identifier(text: string, what: string, command: string): string {
  if (!identifierPattern.test(text)) {
    throw new UsageError(
      `${what} must be 1-64 of a-z 0-9 . _ - starting with a letter or digit, ` +
        `not ${JSON.stringify(text)}`,
      command,
    );
  }
  return text;
}

export function identifierFlag(values: FlagValues, name: string, command: string): string {
  return identifier(requiredString(values, name, command), `--${name}`, command);
}

/** An integer written in decimal digits only: no sign, fraction, exponent or separators. */
export function integerText(
  text: string,
  what: string,
  min: number,
  max: number,
  command: string,
): number {
  const value = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(
      `${what} must be a whole number from ${min} to ${max}, not ${JSON.stringify(text)}`,
      command,
    );
  }
  return value;
}

export function amountFlag(values: FlagValues, command: string): number {
  const text = requiredString(values, 'amount', command);
  return integerText(text, '--amount (in minor units, e.g. cents)', 1, amountMinorMax, command);
}

export function currencyFlag(values: FlagValues, command: string): string {
  const text = requiredString(values, 'currency', command);
  if (!currencyCodes.has(text)) {
    throw new UsageError(
      `--currency must be an active ISO 4217 code in capitals (EUR, USD, JPY), ` +
        `not ${JSON.stringify(text)}`,
      command,
    );
  }
  return text;
}

/** `sku:quantity:unitPriceMinor,...`, e.g. `book:2:1250,pen:1:300`. */
export function linesText(text: string, command: string): OrderLine[] {
  const items = text.split(',');
  if (items.length > orderLineCountMax) {
    throw new UsageError(`--lines takes at most ${orderLineCountMax} lines`, command);
  }
  const skus = new Set<string>();
  return items.map((item, index) => {
    const parts = item.split(':');
    const where = `--lines item ${index + 1} (${JSON.stringify(item)})`;
    if (parts.length !== 3) {
      throw new UsageError(`${where} must be sku:quantity:unitPriceMinor`, command);
    }
    const [sku = '', quantity = '', unitPrice = ''] = parts;
    identifier(sku, `${where}: the sku`, command);
    if (skus.has(sku)) throw new UsageError(`${where}: sku ${sku} appears twice`, command);
    skus.add(sku);
    return {
      sku,
      quantity: integerText(quantity, `${where}: the quantity`, 1, quantityMax, command),
      unitPriceMinor: integerText(
        unitPrice,
        `${where}: the unit price`,
        0,
        amountMinorMax,
        command,
      ),
    };
  });
}

export function optionalKeyFlag(values: FlagValues, command: string): string | undefined {
  const key = stringValue(values, 'key');
  return key === undefined ? undefined : idempotencyKey(key, '--key', command);
}

export function idempotencyKey(text: string, what: string, command: string): string {
  if (!idempotencyKeyPattern.test(text)) {
    throw new UsageError(
      `${what} must be 16-64 of A-Z a-z 0-9 _ - (a ULID or a UUID fits), ` +
        `not ${JSON.stringify(text)}`,
      command,
    );
  }
  return text;
}

export const natsUrlDefault = 'nats://127.0.0.1:4222';

/** Comma-separated nats://host:port URLs; all nodes of a cluster, so the client can fail over. */
export function natsFlag(values: FlagValues, command: string): string[] {
  const fromEnvironment = process.env['CONTINUUM_NATS'];
  const fallback =
    fromEnvironment === undefined || fromEnvironment === '' ? natsUrlDefault : fromEnvironment;
  const text = stringValue(values, 'nats') ?? fallback;
  const urls = text.split(',');
  for (const url of urls) {
    if (!/^nats:\/\/[a-z0-9.[\]:-]+:\d{1,5}$/i.test(url)) {
      throw new UsageError(`--nats: ${JSON.stringify(url)} is not a nats://host:port URL`, command);
    }
  }
  return urls;
}

export const clientIdDefault = 'pay-cli';

export function clientIdFlag(values: FlagValues, command: string): string {
  const text = stringValue(values, 'client-id') ?? clientIdDefault;
  return clientId(text, command);
}

export function optionalClientIdFlag(values: FlagValues, command: string): string | undefined {
  const text = stringValue(values, 'client-id');
  return text === undefined ? undefined : clientId(text, command);
}

/** A client id is one NATS subject token (it ends the client's subjects): no dot. */
function clientId(text: string, command: string): string {
  if (!clientIdPattern.test(text)) {
    throw new UsageError(
      `--client-id must be 1-64 of a-z 0-9 _ - starting with a letter or digit, ` +
        `not ${JSON.stringify(text)}`,
      command,
    );
  }
  return text;
}

/** A directory that exists; what must be inside it is checked by the command that reads it. */
export function directoryFlag(values: FlagValues, name: string, command: string): string {
  const dir = requiredString(values, name, command);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new UsageError(`--${name}: ${dir} is not a directory`, command);
  }
  return dir;
}

export function integerFlag(
  values: FlagValues,
  name: string,
  range: { readonly min: number; readonly max: number; readonly fallback: number },
  command: string,
): number {
  const text = stringValue(values, name);
  if (text === undefined) return range.fallback;
  return integerText(text, `--${name}`, range.min, range.max, command);
}
