/**
 * Assertions for programmer errors. A broken invariant means the code is wrong, and the only safe
 * reaction is to stop: the process restarts and recovers from its journal. Never use this for
 * input from the network or a user; that gets a typed error instead (see errors.ts).
 */
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function unreachable(value: never, what: string): never {
  throw new AssertionError(`unreachable ${what}: ${JSON.stringify(value)}`);
}
