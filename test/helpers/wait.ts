/** Waiting in tests: always bounded, so a test that waits for something that never comes ends. */
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `condition` every 50 ms until it holds or `timeoutMs` passes; true if it held. */
export async function until(
  condition: () => Promise<boolean> | boolean,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
}
