/**
 * When each transaction in flight next has something to do, as a binary min-heap: the earliest
 * in O(1), an entry added or taken in O(log n). The coordinator machine uses it so that neither
 * finding its next deadline (once per batch) nor a `tick` has to look at every transaction in
 * flight: at the 10,000 `--in-flight-max` allows by default (a participant down for minutes),
 * those scans would take about a tenth of a core (docs/performance.md, fifth round).
 *
 * Entries are never updated in place. Whoever moves a transaction's time earlier adds an entry;
 * an entry whose transaction is gone or has moved later is stale, and its reader drops or
 * re-adds it. So a transaction may have several entries, at most one of which is current.
 */
import { assert } from '../../common/assert.ts';

export interface DueEntry {
  readonly at: number;
  readonly txId: string;
}

interface HeapEntry extends DueEntry {
  /** Insertion order, so that entries due at the same time come out in the order added. */
  readonly seq: number;
}

export class DueQueue {
  #heap: HeapEntry[] = [];
  #seq = 0;

  get size(): number {
    return this.#heap.length;
  }

  add(at: number, txId: string): void {
    const heap = this.#heap;
    heap.push({ at, txId, seq: this.#seq++ });
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(heap, index, parent)) break;
      swap(heap, index, parent);
      index = parent;
    }
  }

  /** The earliest entry, without taking it. */
  peek(): DueEntry | undefined {
    return this.#heap[0];
  }

  /** Takes the earliest entry. */
  take(): DueEntry | undefined {
    const heap = this.#heap;
    const first = heap[0];
    const last = heap.pop();
    if (first === undefined || last === undefined || heap.length === 0) return first;
    heap[0] = last;
    let index = 0;
    for (;;) {
      const left = index * 2 + 1;
      const right = left + 1;
      let smallest = index;
      if (left < heap.length && before(heap, left, smallest)) smallest = left;
      if (right < heap.length && before(heap, right, smallest)) smallest = right;
      if (smallest === index) return first;
      swap(heap, index, smallest);
      index = smallest;
    }
  }

  /** Replaces every entry with these, one per transaction: drops the stale ones in O(n log n). */
  rebuild(entries: Iterable<DueEntry>): void {
    this.#heap = [];
    for (const { at, txId } of entries) this.add(at, txId);
  }
}

/** Whether the entry at i comes out before the entry at j; both indices are in the heap. */
function before(heap: readonly HeapEntry[], i: number, j: number): boolean {
  const a = entryAt(heap, i);
  const b = entryAt(heap, j);
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

function swap(heap: HeapEntry[], i: number, j: number): void {
  const entry = entryAt(heap, i);
  heap[i] = entryAt(heap, j);
  heap[j] = entry;
}

function entryAt(heap: readonly HeapEntry[], index: number): HeapEntry {
  const entry = heap[index];
  assert(entry !== undefined, `heap index ${index} is inside the heap`);
  return entry;
}
