/**
 * Connecting to NATS with every option set explicitly. The defaults of nats.js suit a chat room,
 * not a payment system: a 120 s ping interval leaves a paused server unnoticed for minutes, and
 * its reconnect buffer may drop what was published while disconnected. We notice a dead or paused
 * server within seconds, reconnect for ever, and never rely on the client to re-deliver: every
 * sender in this project re-sends on its own timers.
 */
import { connect, errors, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { ConfigError } from './errors.ts';

export type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';

/** How a connection proves who it is to a nats-server with `authorization` configured. */
export type NatsCredentials =
  { readonly user: string; readonly password: string } | { readonly token: string };

export interface NatsSettings {
  readonly servers: readonly string[];
  /** Shown by the server's monitoring endpoints; names the process. */
  readonly name: string;
  /**
   * Credentials for a server that requires them. Without them, the environment's
   * `CONTINUUM_NATS_USER` and `CONTINUUM_NATS_PASSWORD` (or `CONTINUUM_NATS_TOKEN`) are used if
   * set, so that every service can be given its NATS user without a flag that `ps` would show.
   */
  readonly credentials?: NatsCredentials;
  /** Prefix of this connection's reply inboxes (`_INBOX` by default); see docs/operations.md. */
  readonly inboxPrefix?: string;
}

/** The credentials the environment gives, if any; ConfigError when they are half given. */
export function natsCredentialsFromEnvironment(
  env: Readonly<Record<string, string | undefined>> = process.env,
): NatsCredentials | undefined {
  const user = env['CONTINUUM_NATS_USER'];
  const password = env['CONTINUUM_NATS_PASSWORD'];
  const token = env['CONTINUUM_NATS_TOKEN'];
  const given = (value: string | undefined): value is string => value !== undefined && value !== '';
  if (given(token)) {
    if (given(user) || given(password)) {
      throw new ConfigError('set CONTINUUM_NATS_TOKEN or CONTINUUM_NATS_USER/PASSWORD, not both');
    }
    return { token };
  }
  if (given(user) !== given(password)) {
    throw new ConfigError('CONTINUUM_NATS_USER and CONTINUUM_NATS_PASSWORD go together');
  }
  return given(user) && given(password) ? { user, password } : undefined;
}

export async function connectNats(settings: NatsSettings): Promise<NatsConnection> {
  const credentials = settings.credentials ?? natsCredentialsFromEnvironment();
  return connect({
    servers: [...settings.servers],
    name: settings.name,
    ...(credentials === undefined
      ? {}
      : 'token' in credentials
        ? { token: credentials.token }
        : { user: credentials.user, pass: credentials.password }),
    ...(settings.inboxPrefix === undefined ? {} : { inboxPrefix: settings.inboxPrefix }),
    timeout: 2_000,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 2_000,
    maxPingOut: 2,
    waitOnFirstConnect: true,
    ignoreClusterUpdates: false,
    // Otherwise every request builds an Error up front, only to give a timeout a stack trace:
    // about a fifth of the coordinator's time under load. Our errors are reported by name and
    // message, never by stack.
    noAsyncTraces: true,
  });
}

/**
 * True when a message on a reply subject is the server's "no responders" status (503, no body):
 * nobody subscribed to the subject the request went to. For request/reply made without
 * nats.js's `request()` (the participant channel, common/requester.ts).
 */
export function isNoRespondersReply(msg: Msg): boolean {
  return msg.data.length === 0 && msg.headers?.code === 503;
}

/**
 * A service's subscription callback, which never throws into nats.js. An exception thrown there
 * ends the connection's reader without closing the connection: nats.js prints "reader closed" on
 * stdout, nothing more is received, and only the client's own pings find the connection stale
 * and reconnect, seconds later, losing what was in flight, while the process carries on with
 * whatever state the exception left. Bad input is answered, never thrown, so an exception here
 * is a bug: it is thrown again outside nats.js, where it stops the process as any uncaught
 * exception does, and a restart recovers from what is durable. A subscription the server refused
 * (the callback's error) cannot serve either, and stops the process saying so.
 */
export function deliverOrStop(handle: (msg: Msg) => void): (error: Error | null, msg: Msg) => void {
  return (error, msg) => {
    try {
      if (error !== null)
        throw new Error(`subscription refused: ${error.message}`, { cause: error });
      handle(msg);
    } catch (thrown) {
      process.nextTick(() => {
        throw thrown;
      });
    }
  };
}

/** True when a request failed because nobody subscribes to the subject: it was never delivered. */
export function isNoResponders(error: unknown): boolean {
  return error instanceof errors.RequestError && error.isNoResponders();
}

/**
 * The server's refusal of a publish or subscription that this connection's user is not allowed,
 * if that is what failed. nats.js v3 rejects a request whose subject the server refused (`-ERR
 * 'Permissions Violation for Publish to "…"'`) with a RequestError whose cause is a
 * PermissionViolationError; a refused reply inbox subscription fails every pending request the
 * same way. Retrying cannot help: only other credentials can.
 */
export function permissionViolationOf(
  error: unknown,
): { readonly operation: string; readonly subject: string } | undefined {
  const violation =
    error instanceof errors.RequestError && error.cause instanceof errors.PermissionViolationError
      ? error.cause
      : error;
  if (!(violation instanceof errors.PermissionViolationError)) return undefined;
  return { operation: violation.operation, subject: violation.subject };
}
