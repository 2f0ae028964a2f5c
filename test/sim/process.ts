/**
 * What the real shells of the coordinator and of a participant have in common, as a simulated
 * process: an inbox of inputs handled in batches, effects carried out in the order the machine
 * emits them, writes that take virtual time to become durable, one timer for the machine's next
 * deadline, and crashes that lose everything volatile.
 *
 * Batches. As in the real shells, inputs that arrive while a batch is pending join it, and each
 * input is built when the batch is handled (a thunk), so journal or barrier lookups see every
 * earlier batch. A process that is writing handles nothing else until the write is durable, as
 * the real shells block on SQLite's fsync.
 *
 * Order of effects. The simulated shell carries out a batch's effects strictly in the order the
 * machine emitted them (STYLE.md: "a journal write before any message that depends on it"),
 * grouping consecutive writes into one durable write. The real coordinator shell is stricter: it
 * writes all of a batch's records before any message. Following the machine's order here means
 * the simulation checks the machines' own promise rather than leaning on the shell's hoisting,
 * which is what lets it catch a machine that emits a message before the record it depends on.
 */
import { assert } from '../../common/assert.ts';
import { errorText } from '../../common/log.ts';
import type { ProcessContext, ProcessName, SimEvent } from './world.ts';

export abstract class SimProcess<Input, Effect> {
  readonly name: ProcessName;
  protected readonly ctx: ProcessContext;
  up = false;
  paused = false;
  incarnation = 0;
  /** Events that reached this process while it was paused; run again when it resumes. */
  deferred: SimEvent[] = [];
  #inbox: (() => Input)[] = [];
  #flushScheduled = false;
  #writing = false;
  #agenda: readonly Effect[] = [];
  #index = 0;
  #followUps: Input[] = [];
  #timerAt = Number.POSITIVE_INFINITY;
  #fencedWrite = false;
  /** When the started write begins: at once, once another process's lock is free, or never. */
  #writeBeginsAt = 0;
  /** How long the started write may wait for that lock (SQLite's busy timeout). */
  #busyWaitMs = 0;

  constructor(name: ProcessName, ctx: ProcessContext) {
    this.name = name;
    this.ctx = ctx;
  }

  /** Starts (or restarts) the process: a new machine rebuilt from durable state. */
  start(): void {
    this.up = true;
    this.ctx.trace(this.name, 'start', `incarnation ${this.incarnation}`);
    let effects: Effect[];
    try {
      effects = this.recover();
    } catch (error) {
      this.ctx.fail('machine-threw', `${this.name} recovery: ${errorText(error)}`);
      return;
    }
    this.#run(effects);
  }

  /** kill -9: volatile state is lost; a write in progress is durable or not, at random. */
  crash(): void {
    if (!this.up) return;
    if (this.#writing && this.ctx.now >= this.#writeBeginsAt && this.ctx.rng.chance(0.5)) {
      // The crash came after the fsync but before the process could act on it.
      this.ctx.count('write-survived-crash');
      this.#commitWrite();
    }
    this.up = false;
    this.paused = false;
    this.incarnation += 1;
    this.deferred = [];
    this.#inbox = [];
    this.#flushScheduled = false;
    this.#writing = false;
    this.#agenda = [];
    this.#index = 0;
    this.#followUps = [];
    this.#timerAt = Number.POSITIVE_INFINITY;
    this.#fencedWrite = false;
    this.#writeBeginsAt = 0;
    this.loseVolatileState();
  }

  onFlush(): void {
    this.#flushScheduled = false;
    if (!this.up || this.#writing) return;
    const inputs = this.#inbox;
    this.#inbox = [];
    if (inputs.length === 0) return;
    if (!this.admitBatch()) {
      this.onFenced();
      return;
    }
    const effects = this.#stepAll(inputs.map((makeInput) => makeInput()));
    if (effects !== undefined) this.#run(effects);
  }

  onWriteDone(): void {
    if (!this.up || !this.#writing) return;
    this.#writing = false;
    const results = this.#commitWrite();
    if (results === undefined) {
      if (this.#fencedWrite) this.#onFencedWrite();
      return;
    }
    this.#followUps.push(...results);
    this.#continue();
  }

  onTimer(due: number): void {
    // A timer replaced by an earlier one was cleared in the real shell; ignore it here.
    if (!this.up || due !== this.#timerAt) return;
    this.#timerAt = Number.POSITIVE_INFINITY;
    this.enqueue(() => this.tickInput());
  }

  protected enqueue(makeInput: () => Input): void {
    if (!this.up) return;
    this.#inbox.push(makeInput);
    this.#scheduleFlush();
  }

  protected abstract recover(): Effect[];
  protected abstract stepMachine(input: Input): Effect[];
  protected abstract nextDeadline(): number | undefined;
  protected abstract tickInput(): Input;
  protected abstract isWrite(effect: Effect): boolean;
  /** Whether to hold a group of writes back for a later write (a participant's decisions). */
  protected abstract holdWrite(group: readonly Effect[]): boolean;
  /**
   * Runs effects outside any batch of inputs, as a real shell's timer does between batches (a
   * participant's held decisions). The simulator delivers such a timer only between batches.
   */
  protected runBetweenBatches(effects: readonly Effect[]): void {
    assert(this.up && !this.#writing, `${this.name}: a timer ran inside a batch`);
    this.#run(effects);
  }
  /** Takes a group of writes; returns true when it needs an fsync, false when it is done. */
  protected abstract startWrite(group: readonly Effect[]): boolean;
  /** Makes the started write durable; returns the inputs it produces (local results). */
  protected abstract commitWrite(): Input[];
  protected abstract perform(effect: Effect): void;
  protected abstract loseVolatileState(): void;

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#writing) return;
    this.#flushScheduled = true;
    const event: SimEvent = { kind: 'flush', node: this.name, incarnation: this.incarnation };
    this.ctx.schedule(this.ctx.now, event);
  }

  #stepAll(inputs: readonly Input[]): Effect[] | undefined {
    const effects: Effect[] = [];
    for (const input of inputs) {
      this.ctx.trace(this.name, 'input', input);
      try {
        effects.push(...this.stepMachine(input));
      } catch (error) {
        this.ctx.fail('machine-threw', `${this.name}: ${errorText(error)}`);
        return undefined;
      }
    }
    return effects;
  }

  #run(effects: readonly Effect[]): void {
    this.#agenda = effects;
    this.#index = 0;
    this.onAgenda(effects);
    this.#continue();
  }

  /** A batch's effects (or a batch's follow-ups') are about to be carried out. */
  protected abstract onAgenda(effects: readonly Effect[]): void;

  /** The shell's hold timer (`held-due`): what it held back is due. Only between batches. */
  abstract onHeldDue(due: number): void;

  /** Carries out the agenda in order, stopping at a write that needs an fsync. */
  #continue(): void {
    for (;;) {
      if (this.ctx.failed || !this.up) return;
      if (this.#index >= this.#agenda.length) {
        if (this.#followUps.length === 0) break;
        const effects = this.#stepAll(this.#followUps);
        this.#followUps = [];
        if (effects === undefined) return;
        this.#agenda = effects;
        this.#index = 0;
        this.onAgenda(effects);
        continue;
      }
      const effect = this.#agenda[this.#index] as Effect;
      if (!this.isWrite(effect)) {
        this.#index += 1;
        this.perform(effect);
        continue;
      }
      let end = this.#index + 1;
      while (end < this.#agenda.length && this.isWrite(this.#agenda[end] as Effect)) end += 1;
      const group = this.#agenda.slice(this.#index, end);
      this.#index = end;
      if (this.holdWrite(group)) continue;
      this.#writeBeginsAt = 0;
      if (this.startWrite(group)) {
        this.#startFsync();
        return;
      }
      const results = this.#commitWrite();
      if (results === undefined) {
        if (this.#fencedWrite) this.#onFencedWrite();
        return;
      }
      this.#followUps.push(...results);
    }
    this.#afterBatch();
  }

  #startFsync(): void {
    this.#writing = true;
    const { rng, params, now } = this.ctx;
    const fsyncMs = rng.int(0, params.fsyncMsMax) + this.#writeWaitMs();
    const incarnation = this.incarnation;
    if (this.ctx.chaos && rng.chance(params.faults.crashInWriteRate)) {
      // Aim a crash inside the write, where "durable or not" is decided. Scheduled first, so
      // that at the same instant it still comes before the write completes.
      this.ctx.schedule(now + rng.int(0, fsyncMs), { kind: 'crash', node: this.name, incarnation });
    }
    this.ctx.schedule(now + fsyncMs, { kind: 'write-done', node: this.name, incarnation });
  }

  #commitWrite(): Input[] | undefined {
    try {
      return this.commitWrite();
    } catch (error) {
      if (this.isFenced(error)) {
        // Not a failure: a newer term began. Acted on once the write is over (not in a crash).
        this.#fencedWrite = true;
        return undefined;
      }
      this.ctx.fail('shell-threw', `${this.name}: ${errorText(error)}`);
      return undefined;
    }
  }

  #onFencedWrite(): void {
    this.#fencedWrite = false;
    this.onFenced();
  }

  /**
   * For `startWrite`: another process holds the database's write lock until `lockedUntil`. The
   * started write waits for it, as SQLite's busy handler does, up to `busyWaitMs`; past that it
   * never begins (a crash meanwhile leaves nothing durable) and fails as busy at the timeout
   * (`writeFailedBusy`).
   */
  protected waitForLock(lockedUntil: number, busyWaitMs: number): void {
    const { now } = this.ctx;
    const lockedMs = lockedUntil - now;
    this.#writeBeginsAt = lockedMs <= 0 ? now : lockedMs <= busyWaitMs ? lockedUntil : Infinity;
    this.#busyWaitMs = busyWaitMs;
  }

  /** For `commitWrite`: the started write waited out the busy timeout and wrote nothing. */
  protected get writeFailedBusy(): boolean {
    return this.#writeBeginsAt === Infinity;
  }

  /** How long the started write waits before it begins, or before it fails as busy. */
  #writeWaitMs(): number {
    if (this.#writeBeginsAt === Infinity) return this.#busyWaitMs;
    return Math.max(0, this.#writeBeginsAt - this.ctx.now);
  }

  /** Whether the process may handle a batch now; false: its term is over (coordinators only). */
  protected admitBatch(): boolean {
    return true;
  }

  /** Whether a write failed because the process's term is over. */
  protected abstract isFenced(error: unknown): boolean;

  /** A write was fenced: the rest of the batch is dropped; the process decides what follows. */
  protected onFenced(): void {}

  /**
   * A write is being made durable, in the middle of a batch: the real shell, blocked in it, does
   * nothing else, and its timers (purge, lease) run only once the batch is over.
   */
  get writing(): boolean {
    return this.#writing;
  }

  #afterBatch(): void {
    this.#armTimer();
    if (this.ctx.chaos && this.ctx.rng.chance(this.ctx.params.faults.crashAfterStepRate)) {
      this.ctx.crash(this.name, 'crash-after-step');
      return;
    }
    if (this.#inbox.length > 0) this.#scheduleFlush();
  }

  /** One timer for the machine's next deadline, re-armed only when it moves earlier. */
  #armTimer(): void {
    const deadline = this.nextDeadline();
    if (deadline === undefined || deadline >= this.#timerAt) return;
    this.#timerAt = deadline;
    const at = Math.max(this.ctx.now, deadline);
    const event: SimEvent = {
      kind: 'timer',
      node: this.name,
      incarnation: this.incarnation,
      due: deadline,
    };
    this.ctx.schedule(at, event);
  }
}
