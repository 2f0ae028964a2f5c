/**
 * Typed errors raised at the boundaries of the system. Each failure has its own class with `name`
 * set, so callers match on the class, and a stable `code` that travels over the wire.
 */

/** The codes a service returns in an error reply. Stable: clients branch on them. */
export const errorCodes = [
  'invalid-request', // The request failed validation; retrying it unchanged cannot help.
  'key-mismatch', // The idempotency key was used before with a different request.
  'payload-too-large', // The message exceeded the size cap before it was parsed.
  'not-found', // A status query named a transaction or key this coordinator does not know.
  'overloaded', // Too many payments in flight; retry later with the same key.
  'stale-epoch', // The sender's term of leadership is over; a newer coordinator is active.
  'unavailable', // Another process kept the service's database locked past the busy timeout; retry.
  'internal', // A bug on the server side; the server logged it.
] as const;
export type ErrorCode = (typeof errorCodes)[number];

/** A message or request that does not follow the protocol: the peer is at fault. */
export class ValidationError extends Error {
  override readonly name = 'ValidationError';
  readonly code: ErrorCode;
  readonly field: string;
  constructor(field: string, message: string, code: ErrorCode = 'invalid-request') {
    super(`${field}: ${message}`);
    this.field = field;
    this.code = code;
  }
}

/** A configuration value, environment variable or command-line flag that cannot be used. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** The journal holds records that cannot have been written by correct code. */
export class JournalCorruptError extends Error {
  override readonly name = 'JournalCorruptError';
  readonly file: string;
  readonly record: string;
  constructor(file: string, record: string, message: string) {
    super(`journal ${file} is corrupt at ${record}: ${message}; refusing to start`);
    this.file = file;
    this.record = record;
  }
}

/** This coordinator's term of leadership is over: another one started a newer term. */
export class FencedError extends Error {
  override readonly name = 'FencedError';
  readonly epoch: number;
  readonly currentEpoch: number;
  constructor(epoch: number, currentEpoch: number) {
    super(`term ${epoch} is over: the journal is at term ${currentEpoch}`);
    this.epoch = epoch;
    this.currentEpoch = currentEpoch;
  }
}

/**
 * The journal's write lock stayed with another process past the busy timeout (a coordinator paused
 * in the middle of its write, an operator's tool): this write did not happen. Not a fault of the
 * journal: the term that tried it ends, and the process leads again once the lock is free.
 */
export class JournalBusyError extends Error {
  override readonly name = 'JournalBusyError';
  readonly file: string;
  constructor(file: string, cause: unknown) {
    super(`journal ${file} stayed locked by another process past the busy timeout`, { cause });
    this.file = file;
  }
}

/** The database was written by a newer version of this code, or its migrations are damaged. */
export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}
