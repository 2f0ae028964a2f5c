/**
 * Active and standby. A coordinator process waits as a standby until it holds the lease, then
 * starts a term: a new epoch, forced to the journal, a fresh machine recovered from the journal
 * (the crash-recovery rules finish whatever the previous leader started), and subscriptions to the
 * client subjects. The term ends when the lease cannot be renewed, the journal shows a newer
 * term (to a write, a batch, or the check before each renewal), or a write of the term (its
 * start included) finds the journal's write lock held by another process past the busy timeout;
 * the process then forgets its memory and waits as a standby again. After a busy journal it gives
 * the lease back first, so that whichever process takes it next leads as soon as the lock is free
 * rather than after the lease's TTL.
 *
 * The check before each renewal matters when two processes each took the lease in turn while
 * their term starts waited for the journal's write lock (the first past the TTL): once the lock
 * is free both start a term, the later one fences the earlier, and the later one's renewal then
 * fails because the earlier holds the lease. Without the check, the earlier one, idle, would
 * renew a lease for a term that is over, and nobody would lead until its next write; with it,
 * its term ends at the next renewal and the lease, no longer renewed, is free after its TTL. A
 * fenced process does not give the lease back: it usually belongs to the newer term by then,
 * and a delete against a revision it remembers is only as safe as the revisions are unique,
 * which a JetStream stream reset after a server crash does not keep (docs/failover.md).
 *
 * Without a lease (a single coordinator) the process leads from the start, and a newer term in the
 * journal means another coordinator was started on the same file by mistake: it stops.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { FencedError, JournalBusyError } from '../common/errors.ts';
import { errorText, type Logger } from '../common/log.ts';
import type { SqliteJournal } from './adapters/sqlite-journal.ts';

export type Role = 'standby' | 'active';

/**
 * Who may try to lead: in JetStream KV (adapters/nats-lease.ts) or in the shared journal file
 * (adapters/sqlite-lease.ts). Never what keeps two leaders apart: the journal's epoch fence does.
 */
export interface Lease {
  /** Takes the lease if nobody holds it. Resolves true when we hold it now. */
  tryAcquire(epochHint: number): Promise<boolean>;
  /** Keeps it. Resolves false when it is no longer ours. */
  renew(epoch: number): Promise<boolean>;
  /** Gives it up at once (a clean shutdown). */
  release(): Promise<void>;
  /** Why the last attempt failed when the lease was not simply held by another. */
  readonly unavailable: string | undefined;
}

/** What a term runs: the coordinator service (service.ts), started and stopped by the term. */
export interface TermService {
  /** Starts serving; throws if it cannot. Resolves once clients can reach it. */
  start(): Promise<void>;
  stop(): void;
}

export interface LeadershipOptions {
  readonly journal: Pick<SqliteJournal, 'beginTerm' | 'checkTerm'>;
  readonly lease: Lease | undefined;
  readonly instance: string;
  readonly log: Logger;
  readonly now: () => number;
  /** How often a standby tries to take the lease, and the holder renews it. */
  readonly standbyPollMs: number;
  readonly renewMs: number;
  readonly createService: (
    epoch: number,
    onTermOver: (error: FencedError | JournalBusyError) => void,
  ) => TermService;
  /** Told of every change of role; the first call is the moment the process is ready. */
  readonly onRole: (role: Role, epoch: number | undefined) => void;
  /** Without a lease, a fenced coordinator cannot become a standby: it must stop. */
  readonly onFencedWithoutLease: (error: FencedError) => void;
}

export class Leadership {
  readonly #options: LeadershipOptions;
  #stopped = false;
  #service: TermService | undefined;
  #endTerm: (() => void) | undefined;
  #markReady: () => void = () => undefined;
  /** Resolves when the process first knows its role: it is then ready to be relied on. */
  readonly ready: Promise<void>;

  constructor(options: LeadershipOptions) {
    this.#options = options;
    this.ready = new Promise((resolve) => (this.#markReady = resolve));
  }

  #announce(role: Role, epoch: number | undefined): void {
    this.#options.onRole(role, epoch);
    this.#markReady();
  }

  /** Runs terms until stop(); resolves when stopped. Rejects on errors that must stop the process. */
  async run(): Promise<void> {
    let announcedStandby = false;
    /** The lease failure last logged, so that a lasting outage is one line, not one per poll. */
    let reported: string | undefined;
    while (!this.#stopped) {
      const { lease, log } = this.#options;
      if (lease && !(await lease.tryAcquire(0))) {
        if (!announcedStandby) this.#announce('standby', undefined);
        announcedStandby = true;
        const { unavailable } = lease;
        if (unavailable !== undefined && unavailable !== reported) {
          log.warn('lease-unavailable', { error: unavailable });
        } else if (unavailable === undefined && reported !== undefined) {
          log.info('lease-available');
        }
        reported = unavailable;
        await sleep(this.#options.standbyPollMs);
        continue;
      }
      if (reported !== undefined) log.info('lease-available');
      reported = undefined;
      if (this.#isStopped()) break;
      await this.#term();
      announcedStandby = false;
    }
  }

  async #term(): Promise<void> {
    const { journal, instance, log, now, lease } = this.#options;
    let epoch: number;
    try {
      epoch = journal.beginTerm(instance, now());
    } catch (error) {
      if (!(error instanceof JournalBusyError)) throw error;
      log.warn('term-not-started', { reason: error.message });
      await this.#afterBusyJournal();
      return;
    }
    log.info('term-started', { epoch, instance });
    const ended = new Promise<TermEnd>((resolve) => {
      this.#endTerm = () => resolve({ reason: 'stopped' });
      this.#service = this.#options.createService(epoch, (error) => {
        if (error instanceof FencedError && !lease) this.#options.onFencedWithoutLease(error);
        resolve(termEndOf(error));
      });
    });
    this.#startService(epoch);
    const end = await Promise.race([ended, this.#keepLease(epoch, ended)]);
    this.#service?.stop();
    this.#service = undefined;
    log.warn('term-ended', { epoch, reason: end.reason });
    if (end.busy) await this.#afterBusyJournal();
  }

  /**
   * Starts the term's service (a failure to start is thrown from here, and ends the process) and
   * says the process is active once clients can reach the service: a ready line printed before
   * the NATS server had the subscriptions let a test's first request find no responders. The
   * term does not wait for that, so the lease is renewed meanwhile; an announcement that comes
   * after the term ended is not made.
   */
  #startService(epoch: number): void {
    const service = this.#service;
    if (service === undefined) return;
    service.start().then(
      () => {
        if (this.#service === service) this.#announce('active', epoch);
      },
      (error: unknown) => {
        this.#options.log.warn('not-announced', { epoch, error: errorText(error) });
      },
    );
  }

  /**
   * The journal's write lock stayed with another process past the busy timeout: give the lease
   * back (whoever takes it next must then wait for the lock too, but not for the lease's TTL) and
   * wait a standby's poll before trying again.
   */
  async #afterBusyJournal(): Promise<void> {
    await this.#options.lease?.release();
    await sleep(this.#options.standbyPollMs);
  }

  /**
   * Renews the lease until the term ends, checking before each renewal that the journal shows no
   * newer term; resolves with how the term ended if it is over or the lease is lost.
   */
  async #keepLease(epoch: number, ended: Promise<TermEnd>): Promise<TermEnd> {
    const { lease, renewMs, journal } = this.#options;
    if (!lease) return ended;
    let over = false;
    void ended.then(() => (over = true));
    const isOver = (): boolean => over;
    while (!isOver()) {
      await sleep(renewMs);
      if (isOver()) break;
      try {
        journal.checkTerm();
      } catch (error) {
        if (!(error instanceof FencedError)) throw error;
        return termEndOf(error);
      }
      if (!(await lease.renew(epoch))) return { reason: 'lease lost' };
    }
    return ended;
  }

  /** A method, not the field, so the compiler does not assume it unchanged across an await. */
  #isStopped(): boolean {
    return this.#stopped;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#endTerm?.();
    await this.#options.lease?.release();
  }
}

/** Why a term ended; after a busy journal the process gives the lease back before it contends. */
interface TermEnd {
  readonly reason: string;
  readonly busy?: boolean;
}

function termEndOf(error: FencedError | JournalBusyError): TermEnd {
  if (error instanceof FencedError) return { reason: `fenced: ${error.message}` };
  return { reason: `journal busy: ${error.message}`, busy: true };
}
