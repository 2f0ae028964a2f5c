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

export function createLogger(service: string): Logger {
  const write = (level: string, event: string, fields: LogFields = {}): void => {
    const line = JSON.stringify({
      time: new Date().toISOString(),
      level,
      service,
      event,
      ...fields,
    });
    process.stderr.write(`${line}\n`);
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
