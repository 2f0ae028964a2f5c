/**
 * Command-line flags shared by the services. Every value is checked; a bad one stops the process
 * with a ConfigError that names the flag, before anything is opened or connected.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from './errors.ts';
import { errorText, writeLogLine } from './log.ts';

/**
 * Node's `parseArgs` for every command line of the project (services, `pay`, bench, sim, chaos):
 * a command line it refuses becomes a ConfigError that names the flag in a few words ("unknown
 * flag --x", "--x needs a value") instead of Node's paragraph. A caller with an error type of
 * its own wraps the ConfigError.
 */
export function parseCommandArgs<T extends ParseArgsConfig>(
  config: T,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS')) throw error;
    throw new ConfigError(parseErrorText(error instanceof Error ? error.message : String(error)));
  }
}

/** Node's parseArgs messages, shortened to the part a person needs. */
function parseErrorText(message: string): string {
  const flag = /'(-[^' ]+)/.exec(message)?.[1];
  if (/^Unknown option/.test(message)) return `unknown flag ${flag ?? message}`;
  if (/argument missing/.test(message)) return `${flag ?? 'a flag'} needs a value`;
  if (/does not take an argument/.test(message)) return `${flag ?? 'a flag'} takes no value`;
  if (/ambiguous/.test(message)) {
    return `${flag ?? 'a flag'} needs a value; write --flag=value for a value starting with "-"`;
  }
  const positional = /^Unexpected argument '([^']*)'/.exec(message)?.[1];
  if (positional !== undefined) return `unexpected argument ${JSON.stringify(positional)}`;
  return message.split('\n')[0] ?? message;
}

export type FlagSpec = Readonly<
  Record<string, { readonly type: 'string'; readonly default?: string }>
>;

export function parseFlags(
  args: readonly string[],
  spec: FlagSpec,
): Record<string, string | undefined> {
  const { values } = parseCommandArgs({
    args: [...args],
    options: spec,
    strict: true,
    allowPositionals: false,
  });
  return values;
}

export function requiredFlag(values: Record<string, string | undefined>, name: string): string {
  const value = values[name];
  if (value === undefined || value === '') throw new ConfigError(`--${name} is required`);
  return value;
}

export function integerFlag(
  values: Record<string, string | undefined>,
  name: string,
  min: number,
  max: number,
): number {
  const text = values[name] ?? '';
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(
      `--${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}`,
    );
  }
  return value;
}

/** `on` or `off`, as a boolean; ConfigError naming the flag otherwise. */
export function onOffFlag(values: Record<string, string | undefined>, name: string): boolean {
  const value = values[name];
  if (value !== 'on' && value !== 'off') throw new ConfigError(`--${name} must be on or off`);
  return value === 'on';
}

/** A comma-separated list of nats:// URLs on which the services meet. */
export function natsUrlsFlag(values: Record<string, string | undefined>): string[] {
  const urls = requiredFlag(values, 'nats').split(',');
  for (const url of urls) {
    if (!/^nats:\/\/[a-z0-9.[\]:-]+:\d{1,5}$/i.test(url)) {
      throw new ConfigError(`--nats: ${JSON.stringify(url)} is not a nats://host:port URL`);
    }
  }
  return urls;
}

/**
 * When started by a launcher (ops/service-process.ts), leaves with it: the launcher holds our
 * stdin open, and it closes only when the launcher is gone, however it died. A test run that is
 * killed outright then leaves no service behind. Either way out says why in the log first.
 */
function exitWithParent(): void {
  if (process.env['CONTINUUM_EXIT_WITH_PARENT'] !== '1') return;
  process.stdin.on('end', () => {
    writeLogLine({ level: 'warn', event: 'launcher-gone', why: 'stdin closed' });
    process.exit(0);
  });
  process.stdin.on('error', (error) => {
    writeLogLine({
      level: 'warn',
      event: 'launcher-gone',
      why: `stdin failed: ${errorText(error)}`,
    });
    process.exit(0);
  });
  process.stdin.resume();
}

/**
 * Runs a service's main, turning a configuration error into one clear line and exit code 2.
 * A service's every exit but a signal's leaves an `exit` line with its code as its log's last;
 * a one-shot command's (`kind: 'command'`) does not.
 */
export function runMain(
  main: () => Promise<void> | void,
  kind: 'service' | 'command' = 'service',
): void {
  if (kind === 'service') {
    process.on('exit', (code) => {
      writeLogLine({ level: code === 0 ? 'info' : 'error', event: 'exit', code });
    });
  }
  exitWithParent();
  Promise.resolve()
    .then(main)
    .catch((error: unknown) => {
      const name = error instanceof Error ? error.name : 'Error';
      const message = error instanceof Error ? error.message : String(error);
      writeLogLine({ level: 'fatal', event: 'start-failed', name, message });
      process.exit(error instanceof ConfigError ? 2 : 1);
    });
}
