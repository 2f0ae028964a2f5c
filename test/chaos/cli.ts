/**
 * `npm run chaos -- [--duration <s>] [--seed <n>] [--faults <list>] [--json] …` (options.ts has
 * every flag). Progress goes to stderr, the summary to stdout (as JSON with --json). Exit codes:
 * 0 no violation, 1 violations, 2 bad usage, 3 the run itself failed, 130 interrupted.
 *
 * `npm run chaos -- report <run-dir> [--svg <file>]` draws a finished run's report again
 * (redraw.ts): exit 0, or 2 on bad usage or a directory that holds no finished run.
 */
import { errorText } from '../../common/log.ts';
import { randomInt } from 'node:crypto';
import { formatSummary } from './report.ts';
import { ChaosUsageError, chaosUsage, parseChaosArgs, seedMax } from './options.ts';
import { runChaos } from './run.ts';
import { RedrawUsageError, parseRedrawArgs, redrawReport, reportUsage } from './redraw.ts';

function progressWriter(): { phase: (text: string) => void; tick: (status: string) => void } {
  const tty = process.stderr.isTTY;
  let lastTick = 0;
  let open = false;
  const endLine = (): void => {
    if (open) process.stderr.write('\n');
    open = false;
  };
  return {
    phase: (text) => {
      endLine();
      process.stderr.write(`chaos: ${text}\n`);
    },
    tick: (status) => {
      if (tty) {
        process.stderr.write(`\r\x1b[K${status.slice(0, (process.stderr.columns || 120) - 1)}`);
        open = true;
        return;
      }
      // Without a terminal, one line every five seconds is enough to show it is alive.
      if (Date.now() - lastTick < 5_000) return;
      lastTick = Date.now();
      process.stderr.write(`${status}\n`);
    },
  };
}

async function report(args: readonly string[]): Promise<number> {
  let options;
  try {
    options = parseRedrawArgs(args);
  } catch (error) {
    if (!(error instanceof RedrawUsageError)) throw error;
    process.stderr.write(`chaos report: ${error.message}\n\n${reportUsage}`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(reportUsage);
    return 0;
  }
  for (const file of await redrawReport(options)) process.stdout.write(`${file}\n`);
  return 0;
}

async function main(): Promise<number> {
  if (process.argv[2] === 'report') return report(process.argv.slice(3));
  let options;
  try {
    options = parseChaosArgs(process.argv.slice(2), () => randomInt(0, seedMax));
  } catch (error) {
    if (!(error instanceof ChaosUsageError)) throw error;
    process.stderr.write(`chaos: ${error.message}\n\n${chaosUsage}`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(chaosUsage);
    return 0;
  }
  const interrupt = new AbortController();
  process.once('SIGINT', () => interrupt.abort());
  process.once('SIGTERM', () => interrupt.abort());
  process.stderr.write(`chaos: seed ${options.seed} (re-run with --seed ${options.seed})\n`);
  const progress = progressWriter();
  try {
    const result = await runChaos(options, { ...progress, signal: interrupt.signal });
    progress.phase('done');
    if (result.violations.length > 0) process.stderr.write(`${result.violationsText}\n\n`);
    const out = options.json
      ? JSON.stringify(result.summary, null, 2)
      : formatSummary(result.summary);
    process.stdout.write(`${out}\n`);
    return result.violations.length > 0 ? 1 : 0;
  } catch (error) {
    progress.phase('failed');
    process.stderr.write(`chaos: the run failed: ${errorText(error)}\n`);
    return interrupt.signal.aborted ? 130 : 3;
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `chaos: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(3);
  },
);
