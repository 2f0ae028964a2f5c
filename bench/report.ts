/** Small helpers for benchmark output: percentiles, a progress line on stderr, result files. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../ops/service-process.ts';

/** The value at quantile q (0..1) of an ascending list, by the nearest-rank method. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

/** One line of progress on stderr, so stdout stays clean for figures and JSON. */
export function progress(line: string): void {
  process.stderr.write(`  … ${line}\n`);
}

/** Writes a result as JSON under bench-results/ and returns the file's path. */
export function saveResult(name: string, result: object): string {
  const directory = join(projectRoot, 'bench-results');
  mkdirSync(directory, { recursive: true });
  const file = join(directory, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}
