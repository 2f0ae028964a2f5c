/**
 * One Continuum service (coordinator or participant) as a child OS process. It is started with
 * tsx, counts as ready when it prints its `ready` line on stdout, and writes its JSON logs to a
 * file. It can be stopped, killed with SIGKILL, paused and resumed, and restarted with the same
 * arguments. Only processes started here are ever signalled, and only by their own pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

export const projectRoot = fileURLToPath(new URL('../', import.meta.url));

/**
 * How every service process is started. `--single-threaded-gc`: V8's parallel and concurrent GC
 * helpers are threads that must be scheduled before a pause can end, and with six busy processes
 * on two cores they often are not; collecting on the main thread alone cut the open loop's p99 at
 * 1,000 payments/s from 17.6–18.9 to 13.6–13.8 ms in short runs (less in full benchmark runs),
 * with no loss of throughput (docs/performance.md). On a machine with cores to spare per service,
 * parallel GC is the better default.
 */
const nodeFlags: readonly string[] = ['--single-threaded-gc', '--import', 'tsx'];

export class ServiceStartError extends Error {
  override readonly name = 'ServiceStartError';
}

export interface ServiceSpec {
  readonly name: string;
  /** The entry point, relative to the project root, e.g. `coordinator/main.ts`. */
  readonly entry: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly readyTimeoutMs?: number;
  /** Environment for every start, under what a single start adds. */
  readonly env?: Readonly<Record<string, string>>;
}

/**
 * A process's state letter from /proc/<pid>/stat (`T` stopped, `S` sleeping, `R` running, `Z`
 * exited but not reaped), or `gone`. How a test or a fault checks that a SIGSTOP still holds.
 */
export function processState(pid: number | undefined): string {
  if (pid === undefined) return 'gone';
  return stateLetter(`/proc/${pid}/stat`);
}

function stateLetter(statPath: string): string {
  try {
    const stat = readFileSync(statPath, 'utf8');
    const end = stat.lastIndexOf(')');
    return stat.slice(end + 2, end + 3);
  } catch {
    return 'gone';
  }
}

/** The state letter of each of the process's threads (see processState); none once it is gone. */
export function threadStates(pid: number): string[] {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return threads.map((thread) => stateLetter(`/proc/${pid}/task/${thread}/stat`));
}

/** SIGSTOP to a process, resolving once it has stopped (see untilStopped). */
export async function stopProcess(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  await untilStopped(pid);
}

/** How long a SIGSTOPped process may take to stop before pause() gives up. */
const stopWaitMsMax = 5_000;
/** Stopped (`T`), stopped by a tracer (`t`), or past running: exited (`Z`, `X`) or gone. */
const notRunningStates = new Set(['T', 't', 'Z', 'X', 'gone']);

export class ProcessNotStoppedError extends Error {
  override readonly name = 'ProcessNotStoppedError';
  readonly pid: number;

  constructor(pid: number, waitedMs: number) {
    super(`process ${pid} did not stop within ${waitedMs} ms of SIGSTOP`);
    this.pid = pid;
  }
}

/**
 * Resolves once the kernel has stopped every thread of the process, or it is gone. kill() only
 * queues a SIGSTOP: until each thread has taken it, a process on the other core goes on reading
 * its sockets, and a request sent right after pause() may still be answered.
 */
export async function untilStopped(pid: number, waitMsMax = stopWaitMsMax): Promise<void> {
  const deadline = Date.now() + waitMsMax;
  for (;;) {
    // A process that is gone has no threads, and answers nothing either.
    if (threadStates(pid).every((state) => notRunningStates.has(state))) return;
    if (Date.now() >= deadline) throw new ProcessNotStoppedError(pid, waitMsMax);
    await sleep(1);
  }
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) {
    if (child.pid === undefined) continue;
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // It exited already (ESRCH): nothing left to stop.
    }
  }
});

export class ServiceProcess {
  readonly spec: ServiceSpec;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #ready: Readonly<Record<string, unknown>> = {};

  constructor(spec: ServiceSpec) {
    this.spec = spec;
  }

  /** What the process said in its ready line (for example the port it listens on). */
  get ready(): Readonly<Record<string, unknown>> {
    return this.#ready;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** How the last process exited (`exit 1`, `signal SIGKILL`), or undefined while it runs. */
  get exitStatus(): string | undefined {
    const child = this.#child;
    if (child === undefined || this.isRunning()) return undefined;
    return child.signalCode === null ? `exit ${child.exitCode}` : `signal ${child.signalCode}`;
  }

  isRunning(): boolean {
    return (
      this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null
    );
  }

  /** Starts the process with extra environment (e.g. a crash point) and waits until it is ready. */
  async start(env: Readonly<Record<string, string>> = {}): Promise<void> {
    if (this.isRunning()) throw new ServiceStartError(`${this.spec.name} is already running`);
    const log = createWriteStream(this.spec.logFile, { flags: 'a' });
    const child = spawn(process.execPath, [...nodeFlags, this.spec.entry, ...this.spec.args], {
      cwd: projectRoot,
      env: { ...process.env, CONTINUUM_EXIT_WITH_PARENT: '1', ...this.spec.env, ...env },
      // stdin stays open, unused, for the child to notice when this process is gone.
      stdio: ['pipe', 'pipe', 'pipe'],
      // A session of its own: sharing ours, a paused child would be killed by the SIGHUP the
      // kernel sends an orphaned process group with a stopped member, as ours becomes when the
      // shell that started us exits (test/unit/process-groups.test.ts).
      detached: true,
    });
    this.#child = child;
    live.add(child);
    child.stderr.pipe(log);
    this.#exited = new Promise((resolve) => {
      child.once('exit', () => {
        live.delete(child);
        resolve();
      });
    });
    await this.#waitReady(child);
  }

  async #waitReady(child: ChildProcess): Promise<void> {
    const timeoutMs = this.spec.readyTimeoutMs ?? 20_000;
    if (!child.stdout) throw new ServiceStartError(`${this.spec.name} has no stdout`);
    const lines = createInterface({ input: child.stdout });
    const ready = new Promise<boolean>((resolve) => {
      lines.on('line', (line) => {
        if (!line.includes('"event":"ready"')) return;
        this.#ready = JSON.parse(line) as Record<string, unknown>;
        resolve(true);
      });
      child.once('exit', () => resolve(false));
      setTimeout(() => resolve(false), timeoutMs).unref();
    });
    if (await ready) return;
    if (this.isRunning()) await this.kill();
    throw new ServiceStartError(
      `${this.spec.name} did not become ready within ${timeoutMs} ms; log:\n${this.logTail()}`,
    );
  }

  /** Resolves when the process has exited (for example at a crash point). */
  async exited(): Promise<void> {
    await this.#exited;
  }

  async stop(): Promise<void> {
    if (!this.isRunning()) return;
    this.resume();
    this.#signal('SIGTERM');
    const stopped = await Promise.race([
      this.#exited.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000).unref()),
    ]);
    if (!stopped) await this.kill();
  }

  /** kill -9: no cleanup, no flush. */
  async kill(): Promise<void> {
    if (!this.isRunning()) return;
    this.#signal('SIGKILL');
    await this.#exited;
  }

  /** SIGSTOP, resolving once the process has stopped (see untilStopped). */
  async pause(): Promise<void> {
    const pid = this.#child?.pid;
    if (pid === undefined || !this.isRunning()) return;
    await stopProcess(pid);
  }

  resume(): void {
    this.#signal('SIGCONT');
  }

  async restart(env: Readonly<Record<string, string>> = {}): Promise<void> {
    await this.stop();
    await this.start(env);
  }

  logTail(lineCount = 30): string {
    try {
      return readFileSync(this.spec.logFile, 'utf8')
        .trimEnd()
        .split('\n')
        .slice(-lineCount)
        .join('\n');
    } catch {
      return '(no log)';
    }
  }

  #signal(signal: NodeJS.Signals): void {
    const pid = this.#child?.pid;
    if (pid !== undefined && this.isRunning()) process.kill(pid, signal);
  }
}
