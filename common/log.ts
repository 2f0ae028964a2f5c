/**
 * Structured logs: one JSON object per line on stderr, so the stack launcher can keep them in a
 * file and tests can read them. stdout is reserved for the one `ready` line a service prints.
 */
export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

/**
 * One log line on stderr, its time first. Written at once: stderr is synchronous for files and
 * pipes, so the line is out before an exit that follows it.
 */
export function writeLogLine(fields: LogFields): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`);
}

export function createLogger(service: string): Logger {
  const write = (level: string, event: string, fields: LogFields = {}): void => {
    writeLogLine({ level, service, event, ...fields });
  };
  return {
    info: (event, fields) => write('info', event, fields),
    warn: (event, fields) => write('warn', event, fields),
    error: (event, fields) => write('error', event, fields),
  };
}

/** Tells whoever started this process that it is ready to serve. */
export function announceReady(fields: LogFields): void {
  process.stdout.write(`${JSON.stringify({ event: 'ready', pid: process.pid, ...fields })}\n`);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
