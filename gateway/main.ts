/**
 * The HTTP gateway process:
 * `tsx gateway/main.ts --nats <urls> --port <n> [--wait-ms <ms>] [--clients <tokens.json>]`.
 * Listens on 127.0.0.1 (or --host) and announces the port it got in its ready line (--port 0
 * picks a free one). With `--clients`, bearer tokens decide who is calling (gateway/clients.ts);
 * without, the Continuum-Client-Id header is trusted as sent: for development only. Its NATS
 * credentials come from CONTINUUM_NATS_USER/CONTINUUM_NATS_PASSWORD (or CONTINUUM_NATS_TOKEN).
 */
import type { AddressInfo } from 'node:net';
import { integerFlag, natsUrlsFlag, parseFlags, runMain } from '../common/cli.ts';
import { ConfigError } from '../common/errors.ts';
import { announceReady, createLogger } from '../common/log.ts';
import { connectNats } from '../common/nats.ts';
import { ClientTokens } from './clients.ts';
import { createGateway } from './http.ts';

const flags = {
  nats: { type: 'string' },
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'string', default: '8080' },
  'wait-ms': { type: 'string', default: '10000' },
  clients: { type: 'string' },
} as const;

async function main(): Promise<void> {
  const values = parseFlags(process.argv.slice(2), flags);
  const servers = natsUrlsFlag(values);
  const port = integerFlag(values, 'port', 0, 65_535);
  const waitMs = integerFlag(values, 'wait-ms', 0, 60_000);
  const host = values['host'] ?? '127.0.0.1';
  if (!/^[a-z0-9.:[\]-]+$/i.test(host)) throw new ConfigError(`--host: ${host} is not a host`);
  // Checked before anything is connected: a bad tokens file stops the gateway at once.
  const clientsFile = values['clients'];
  const clients = clientsFile === undefined ? undefined : ClientTokens.load(clientsFile);
  const log = createLogger('gateway');
  if (clients === undefined) {
    log.warn('client-id-header-trusted', {
      note: 'no --clients file: any caller may name any client; for development only',
    });
  } else {
    log.info('client-tokens', { tokens: clients.size });
  }
  const nats = await connectNats({ servers, name: 'continuum-gateway' });
  const server = createGateway({ nats, waitMs, ...(clients === undefined ? {} : { clients }) });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  log.info('listening', { host, port: address.port });
  announceReady({ service: 'gateway', port: address.port, url: `http://${host}:${address.port}` });
  const stop = (): void => {
    server.close();
    void nats.drain().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

runMain(main);
