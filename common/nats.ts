/**
 * Connecting to NATS with every option set explicitly. The defaults of nats.js suit a chat room,
 * not a payment system: a 120 s ping interval leaves a paused server unnoticed for minutes, and
 * its reconnect buffer may drop what was published while disconnected. We notice a dead or paused
 * server within seconds, reconnect for ever, and never rely on the client to re-deliver: every
 * sender in this project re-sends on its own timers.
 */
import { connect, errors, type NatsConnection } from '@nats-io/transport-node';

export type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';

export interface NatsSettings {
  readonly servers: readonly string[];
  /** Shown by the server's monitoring endpoints; names the process. */
  readonly name: string;
}

export async function connectNats(settings: NatsSettings): Promise<NatsConnection> {
  return connect({
    servers: [...settings.servers],
    name: settings.name,
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

/** True when a request failed because nobody subscribes to the subject: it was never delivered. */
export function isNoResponders(error: unknown): boolean {
  return error instanceof errors.RequestError && error.isNoResponders();
}
