/**
 * The leadership lease, held in a JetStream key-value bucket replicated on the NATS cluster.
 *
 * The bucket's TTL (stream max age) is the lease's TTL: a value not rewritten within it expires on
 * the servers, whatever any coordinator's clock says. Acquiring is `create` (it succeeds only when
 * the key holds no value); renewing is `update` against the revision we wrote last, so exactly one
 * holder can renew and a coordinator that paused past the TTL finds its revision gone and learns it
 * lost the lease. The lease only decides who may *try* to lead: safety comes from the epoch fence
 * in the journal (coordinator/adapters/sqlite-journal.ts), which a lease alone cannot give.
 */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { errorText } from '../../common/log.ts';
import type { NatsConnection } from '../../common/nats.ts';
import type { Lease } from '../leadership.ts';

export interface LeaseOptions {
  readonly nats: NatsConnection;
  readonly bucket: string;
  readonly ttlMs: number;
  /** Who we are, written into the lease for operators to see. */
  readonly holder: string;
}

const leaseKey = 'coordinator';

export class NatsLease implements Lease {
  readonly #kv: KV;
  readonly #options: LeaseOptions;
  #revision: number | undefined;
  #unavailable: string | undefined;

  private constructor(kv: KV, options: LeaseOptions) {
    this.#kv = kv;
    this.#options = options;
  }

  /** Opens the bucket, creating it (3 replicas where the cluster has them) if it is missing. */
  static async open(options: LeaseOptions, replicas: number): Promise<NatsLease> {
    const kv = await new Kvm(options.nats).create(options.bucket, {
      replicas,
      history: 1,
      ttl: options.ttlMs,
    });
    return new NatsLease(kv, options);
  }

  get ttlMs(): number {
    return this.#options.ttlMs;
  }

  /**
   * Why the last attempt to take the lease failed, when it was not simply held by another
   * coordinator: the servers could not answer (a JetStream stream without a leader, a timeout).
   * While it is set, no coordinator can lead: operators need to see it (docs/failover.md).
   */
  get unavailable(): string | undefined {
    return this.#unavailable;
  }

  /** Takes the lease if nobody holds it. Resolves true when we hold it now. */
  async tryAcquire(epochHint: number): Promise<boolean> {
    try {
      this.#revision = await this.#kv.create(leaseKey, this.#value(epochHint));
      this.#unavailable = undefined;
      return true;
    } catch (error) {
      // Held by someone else, or the servers could not answer: either way we do not hold it.
      this.#revision = undefined;
      this.#unavailable = isHeldByAnother(error) ? undefined : errorText(error);
      return false;
    }
  }

  /** Rewrites the lease before it expires. Resolves false when it is no longer ours. */
  async renew(epoch: number): Promise<boolean> {
    if (this.#revision === undefined) return false;
    try {
      this.#revision = await this.#kv.update(leaseKey, this.#value(epoch), this.#revision);
      return true;
    } catch {
      this.#revision = undefined;
      return false;
    }
  }

  /** Gives the lease up at once (a clean shutdown), so a standby need not wait for the TTL. */
  async release(): Promise<void> {
    if (this.#revision === undefined) return;
    const revision = this.#revision;
    this.#revision = undefined;
    try {
      await this.#kv.delete(leaseKey, { previousSeq: revision });
    } catch {
      // Already taken over or expired: nothing to release.
    }
  }

  #value(epoch: number): string {
    return JSON.stringify({ holder: this.#options.holder, epoch, at: Date.now() });
  }
}

/** `create` found a value: the lease is held, which is no failure of the servers. */
function isHeldByAnother(error: unknown): boolean {
  const codes: readonly number[] = [
    JetStreamApiCodes.StreamWrongLastSequence,
    JetStreamApiCodes.StreamWrongLastSequenceUnknown,
  ];
  return error instanceof JetStreamApiError && codes.includes(error.code);
}
