/**
 * The simulator's event queue: a binary min-heap ordered by virtual time, then by insertion order.
 * The tie-break on a sequence number is what makes a run deterministic: two events due at the
 * same millisecond always run in the order they were scheduled.
 */

interface Entry<T> {
  readonly at: number;
  readonly seq: number;
  readonly event: T;
}

export class EventQueue<T> {
  readonly #heap: Entry<T>[] = [];
  #seq = 0;

  get size(): number {
    return this.#heap.length;
  }

  push(at: number, event: T): void {
    const heap = this.#heap;
    heap.push({ at, seq: this.#seq, event });
    this.#seq += 1;
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(this.#entry(index), this.#entry(parent))) break;
      this.#swap(index, parent);
      index = parent;
    }
  }

  /** Removes and returns the earliest event, or undefined when the queue is empty. */
  pop(): { readonly at: number; readonly event: T } | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined) return undefined;
    if (heap.length === 0) return top;
    heap[0] = last;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let smallest = index;
      if (left < heap.length && before(this.#entry(left), this.#entry(smallest))) smallest = left;
      if (right < heap.length && before(this.#entry(right), this.#entry(smallest))) {
        smallest = right;
      }
      if (smallest === index) return top;
      this.#swap(index, smallest);
      index = smallest;
    }
  }

  #entry(index: number): Entry<T> {
    return this.#heap[index] as Entry<T>;
  }

  #swap(a: number, b: number): void {
    const heap = this.#heap;
    const entry = heap[a] as Entry<T>;
    heap[a] = heap[b] as Entry<T>;
    heap[b] = entry;
  }
}

function before<T>(a: Entry<T>, b: Entry<T>): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
