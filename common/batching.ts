/**
 * The plumbing both service shells share: inputs gathered into one batch per turn of the event
 * loop (group commit happens per batch), requests waiting for a reply under a numeric reference
 * the pure machines can carry, one timer set for a machine's next deadline, and items held back
 * to travel with the next batch.
 */
import { workCounters } from './stats.ts';
import { TurnoverMap } from './turnover-map.ts';

/**
 * Collects inputs and hands them over together on the next turn of the event loop. Each input is
 * a function, called only when the batch is handled, so what it looks up is current then.
 */
export class InputBatcher<Input> {
  readonly #handle: (inputs: (() => Input)[]) => void;
  #queue: (() => Input)[] = [];
  #scheduled = false;
  #stopped = false;

  constructor(handle: (inputs: (() => Input)[]) => void) {
    this.#handle = handle;
  }

  enqueue(input: () => Input): void {
    if (this.#stopped) return;
    this.#queue.push(input);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      const inputs = this.#queue;
      this.#queue = [];
      if (this.#stopped) return;
      workCounters.batches += 1;
      workCounters.inputs += inputs.length;
      this.#handle(inputs);
    });
  }

  stop(): void {
    this.#stopped = true;
    this.#queue = [];
  }
}

/** Requests waiting for their reply, by a reference a machine can carry in its inputs. */
export class PendingRequests<Request> {
  readonly #pending = new TurnoverMap<number, Request>();
  #next = 1;

  register(request: Request): number {
    const ref = this.#next;
    this.#next += 1;
    this.#pending.set(ref, request);
    return ref;
  }

  /** Removes and returns the request; undefined if it was answered already. */
  take(ref: number): Request | undefined {
    const request = this.#pending.get(ref);
    this.#pending.delete(ref);
    return request;
  }
}

/** One timer, moved earlier when an earlier deadline appears; fires once per arming. */
export class DeadlineTimer {
  readonly #now: () => number;
  readonly #fire: () => void;
  #timer: NodeJS.Timeout | undefined;
  #at = Number.POSITIVE_INFINITY;

  constructor(now: () => number, fire: () => void) {
    this.#now = now;
    this.#fire = fire;
  }

  arm(deadline: number | undefined): void {
    if (deadline === undefined || deadline >= this.#at) return;
    clearTimeout(this.#timer);
    this.#at = deadline;
    this.#timer = setTimeout(
      () => {
        this.#at = Number.POSITIVE_INFINITY;
        this.#fire();
      },
      Math.max(0, deadline - this.#now()),
    );
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#at = Number.POSITIVE_INFINITY;
  }
}

/**
 * Items held back to travel with the next batch that goes anyway (a forced journal write, a
 * PREPARE), or by themselves once the first of them has waited `waitMs`. When that time comes,
 * `onDue` is called; it takes the items with take(), so whoever sends them decides how.
 */
export class HeldBack<Item> {
  readonly #waitMs: number;
  readonly #onDue: () => void;
  #items: Item[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(waitMs: number, onDue: () => void) {
    this.#waitMs = waitMs;
    this.#onDue = onDue;
  }

  get size(): number {
    return this.#items.length;
  }

  hold(items: readonly Item[]): void {
    if (items.length === 0) return;
    this.#items.push(...items);
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#onDue();
    }, this.#waitMs);
  }

  /** Every item held, oldest first; none are held afterwards. */
  take(): Item[] {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const items = this.#items;
    this.#items = [];
    return items;
  }

  /** Forgets the items, and onDue is not called for them. */
  clear(): void {
    this.take();
  }
}
