/**
 * A CPU profile of the process that imports this first: `NODE_OPTIONS="--import tsx --import
 * ./bench/cpu-profile-hook.ts"` with `CONTINUUM_CPU_PROFILE_DIR` set. Node 20 refuses `--cpu-prof` in
 * NODE_OPTIONS, so this does the same through the inspector: it starts V8's sampling profiler at
 * once and writes `CPU.<date>.<time>.<pid>.0.001.cpuprofile` when the process exits (the
 * in-process inspector session answers synchronously, so the 'exit' handler can still write).
 */
import { writeFileSync } from 'node:fs';
import { Session, type Profiler } from 'node:inspector';
import { join } from 'node:path';

const directory = process.env['CONTINUUM_CPU_PROFILE_DIR'];
if (directory !== undefined && directory !== '') {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.start');
  process.once('exit', () => {
    session.post('Profiler.stop', (error, result: Profiler.StopReturnType | undefined) => {
      if (error || !result) return;
      const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '.').slice(0, 15);
      const file = join(directory, `CPU.${stamp}.${process.pid}.0.001.cpuprofile`);
      writeFileSync(file, JSON.stringify(result.profile));
    });
  });
}
