/**
 * `npm run bench -- <benchmark> [--json] [options]`: benchmarks that print figures. Speed targets
 * are checked here, never in timed tests.
 *
 * - `failover [--kills <n>] [--clients <n>] [--lease-ttl-ms <ms>]`: takeover time after kill -9 of the active
 *   coordinator, median and p99 (docs/failover.md).
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../common/errors.ts';
import { runFailover } from './failover.ts';
import { saveResult } from './report.ts';

function integer(value: string | undefined, name: string, min: number, max: number): number {
  const parsed = /^\d+$/.test(value ?? '') ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new ConfigError(`--${name} must be an integer from ${min} to ${max}`);
  }
  return parsed;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      kills: { type: 'string', default: '20' },
      clients: { type: 'string', default: '4' },
      'lease-ttl-ms': { type: 'string', default: '600' },
    },
    allowPositionals: true,
  });
  const [benchmark = 'failover'] = positionals;
  if (benchmark !== 'failover')
    throw new ConfigError(`unknown benchmark ${benchmark}; known: failover`);
  const kills = integer(values.kills, 'kills', 1, 1_000);
  const clients = integer(values.clients, 'clients', 1, 256);
  const leaseTtlMs = integer(values['lease-ttl-ms'], 'lease-ttl-ms', 100, 60_000);
  process.stderr.write(`failover: ${kills} kills of the active coordinator, ${clients} clients\n`);
  const result = await runFailover({ kills, clients, leaseTtlMs });
  const file = saveResult('failover', result);
  if (values.json) {
    console.log(JSON.stringify(result));
  } else {
    console.log(
      `takeover after kill -9 (ms): median ${result.medianMs}, p99 ${result.p99Ms}, max ${result.maxMs}`,
    );
    console.log(`  each: ${result.takeoverMs.join(', ')}`);
    console.log(
      `payments during the run: ${result.payments.committed} committed, ${result.payments.aborted} aborted`,
    );
    console.log(`invariant violations: ${result.violations.length}`);
    for (const violation of result.violations) console.log(`  ${violation}`);
    console.log(`result: ${file}`);
  }
  if (result.violations.length > 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? `${error.name}: ${error.message}` : error);
  process.exit(error instanceof ConfigError ? 2 : 1);
});
