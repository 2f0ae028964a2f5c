/**
 * The leadership lease in the journal's own SQLite file, for coordinators that share that file on
 * one host (`--lease-journal on`): they take turns without JetStream, so the lease is as available
 * as the journal itself.
 *
 * One row says who holds the lease, under which token, until when (epoch ms). Acquiring writes our
 * holder, a fresh token and an expiry, only if the lease has expired; renewing moves the expiry
 * forward only if the token is still ours, so a coordinator that paused past the TTL and was
 * replaced learns that it lost the lease. Expiry is judged by this host's clock, which every
 * coordinator sharing the file reads. As with the JetStream lease (nats-lease.ts), the lease only
 * decides who may *try* to lead; safety comes from the epoch fence in the journal.
 */
import { randomUUID } from 'node:crypto';
import { errorText } from '../../common/log.ts';
import { openDatabase, type SqliteDatabase } from '../../common/sqlite.ts';
import type { Lease } from '../leadership.ts';

export interface SqliteLeaseOptions {
  /** The journal's file: the lease lives beside the epoch it guards. */
  readonly file: string;
  readonly ttlMs: number;
  /** Who we are, written into the lease for operators to see. */
  readonly holder: string;
  readonly now: () => number;
  /** How long a lease write waits for another process's write lock (busy_timeout). */
  readonly busyWaitMs?: number;
}

export class SqliteLease implements Lease {
  readonly #options: SqliteLeaseOptions;
  readonly #db: SqliteDatabase;
  readonly #statements;
  #token: string | undefined;
  #unavailable: string | undefined;

  constructor(options: SqliteLeaseOptions) {
    this.#options = options;
    this.#db = openDatabase(options.file, 'coordinator');
    if (options.busyWaitMs !== undefined) this.#db.pragma(`busy_timeout = ${options.busyWaitMs}`);
    this.#statements = {
      expiresAt: this.#db.prepare('SELECT expires_at FROM lease WHERE id = 1').pluck(),
      acquire: this.#db.prepare(
        `UPDATE lease SET holder = ?, token = ?, epoch = ?, expires_at = ?
         WHERE id = 1 AND expires_at <= ?`,
      ),
      renew: this.#db.prepare(
        'UPDATE lease SET epoch = ?, expires_at = ? WHERE id = 1 AND token = ?',
      ),
      release: this.#db.prepare('UPDATE lease SET expires_at = 0 WHERE id = 1 AND token = ?'),
    };
  }

  /** Why the last attempt failed when it was not simply held by another: a SQLite error. */
  get unavailable(): string | undefined {
    return this.#unavailable;
  }

  /** Takes the lease if it has expired. Resolves true when we hold it now. */
  tryAcquire(epochHint: number): Promise<boolean> {
    return this.#attempt(() => {
      const now = this.#options.now();
      this.#token = undefined;
      // A read first: a standby polls often, and a held lease needs no write lock.
      if ((this.#statements.expiresAt.get() as number) > now) return false;
      const token = randomUUID();
      const { holder, ttlMs } = this.#options;
      const taken = this.#statements.acquire.run(holder, token, epochHint, now + ttlMs, now);
      if (taken.changes !== 1) return false;
      this.#token = token;
      return true;
    });
  }

  /** Moves the expiry forward. Resolves false when the lease is no longer ours. */
  renew(epoch: number): Promise<boolean> {
    const token = this.#token;
    if (token === undefined) return Promise.resolve(false);
    return this.#attempt(() => {
      const expiresAt = this.#options.now() + this.#options.ttlMs;
      if (this.#statements.renew.run(epoch, expiresAt, token).changes === 1) return true;
      this.#token = undefined;
      return false;
    });
  }

  /** Gives the lease up at once (a clean shutdown), so a standby need not wait for the TTL. */
  async release(): Promise<void> {
    const token = this.#token;
    this.#token = undefined;
    if (token !== undefined) await this.#attempt(() => this.#statements.release.run(token).changes);
  }

  close(): void {
    this.#db.close();
  }

  /** Runs a lease operation; a SQLite failure (a busy file past its timeout) is "not held". */
  #attempt<T>(operation: () => T): Promise<T | false> {
    try {
      const result = operation();
      this.#unavailable = undefined;
      return Promise.resolve(result);
    } catch (error) {
      this.#unavailable = errorText(error);
      return Promise.resolve(false);
    }
  }
}
