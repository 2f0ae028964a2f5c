/** How a benchmark result names the CPU it ran on (bench/machine.ts). */
import test from 'ava';
import { describeCpu } from '../../bench/machine.ts';

test('the model name comes with its clock, rounded to a MHz', (t) => {
  const cpuinfo = [
    'processor\t: 0',
    'model name\t: Intel(R) Xeon(R) Processor',
    'cpu MHz\t\t: 2099.998',
    '',
    'processor\t: 1',
    'model name\t: Intel(R) Xeon(R) Processor',
    'cpu MHz\t\t: 2099.998',
  ].join('\n');
  t.is(describeCpu(cpuinfo), 'Intel(R) Xeon(R) Processor at 2100 MHz');
});

test('without a clock line the model name stands alone; without either, unknown', (t) => {
  t.is(describeCpu('model name\t: AMD EPYC 7B13\n'), 'AMD EPYC 7B13');
  t.is(describeCpu('model name\t: AMD EPYC 7B13\ncpu MHz\t\t: 0.000\n'), 'AMD EPYC 7B13');
  t.is(describeCpu('processor\t: 0\n'), 'unknown');
});
