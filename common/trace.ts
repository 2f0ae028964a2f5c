/**
 * Message traces for ladder diagrams and debugging: with `CONTINUUM_TRACE=1`, a service writes one
 * JSON line per message it sends or receives and per journal write, on stderr beside its logs:
 * `{"event":"trace","at":<epoch ms, fractional>,"service":…,"step":…,"peer":…,"txId":…,…}`.
 * Off by default: it costs a line per message. Times come from the same clock on one host, so
 * traces of several processes can be merged and sorted.
 */
import { performance } from 'node:perf_hooks';

export type TraceStep = 'receive' | 'send' | 'reply' | 'journal' | 'local';

export interface TraceFields {
  readonly step: TraceStep;
  /** The other side: a participant name, 'client' or 'coordinator'. */
  readonly peer?: string;
  readonly txId?: string;
  readonly idempotencyKey?: string;
  /** What crossed: a message kind (prepare, vote yes, commit, …) or a record kind. */
  readonly what: string;
}

export type Tracer = (fields: TraceFields) => void;

/**
 * The service's tracer, or undefined when tracing is off. Call it as `trace?.({ … })`: when it is
 * undefined the fields are not even built, and the hot paths allocate nothing for traces.
 */
export function createTracer(service: string): Tracer | undefined {
  if (process.env['CONTINUUM_TRACE'] !== '1') return undefined;
  return (fields) => {
    const at = performance.timeOrigin + performance.now();
    process.stderr.write(`${JSON.stringify({ event: 'trace', at, service, ...fields })}\n`);
  };
}
