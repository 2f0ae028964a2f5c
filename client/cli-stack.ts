/**
 * `pay stack`: a whole system seeded with the demo world, running until Ctrl-C, so that `pay send`,
 * `status`, `balances` and `inspect` have something to talk to. The same launcher as the demo and
 * the integration tests (`ops/stack.ts`), in a temp directory that is removed on exit unless
 * `--keep`.
 */
import { startStack } from '../ops/stack.ts';
import { seedDemoData } from '../participants/seed.ts';
import type { Output } from './cli-format.ts';

export interface StackCommandOptions {
  readonly cluster: boolean;
  readonly keep: boolean;
}

export async function runStack(options: StackCommandOptions, output: Output): Promise<number> {
  output.progress(
    `Starting ${options.cluster ? 'a 3-node NATS cluster' : 'nats-server'}, the coordinator, ` +
      'bank, vendor and customer ...',
  );
  const stack = await startStack({ cluster: options.cluster, seed: seedDemoData });
  const servers = stack.natsUrls.join(',');
  output.document({ command: 'stack', natsUrls: stack.natsUrls, root: stack.root });
  output.text(
    [
      `Ready. NATS: ${servers}`,
      `Data:  ${stack.root}`,
      '',
      'In another terminal:',
      `  export CONTINUUM_NATS=${servers}`,
      '  npm run pay -- send --from alice --to acme --amount 2500 --currency EUR ' +
        '--order order-1001',
      `  npm run pay -- balances --data ${stack.root}`,
      '',
      `Ctrl-C stops everything${options.keep ? ' and keeps the data' : ' and removes the data'}.`,
    ].join('\n'),
  );
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  output.progress(`${signal}: stopping ...`);
  await stack.stop({ remove: !options.keep });
  return 0;
}
