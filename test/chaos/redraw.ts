/**
 * `npm run chaos -- report <run-dir> [--svg <file>]`: draws a finished run's report again from what
 * the run left in its directory (history.jsonl, summary.json, violations.txt), as the report code
 * draws it now. An old run's picture can so be redrawn after the picture changed, and `--svg`
 * writes the picture alone (docs/chaos.md's long run is drawn so).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCommandArgs } from '../../common/cli.ts';
import { ConfigError } from '../../common/errors.ts';
import { forEachEvent } from './history.ts';
import { Timeline, renderSvg, writeReport, type ChaosSummary } from './report.ts';

export const reportUsage = `Usage: npm run chaos -- report <run-dir> [--svg <file>]

Draws the report of a finished chaos run again, from its history.jsonl, summary.json and
violations.txt, into <run-dir>/report.html. --svg <file> also writes the picture alone.
`;

export class RedrawUsageError extends Error {
  override readonly name = 'RedrawUsageError';
}

export interface RedrawOptions {
  readonly runDir: string;
  readonly svgFile: string | undefined;
}

export function parseRedrawArgs(args: readonly string[]): RedrawOptions | 'help' {
  let parsed;
  try {
    parsed = parseCommandArgs({
      args: [...args],
      options: { svg: { type: 'string' }, help: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new RedrawUsageError(error.message);
  }
  if (parsed.values.help === true) return 'help';
  const [runDir, ...extra] = parsed.positionals;
  if (runDir === undefined) throw new RedrawUsageError('the run directory is missing');
  if (extra.length > 0) {
    throw new RedrawUsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  }
  const svgFile = parsed.values.svg;
  if (svgFile === '') throw new RedrawUsageError('--svg needs a file name');
  for (const name of ['history.jsonl', 'summary.json']) {
    if (!existsSync(join(runDir, name))) {
      throw new RedrawUsageError(`${runDir} is not a finished chaos run: it has no ${name}`);
    }
  }
  return { runDir, svgFile };
}

/**
 * The run's timeline, replayed from its history as the run observed it. A history written before
 * commit 47f64b5 (2026-12-07) has no `settled` event: its "decided" mark is then the end of healing plus the
 * summary's time to decide after it, which the run measured between the same two moments.
 */
export async function replayTimeline(
  historyFile: string,
  healToDecidedMs: number | null,
): Promise<{ timeline: Timeline; endS: number }> {
  const timeline = new Timeline();
  let lastNs = 0;
  let healedAtNs: number | undefined;
  let settled = false;
  await forEachEvent(historyFile, (event) => {
    if (event.process === 'nemesis') {
      if (event.f === 'settled') settled = true;
      if (event.f === 'heal' && event.type === 'info') healedAtNs = event.time;
      const restart = event.f === 'final-restart' && event.type === 'invoke';
      if (restart && !settled && healedAtNs !== undefined && healToDecidedMs !== null) {
        timeline.mark('decided', healedAtNs + healToDecidedMs * 1_000_000);
      }
    }
    timeline.observe(event);
    lastNs = event.time;
  });
  return { timeline, endS: lastNs / 1_000_000_000 };
}

/** Writes report.html (and the picture alone, when asked); returns the files written. */
export async function redrawReport(options: RedrawOptions): Promise<string[]> {
  const { runDir, svgFile } = options;
  const summary = JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8')) as ChaosSummary;
  const violationsFile = join(runDir, 'violations.txt');
  const violationsText = existsSync(violationsFile) ? readFileSync(violationsFile, 'utf8') : '';
  const historyFile = join(runDir, 'history.jsonl');
  const { timeline, endS } = await replayTimeline(historyFile, summary.healToDecidedMs);
  const reportFile = join(runDir, 'report.html');
  // The run wrote the text with one newline after it.
  writeReport(reportFile, summary, timeline, endS, violationsText.replace(/\n$/, ''));
  if (svgFile === undefined) return [reportFile];
  writeFileSync(svgFile, renderSvg(timeline, endS));
  return [reportFile, svgFile];
}
