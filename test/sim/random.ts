/**
 * The simulator's only source of randomness: xoshiro128** (Blackman and Vigna), seeded through
 * splitmix32. It is small, fast, and has no hidden global state, so one seed always gives the same
 * stream on every machine and Node version. `Math.random` is never used inside a simulation:
 * a run must be reproducible from its seed alone.
 */
import { assert } from '../../common/assert.ts';

export class Random {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;

  /** Any safe integer is a seed; both 32-bit halves feed the state, so 2^32 + 1 differs from 1. */
  constructor(seed: number) {
    assert(Number.isSafeInteger(seed) && seed >= 0, `seed ${seed} is a non-negative safe integer`);
    let state = (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) >>> 0, 0x9e3779b1);
    const splitmix = (): number => {
      state = (state + 0x9e3779b9) | 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#s0 = splitmix();
    this.#s1 = splitmix();
    this.#s2 = splitmix();
    this.#s3 = splitmix();
    // xoshiro's only bad state is all zeros, which splitmix cannot produce four times in a row,
    // but the guard costs nothing.
    if ((this.#s0 | this.#s1 | this.#s2 | this.#s3) === 0) this.#s0 = 1;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  uint32(): number {
    let s0 = this.#s0;
    let s1 = this.#s1;
    let s2 = this.#s2;
    let s3 = this.#s3;
    const result = Math.imul(rotateLeft(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotateLeft(s3, 11);
    this.#s0 = s0;
    this.#s1 = s1;
    this.#s2 = s2;
    this.#s3 = s3;
    return result;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.uint32() / 2 ** 32;
  }

  /** An integer in [min, max], both included. */
  int(min: number, max: number): number {
    assert(min <= max, `int range ${min}..${max} is ordered`);
    return min + Math.floor(this.float() * (max - min + 1));
  }

  /** True with probability `p`; never draws when `p` is 0, so a disabled fault costs nothing. */
  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, 'pick from a non-empty list');
    return items[this.int(0, items.length - 1)] as T;
  }

  /**
   * An independent generator derived from this one. Each part of the world (network, faults,
   * clients) draws from its own fork, so a change in how often one part draws does not shift the
   * stream of another: a seed keeps its workload when, say, a mutation changes the message count.
   */
  fork(): Random {
    return new Random(this.uint32() * 2 ** 21 + (this.uint32() >>> 11));
  }
}

function rotateLeft(value: number, bits: number): number {
  return (value << bits) | (value >>> (32 - bits));
}
