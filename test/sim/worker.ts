/**
 * A worker thread's entry: runs its share of a batch of seeds and posts progress and its tally.
 * Started by `runInParallel` in runner.ts. Loaded any other way (a test runner globbing `test/`),
 * it does nothing.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runShare, type WorkerJob, type WorkerMessage } from './runner.ts';

const port = parentPort;
if (port !== null) {
  const post = (message: WorkerMessage): void => port.postMessage(message);
  const tally = runShare(workerData as WorkerJob, (done) => post({ kind: 'progress', done }));
  post({ kind: 'done', tally });
}
