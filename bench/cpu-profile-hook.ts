/**
 * A CPU profile and an allocation profile of the process that imports this first:
 * `NODE_OPTIONS="--import tsx --import ./bench/cpu-profile-hook.ts"` with
 * `CONTINUUM_CPU_PROFILE_DIR` set. Node 20 refuses `--cpu-prof` in NODE_OPTIONS, so this does the
 * same through the inspector: it starts V8's sampling profiler at once and writes
 * `CPU.<date>.<time>.<pid>.0.001.cpuprofile` when the process exits (the in-process inspector
 * session answers synchronously, so the 'exit' handler can still write). The allocation profile
 * (`Heap.<date>.<time>.<pid>.heapprofile`) is V8's sampling heap profiler keeping the samples of
 * objects already collected too: every allocation, not only what is still live at exit.
 */
import { writeFileSync } from 'node:fs';
import { Session, type HeapProfiler, type Profiler } from 'node:inspector';
import { join } from 'node:path';

const directory = process.env['CONTINUUM_CPU_PROFILE_DIR'];
if (directory !== undefined && directory !== '') {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.start');
  session.post('HeapProfiler.enable');
  session.post('HeapProfiler.startSampling', {
    samplingInterval: 8_192,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  process.once('exit', () => {
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '.').slice(0, 15);
    session.post('Profiler.stop', (error, result: Profiler.StopReturnType | undefined) => {
      if (error || !result) return;
      const file = join(directory, `CPU.${stamp}.${process.pid}.0.001.cpuprofile`);
      writeFileSync(file, JSON.stringify(result.profile));
    });
    session.post(
      'HeapProfiler.stopSampling',
      (error, result: HeapProfiler.StopSamplingReturnType | undefined) => {
        if (error || !result) return;
        const file = join(directory, `Heap.${stamp}.${process.pid}.heapprofile`);
        writeFileSync(file, JSON.stringify(result.profile));
      },
    );
  });
}
