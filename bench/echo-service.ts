/**
 * An echo service for the messaging bound: `tsx bench/echo-service.ts --nats <urls> --name <n>`.
 * It answers every request on the echo subject with the request's own bytes, doing no other work,
 * so a load generator measures what NATS request/reply costs through the same server and with the
 * same kind of Node processes as the real services. With CONTINUUM_STATS=1 it answers stats
 * requests as the services do (common/stats.ts).
 */
import { natsUrlsFlag, parseFlags, requiredFlag, runMain } from '../common/cli.ts';
import { announceReady } from '../common/log.ts';
import { connectNats } from '../common/nats.ts';
import { serveStats } from '../common/stats.ts';

export const echoSubject = 'continuum.bench.echo';

async function main(): Promise<void> {
  const values = parseFlags(process.argv.slice(2), {
    nats: { type: 'string' },
    name: { type: 'string' },
  });
  const name = requiredFlag(values, 'name');
  const nats = await connectNats({ servers: natsUrlsFlag(values), name });
  nats.subscribe(echoSubject, {
    queue: 'echo',
    callback: (_error, msg) => {
      msg.respond(msg.data);
    },
  });
  // With CONTINUUM_STATS=1, its heap allocation, so the bound measures what messaging alone costs.
  serveStats(nats, name, () => 0);
  await nats.flush();
  announceReady({ service: name });
  const stop = (): void => {
    void nats.drain().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

// Run only as a process entry: the benchmark imports this file for the subject's name.
if (process.argv[1]?.endsWith('echo-service.ts') === true) runMain(main);
