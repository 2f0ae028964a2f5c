/**
 * The HTTP gateway process: `tsx gateway/main.ts --nats <urls> --port <n> [--wait-ms <ms>]`.
 * Listens on 127.0.0.1 (or --host) and announces the port it got in its ready line (--port 0
 * picks a free one).
 */
import type { AddressInfo } from 'node:net';
import { integerFlag, natsUrlsFlag, parseFlags, runMain } from '../common/cli.ts';
import { ConfigError } from '../common/errors.ts';
import { announceReady, createLogger } from '../common/log.ts';
import { connectNats } from '../common/nats.ts';
import { createGateway } from './http.ts';

const flags = {
  nats: { type: 'string' },
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'string', default: '8080' },
  'wait-ms': { type: 'string', default: '10000' },
} as const;

async function main(): Promise<void> {
  const values = parseFlags(process.argv.slice(2), flags);
  const servers = natsUrlsFlag(values);
  const port = integerFlag(values, 'port', 0, 65_535);
  const waitMs = integerFlag(values, 'wait-ms', 0, 60_000);
  const host = values['host'] ?? '127.0.0.1';
  if (!/^[a-z0-9.:[\]-]+$/i.test(host)) throw new ConfigError(`--host: ${host} is not a host`);
  const log = createLogger('gateway');
  const nats = await connectNats({ servers, name: 'continuum-gateway' });
  const server = createGateway({ nats, waitMs });
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
