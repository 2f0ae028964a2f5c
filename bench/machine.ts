/** What a benchmark result must say about where it ran: cores, CPU, load, versions, commit. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { findNatsServer } from '../ops/nats-server.ts';
import { projectRoot } from '../ops/service-process.ts';

export interface MachineInfo {
  readonly cores: number;
  readonly cpuModel: string;
  /** One-minute load average when the run started: other work sharing the cores shows here. */
  readonly loadAverage1m: number;
  readonly node: string;
  readonly natsServer: string;
  /** `git rev-parse --short HEAD`, with `+changes` when the working tree differs from it. */
  readonly commit: string;
  readonly date: string;
}

function run(command: string, args: readonly string[]): string {
  try {
    return execFileSync(command, args, { cwd: projectRoot, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/**
 * The CPU's model name and clock, from the text of /proc/cpuinfo. The clock is there because a
 * VM's host changes from day to day, and the same model name has come at 2.1 GHz and at 2.6 GHz
 * (docs/performance.md).
 */
export function describeCpu(cpuinfo: string): string {
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)$/m.exec(cpuinfo)?.[1]);
  return Number.isFinite(mhz) && mhz > 0 ? `${model} at ${Math.round(mhz)} MHz` : model;
}

function cpuModel(): string {
  try {
    return describeCpu(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return 'unknown';
  }
}

/** True when tracked files differ from HEAD (read-only: `git diff --quiet` changes nothing). */
function hasChanges(): boolean {
  try {
    execFileSync('git', ['diff', '--quiet', 'HEAD'], { cwd: projectRoot, stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
}

export function machineInfo(): MachineInfo {
  const commit = run('git', ['rev-parse', '--short', 'HEAD']);
  return {
    cores: availableParallelism(),
    cpuModel: cpuModel(),
    loadAverage1m: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    node: process.version,
    natsServer: run(findNatsServer(), ['--version']).replace(/^nats-server:\s*/, ''),
    commit: hasChanges() ? `${commit}+changes` : commit,
    date: new Date().toISOString(),
  };
}
