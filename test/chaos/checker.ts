/**
 * The chaos run's checker: the history against the four databases, on top of ops/checker.ts.
 *
 * ops/checker.ts checks the databases among themselves: atomicity per transaction, agreement of
 * every participant with the coordinator's decision, nothing left held once settled, conservation
 * of money. This file adds what only the history can tell (REFERENCE.md § Fault testing):
 *
 * - idempotence: every answer for one key is the same transaction and outcome; the request that
 *   was executed under a key is the one that was answered; a different request under that key is
 *   refused as a mismatch; no payment exists for a key no client used;
 * - reply truth: "committed" means committed at the coordinator and at all three participants
 *   after every restart; "aborted" means no effect anywhere; each final read by key says the same
 *   before and after the last restart;
 * - unknown outcomes: every key whose outcome a client did not learn (`info`) is resolved by the
 *   final reads: decided, or never started;
 * - journal/participant agreement from the barrier rows: a COMMIT applied only where the journal
 *   says committed, an ABORT never where it says committed, nobody left in doubt;
 * - conservation: no account below zero;
 * - liveness: every payment decided and every participant informed within the bound after healing;
 * - crash: no service died on its own (an unhandled error, or an invariant it checks itself, such
 *   as a journal it finds inconsistent). Crashing is the designed answer to a broken invariant, so
 *   in a run whose faults do not corrupt anything, one is a bug even if recovery hid its effects.
 *
 * It is split in two so it can be shown to fail without a broken build: `readSnapshot` reads the
 * databases into plain data, `HistoryIndex` folds the history into per-key facts, and
 * `checkHistory` compares the two without IO. A unit test feeds it doctored facts.
 */
import Database from 'better-sqlite3';
import { ulidTime } from '../../common/ids.ts';
import { participantNames, type ParticipantName } from '../../common/protocol.ts';
import { checkInvariants, type DatabaseFiles, type MoneyBaseline } from '../../ops/checker.ts';
import { eventsAt, forEachEvent, type HistoryEvent } from './history.ts';

export const violationKinds = [
  'conservation',
  'atomicity',
  'idempotence',
  'reply-truth',
  'agreement',
  'no-hold-left',
  'liveness',
  'crash',
  'fault-lost',
] as const;
export type ViolationKind = (typeof violationKinds)[number];

export interface Violation {
  readonly kind: ViolationKind;
  readonly message: string;
  readonly txId?: string;
  readonly key?: string;
  readonly client?: string;
  /** History indexes of the lines that show it. */
  readonly lines: readonly number[];
}

// ---- the databases as plain data ----------------------------------------------------------------

export type Effect = 'committed' | 'open' | 'released';

export interface PaymentRow {
  readonly txId: string;
  readonly clientId: string;
  readonly key: string;
  readonly fingerprint: string;
  readonly state: 'preparing' | 'committed' | 'aborted';
  readonly completed: boolean;
}

export interface BarrierView {
  readonly prepare: 'yes' | 'no' | 'tombstone' | undefined;
  readonly commit: boolean;
  readonly abort: boolean;
}

export interface Snapshot {
  readonly payments: readonly PaymentRow[];
  readonly effects: Readonly<Record<ParticipantName, ReadonlyMap<string, Effect>>>;
  readonly barriers: Readonly<Record<ParticipantName, ReadonlyMap<string, BarrierView>>>;
  /** Accounts whose balance or held amount is below zero, as `account: balance/held`. */
  readonly negativeAccounts: readonly string[];
  /** When it was read (epoch ms): no purge of the run can have come later. */
  readonly takenAt: number;
}

function openReadOnly(file: string): Database.Database {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  return db;
}

const effectQueries: Readonly<Record<ParticipantName, string>> = {
  bank: `SELECT tx_id, CASE state WHEN 'captured' THEN 'committed' WHEN 'held' THEN 'open'
         ELSE 'released' END AS effect FROM holds`,
  vendor: `SELECT tx_id, CASE min(state) WHEN 'consumed' THEN 'committed'
           WHEN 'reserved' THEN 'open' ELSE 'released' END AS effect
           FROM reservations GROUP BY tx_id`,
  customer: `SELECT tx_id, CASE status WHEN 'completed' THEN 'committed' WHEN 'pending' THEN 'open'
             ELSE 'released' END AS effect FROM purchases`,
};

export function readSnapshot(files: DatabaseFiles): Snapshot {
  const takenAt = Date.now();
  const coordinator = openReadOnly(files.coordinator);
  const payments = (
    coordinator
      .prepare(
        `SELECT tx_id, client_id, idempotency_key, fingerprint, state, completed_at
         FROM payments`,
      )
      .all() as {
      tx_id: string;
      client_id: string;
      idempotency_key: string;
      fingerprint: string;
      state: PaymentRow['state'];
      completed_at: number | null;
    }[]
  ).map((row) => ({
    txId: row.tx_id,
    clientId: row.client_id,
    key: row.idempotency_key,
    fingerprint: row.fingerprint,
    state: row.state,
    completed: row.completed_at !== null,
  }));
  coordinator.close();
  const effects = {} as Record<ParticipantName, Map<string, Effect>>;
  const barriers = {} as Record<ParticipantName, Map<string, BarrierView>>;
  let negativeAccounts: string[] = [];
  for (const name of participantNames) {
    const db = openReadOnly(files[name]);
    try {
      const rows = db.prepare(effectQueries[name]).all() as { tx_id: string; effect: Effect }[];
      effects[name] = new Map(rows.map((row) => [row.tx_id, row.effect]));
      barriers[name] = readBarrier(db);
      if (name === 'bank') negativeAccounts = readNegativeAccounts(db);
    } finally {
      db.close();
    }
  }
  return { payments, effects, barriers, negativeAccounts, takenAt };
}

function readBarrier(db: Database.Database): Map<string, BarrierView> {
  const rows = db.prepare('SELECT tx_id, vote, decision FROM barrier').all() as {
    tx_id: string;
    vote: BarrierView['prepare'];
    decision: 'commit' | 'abort' | null;
  }[];
  return new Map(
    rows.map((row) => [
      row.tx_id,
      { prepare: row.vote, commit: row.decision === 'commit', abort: row.decision === 'abort' },
    ]),
  );
}

function readNegativeAccounts(bank: Database.Database): string[] {
  const rows = bank
    .prepare(
      `SELECT account_id, balance_minor, held_minor FROM accounts
       WHERE balance_minor < 0 OR held_minor < 0`,
    )
    .all() as { account_id: string; balance_minor: number; held_minor: number }[];
  return rows.map((row) => `${row.account_id}: ${row.balance_minor}/${row.held_minor}`);
}

// ---- the history folded per key ----------------------------------------------------------------

export interface Answer {
  readonly index: number;
  readonly txId: string;
  readonly outcome: 'committed' | 'aborted';
  readonly fingerprint: string;
}

export interface Read {
  readonly index: number;
  readonly pass: number;
  /** undefined when the read failed (no answer within its bound). */
  readonly state: 'unknown' | 'preparing' | 'committed' | 'aborted' | undefined;
  readonly txId: string | null;
}

export interface Mismatch {
  readonly index: number;
  readonly fingerprint: string;
  /** When the request was sent (epoch ms); +Infinity when the history does not say. */
  readonly sentAt: number;
}

export interface KeyHistory {
  readonly client: string;
  readonly key: string;
  readonly lines: number[];
  readonly answers: Answer[];
  readonly mismatches: Mismatch[];
  readonly refusals: { readonly index: number; readonly code: string }[];
  readonly unknown: number[];
  readonly reads: Read[];
  firstTime: number;
  lastTime: number;
}

export interface FaultSpan {
  readonly index: number;
  readonly kind: string;
  readonly target: string;
  readonly start: number;
  end: number;
}

const keyOf = (client: string, key: string): string => `${client}\u0000${key}`;

/** Per-key facts of a history, built event by event. */
export class HistoryIndex {
  readonly keys = new Map<string, KeyHistory>();
  readonly faults: FaultSpan[] = [];
  /** Services that died with no fault to account for them (the nemesis's supervisor saw it). */
  readonly crashes: {
    readonly index: number;
    readonly target: string;
    /** How it exited (`exit 1`, `signal SIGKILL`), where the history says. */
    readonly exit: string;
    readonly log: string;
  }[] = [];
  /** Pauses whose process was no longer stopped when they ended (the nemesis checks). */
  readonly lostFaults: {
    readonly index: number;
    readonly kind: string;
    readonly target: string;
  }[] = [];
  readonly #openFaults = new Map<number, FaultSpan>();

  add(event: HistoryEvent): void {
    if (event.process === 'nemesis') {
      if (event.type === 'info' && event.value['stoppedToTheEnd'] === false) {
        const target = text(event.value['target']);
        this.lostFaults.push({ index: event.index, kind: event.f, target });
      }
      if (event.f === 'unexpected-exit') {
        const { target, exit, log } = event.value;
        this.crashes.push({
          index: event.index,
          target: text(target),
          exit: text(exit),
          log: text(log),
        });
      } else {
        this.#addFault(event);
      }
      return;
    }
    const key = text(event.value['key']);
    const client = text(event.value['client']);
    if (key === '' || client === '') return;
    const id = keyOf(client, key);
    let entry = this.keys.get(id);
    if (entry === undefined) {
      entry = {
        client,
        key,
        lines: [],
        answers: [],
        mismatches: [],
        refusals: [],
        unknown: [],
        reads: [],
        firstTime: event.time,
        lastTime: event.time,
      };
      this.keys.set(id, entry);
    }
    entry.lines.push(event.index);
    entry.lastTime = event.time;
    if (event.f === 'read') this.#addRead(entry, event);
    else if (event.f === 'pay') this.#addPay(entry, event);
  }

  #addPay(entry: KeyHistory, event: HistoryEvent): void {
    const { value, index } = event;
    const fingerprint = text(value['fingerprint']);
    if (event.type === 'info') entry.unknown.push(index);
    if (event.type !== 'ok' && event.type !== 'fail') return;
    const outcome = value['outcome'];
    if (outcome === 'committed' || outcome === 'aborted') {
      entry.answers.push({ index, txId: text(value['txId']), outcome, fingerprint });
      return;
    }
    const refused = text(value['refused']);
    if (refused === 'key-mismatch') {
      const sentAt = Number(value['sentAt']);
      entry.mismatches.push({
        index,
        fingerprint,
        sentAt: Number.isFinite(sentAt) ? sentAt : Number.POSITIVE_INFINITY,
      });
    } else entry.refusals.push({ index, code: refused === '' ? 'unknown' : refused });
  }

  #addRead(entry: KeyHistory, event: HistoryEvent): void {
    if (event.type === 'invoke') return;
    const pass = Number(event.value['pass'] ?? 1);
    const state = event.value['state'];
    const txId = event.value['txId'];
    const known = ['unknown', 'preparing', 'committed', 'aborted'] as const;
    const read: Read = {
      index: event.index,
      pass,
      state: event.type === 'ok' ? known.find((candidate) => candidate === state) : undefined,
      txId: typeof txId === 'string' ? txId : null,
    };
    entry.reads.push(read);
  }

  #addFault(event: HistoryEvent): void {
    const id = Number(event.value['fault']);
    if (!Number.isSafeInteger(id)) return;
    const phase = event.value['phase'];
    if (phase === 'start' && event.type === 'invoke') {
      const span: FaultSpan = {
        index: event.index,
        kind: event.f,
        target: text(event.value['target']),
        start: event.time,
        end: Number.POSITIVE_INFINITY,
      };
      this.faults.push(span);
      this.#openFaults.set(id, span);
    } else if (phase === 'stop' && event.type === 'info') {
      const span = this.#openFaults.get(id);
      if (span) span.end = event.time;
      this.#openFaults.delete(id);
    }
  }

  static async fromFile(file: string): Promise<HistoryIndex> {
    const index = new HistoryIndex();
    await forEachEvent(file, (event) => index.add(event));
    return index;
  }
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

// ---- the checks ---------------------------------------------------------------------------------

export interface HistoryCheckOptions {
  /** The system was quiet (nothing held, every payment complete) within the liveness bound. */
  readonly settledInTime: boolean;
  readonly boundS: number;
  /**
   * The coordinators' key retention when the run set one. The coordinator may then forget a
   * payment completed longer ago than that, and a key whose payment it forgot names a new one.
   */
  readonly keyRetentionMs?: number | undefined;
}

/**
 * What the key retention allows. A payment completes after it begins, and its transaction id (a
 * ULID) carries when it began, so "began more than the retention ago" is a condition every payment
 * the coordinator may rightly have forgotten meets. It is weaker than the coordinator's own rule
 * (completed more than the retention ago), never stronger, so the checker never blames a purge the
 * rule allowed; what it still catches is a payment forgotten, or a key reused, within the
 * retention of the payment's start. Without a retention, nothing may be forgotten.
 */
export class Retention {
  readonly ms: number | undefined;
  readonly #journal: ReadonlySet<string>;
  readonly #takenAt: number;

  constructor(snapshot: Snapshot, ms: number | undefined) {
    this.ms = ms;
    this.#journal = new Set(snapshot.payments.map((row) => row.txId));
    this.#takenAt = snapshot.takenAt;
  }

  /** The key of a payment begun this long ago may have expired by the time of the snapshot. */
  mayHaveExpired(txId: string): boolean {
    return this.ms !== undefined && beganAt(txId) + this.ms <= this.#takenAt;
  }

  /** Absent from the journal, and old enough that the purge or a new payment may have removed it. */
  mayBeForgotten(txId: string): boolean {
    return !this.#journal.has(txId) && this.mayHaveExpired(txId);
  }
}

/** When a transaction began (epoch ms), from its ULID; NaN for an id that is not one. */
function beganAt(txId: string): number {
  try {
    return ulidTime(txId);
  } catch {
    return Number.NaN;
  }
}

/** Compares the history with the databases; pure, so a test can feed it doctored facts. */
export function checkHistory(
  history: HistoryIndex,
  snapshot: Snapshot,
  options: HistoryCheckOptions,
): Violation[] {
  const violations: Violation[] = [];
  const retention = new Retention(snapshot, options.keyRetentionMs);
  const byKey = new Map(snapshot.payments.map((row) => [keyOf(row.clientId, row.key), row]));
  for (const [id, entry] of history.keys) {
    violations.push(...checkKey(entry, byKey.get(id), snapshot, retention));
  }
  for (const row of snapshot.payments) {
    if (!history.keys.has(keyOf(row.clientId, row.key))) {
      violations.push({
        kind: 'idempotence',
        message: `a payment exists for key ${row.key} of ${row.clientId}, which no client used`,
        txId: row.txId,
        key: row.key,
        client: row.clientId,
        lines: [],
      });
    }
  }
  violations.push(...checkBarriers(snapshot, retention), ...checkAccounts(snapshot));
  for (const crash of history.crashes) {
    const lines = crash.log.split('\n');
    const last = lines.findLast((line) => /^\w*Error\b|"fatal"/.test(line)) ?? 'see its log';
    violations.push({
      kind: 'crash',
      message:
        `${crash.target} died with no fault to account for it` +
        `${crash.exit === '' ? '' : ` (${crash.exit})`}: ${last.slice(0, 300)}`,
      lines: [crash.index],
    });
  }
  for (const lost of history.lostFaults) {
    violations.push({
      kind: 'fault-lost',
      message:
        `${lost.kind} of ${lost.target}: the process was no longer stopped when the pause ` +
        'ended, so the run did not inject the fault its history records',
      lines: [lost.index],
    });
  }
  if (!options.settledInTime) {
    violations.push({
      kind: 'liveness',
      message: `not every payment was decided and every participant informed within ${options.boundS} s of healing`,
      lines: [],
    });
  }
  return violations;
}

function checkKey(
  entry: KeyHistory,
  row: PaymentRow | undefined,
  snapshot: Snapshot,
  retention: Retention,
): Violation[] {
  const found: Violation[] = [];
  const violation = (kind: ViolationKind, message: string, lines: readonly number[]): void => {
    const txId = row?.txId;
    found.push({
      kind,
      message,
      key: entry.key,
      client: entry.client,
      lines,
      ...(txId === undefined ? {} : { txId }),
    });
  };
  checkAnswers(entry, row, retention, violation);
  checkRefusals(entry, row, retention, violation);
  const resolved = checkReads(entry, row, retention, violation);
  // Every transaction the key was answered with, or read back as, shows its outcome everywhere.
  const outcomes = new Map<string, 'committed' | 'aborted'>();
  for (const answer of entry.answers) outcomes.set(answer.txId, answer.outcome);
  if (entry.answers.length === 0 && resolved !== undefined && resolved.txId !== null) {
    if (resolved.state === 'committed' || resolved.state === 'aborted') {
      outcomes.set(resolved.txId, resolved.state);
    }
  }
  for (const [txId, outcome] of outcomes) {
    const problem = effectProblem(snapshot, txId, outcome);
    if (problem !== undefined) {
      violation('reply-truth', `${txId} was ${outcome} but ${problem}`, entry.lines);
    }
  }
  return found;
}

type Report = (kind: ViolationKind, message: string, lines: readonly number[]) => void;

function checkAnswers(
  entry: KeyHistory,
  row: PaymentRow | undefined,
  retention: Retention,
  report: Report,
): void {
  const first = entry.answers[0];
  if (first === undefined) return;
  if (retention.ms === undefined) {
    for (const answer of entry.answers.slice(1)) {
      if (answer.txId !== first.txId || answer.outcome !== first.outcome) {
        report(
          'idempotence',
          `two answers for one key: ${first.outcome} ${first.txId} and ${answer.outcome} ${answer.txId}`,
          [first.index, answer.index],
        );
      }
    }
  } else {
    checkKeyReuse(entry, row, retention.ms, report);
  }
  for (const answer of entry.answers) {
    // An earlier payment of the key, expired and forgotten since; its answers were compared with
    // each other and with the key's later payments above.
    if (answer.txId !== row?.txId && retention.mayBeForgotten(answer.txId)) continue;
    if (row === undefined) {
      report(
        'reply-truth',
        `answered ${answer.outcome} ${answer.txId} but the coordinator has no payment for the key`,
        [answer.index],
      );
      continue;
    }
    if (answer.txId !== row.txId) {
      report('idempotence', `answered with ${answer.txId}, the key's payment is ${row.txId}`, [
        answer.index,
      ]);
    }
    if (answer.fingerprint !== row.fingerprint) {
      report(
        'idempotence',
        `a request that was not executed got an outcome: ${answer.fingerprint} answered as ${row.fingerprint}`,
        [answer.index],
      );
    }
    if (row.state !== 'preparing' && answer.outcome !== row.state) {
      report('reply-truth', `answered ${answer.outcome} but the coordinator says ${row.state}`, [
        answer.index,
      ]);
    }
  }
}

/**
 * With a key retention, one key may name several payments over a run, one after another: every
 * answer naming one payment agrees with the others, and each payment of the key began more than
 * the retention after the one before it (which had to complete, and then expire, first).
 */
function checkKeyReuse(
  entry: KeyHistory,
  row: PaymentRow | undefined,
  retentionMs: number,
  report: Report,
): void {
  const byTx = new Map<string, Answer>();
  for (const answer of entry.answers) {
    const earlier = byTx.get(answer.txId);
    if (earlier === undefined) {
      byTx.set(answer.txId, answer);
    } else if (earlier.outcome !== answer.outcome || earlier.fingerprint !== answer.fingerprint) {
      report(
        'idempotence',
        `two answers for ${answer.txId}: ${earlier.outcome} for ${earlier.fingerprint}, ` +
          `${answer.outcome} for ${answer.fingerprint}`,
        [earlier.index, answer.index],
      );
    }
  }
  const txIds = new Set([...byTx.keys(), ...entry.reads.flatMap((read) => read.txId ?? [])]);
  if (row !== undefined) txIds.add(row.txId);
  const ordered = [...txIds].sort();
  for (let index = 1; index < ordered.length; index += 1) {
    const [before, after] = [ordered[index - 1] ?? '', ordered[index] ?? ''];
    const gapMs = beganAt(after) - beganAt(before);
    if (!(gapMs > retentionMs)) {
      const lines = [byTx.get(before)?.index, byTx.get(after)?.index].filter(
        (line): line is number => line !== undefined,
      );
      report(
        'idempotence',
        `the key named ${before} and then ${after}, begun ${gapMs} ms later: within the key ` +
          `retention of ${retentionMs} ms`,
        lines,
      );
    }
  }
}

function checkRefusals(
  entry: KeyHistory,
  row: PaymentRow | undefined,
  retention: Retention,
  report: Report,
): void {
  for (const mismatch of entry.mismatches) {
    if (row === undefined) {
      // With a retention, the payment it conflicted with may have expired and been purged since.
      if (retention.ms === undefined) {
        report('idempotence', 'refused as a key mismatch, but the key names no payment', [
          mismatch.index,
        ]);
      }
    } else if (
      mismatch.fingerprint === row.fingerprint &&
      // With a retention, the key's payment may be a later one that this very request made after
      // the one it conflicted with expired; it is wrong only if it existed when this was sent.
      (retention.ms === undefined || beganAt(row.txId) < mismatch.sentAt)
    ) {
      report('idempotence', 'the request executed under this key was refused as a mismatch', [
        mismatch.index,
      ]);
    }
  }
  for (const refusal of entry.refusals) {
    report('reply-truth', `a valid request was refused: ${refusal.code}`, [refusal.index]);
  }
}

/** Checks the final reads; returns the last, which says how they resolved the key. */
function checkReads(
  entry: KeyHistory,
  row: PaymentRow | undefined,
  retention: Retention,
  report: Report,
): Read | undefined {
  const lastByPass = new Map<number, Read>();
  for (const read of entry.reads) lastByPass.set(read.pass, read);
  const passes = [...lastByPass.values()];
  const first = passes[0];
  if (first === undefined) {
    if (entry.unknown.length > 0) {
      report('liveness', 'an unknown outcome was never read back by key', entry.unknown);
    }
    return undefined;
  }
  // The answer the reads must agree with: the key's only one, or with a retention its newest.
  const answer =
    retention.ms === undefined
      ? entry.answers[0]
      : entry.answers.reduce<Answer | undefined>(
          (newest, next) => (newest === undefined || next.txId > newest.txId ? next : newest),
          undefined,
        );
  for (const read of passes) {
    if (read.state === undefined || read.state === 'preparing') {
      report('liveness', `final read ${read.pass}: ${read.state ?? 'no answer'}`, [read.index]);
      continue;
    }
    if (read.state === 'unknown') {
      // A lookup by key skips a payment whose key expired, before the purge removes it.
      if (row !== undefined && !retention.mayHaveExpired(row.txId)) {
        report('reply-truth', `final read ${read.pass} says unknown, the journal has ${row.txId}`, [
          read.index,
        ]);
      }
      continue;
    }
    const purgedSince =
      row === undefined && read.txId !== null && retention.mayBeForgotten(read.txId);
    if (!purgedSince && (row === undefined || read.txId !== row.txId || read.state !== row.state)) {
      const journal = row === undefined ? 'nothing' : `${row.state} ${row.txId}`;
      report(
        'reply-truth',
        `final read ${read.pass} says ${read.state} ${read.txId ?? ''}, the journal ${journal}`,
        [read.index],
      );
    }
    // With a retention, the key may name a newer payment than any the client heard of.
    const newer =
      retention.ms !== undefined &&
      answer !== undefined &&
      read.txId !== null &&
      answer.txId < read.txId;
    if (
      answer !== undefined &&
      !newer &&
      (answer.txId !== read.txId || answer.outcome !== read.state)
    ) {
      report(
        'reply-truth',
        `answered ${answer.outcome} ${answer.txId}, read back as ${read.state} ${read.txId ?? ''}`,
        [answer.index, read.index],
      );
    }
    if (read !== first && (read.state !== first.state || read.txId !== first.txId)) {
      report(
        'reply-truth',
        `the outcome changed across the last restart: ${first.state} to ${read.state}`,
        [first.index, read.index],
      );
    }
  }
  return passes.at(-1);
}

/** What is wrong at the participants for an outcome of a transaction, or undefined. */
function effectProblem(
  snapshot: Snapshot,
  txId: string,
  outcome: 'committed' | 'aborted',
): string | undefined {
  const seen = participantNames.map((name) => [name, snapshot.effects[name].get(txId)] as const);
  const summary = seen.map(([name, effect]) => `${name}=${effect ?? 'none'}`).join(' ');
  if (outcome === 'committed' && seen.some(([, effect]) => effect !== 'committed')) {
    return `not committed everywhere (${summary})`;
  }
  if (
    outcome === 'aborted' &&
    seen.some(([, effect]) => effect === 'committed' || effect === 'open')
  ) {
    return `it has effects (${summary})`;
  }
  return undefined;
}

function checkBarriers(snapshot: Snapshot, retention: Retention): Violation[] {
  const states = new Map(snapshot.payments.map((row) => [row.txId, row.state]));
  const found: Violation[] = [];
  /** Participants that applied each decision of a transaction the coordinator forgot. */
  const forgotten = new Map<string, { commit: ParticipantName[]; abort: ParticipantName[] }>();
  for (const name of participantNames) {
    for (const [txId, view] of snapshot.barriers[name]) {
      const state = states.get(txId) ?? 'unknown';
      const add = (kind: ViolationKind, message: string): void => {
        found.push({ kind, message: `${name}: ${message}`, txId, lines: [] });
      };
      if (state === 'unknown' && retention.mayBeForgotten(txId)) {
        // Only the participants are left to agree with each other.
        const applied = forgotten.get(txId) ?? { commit: [], abort: [] };
        if (view.commit) applied.commit.push(name);
        if (view.abort) applied.abort.push(name);
        forgotten.set(txId, applied);
      } else {
        if (view.commit && state !== 'committed')
          add('agreement', `applied COMMIT; the journal says ${state}`);
        if (view.abort && state === 'committed')
          add('agreement', 'applied ABORT; the journal says committed');
      }
      if (view.prepare === 'yes' && !view.commit && !view.abort) {
        add('no-hold-left', `voted YES and was never told the decision (journal: ${state})`);
      }
    }
  }
  for (const [txId, applied] of forgotten) {
    if (applied.commit.length > 0 && applied.abort.length > 0) {
      found.push({
        kind: 'atomicity',
        message: `forgotten by the coordinator; COMMIT applied at ${applied.commit.join(', ')}, ABORT at ${applied.abort.join(', ')}`,
        txId,
        lines: [],
      });
    }
  }
  return found;
}

function checkAccounts(snapshot: Snapshot): Violation[] {
  return snapshot.negativeAccounts.map((account) => ({
    kind: 'conservation' as const,
    message: `account below zero: ${account}`,
    lines: [],
  }));
}

/** Sorts ops/checker's lines into the kinds above, with the transaction they name. */
export function classifyDatabaseViolation(line: string): Violation {
  const txId = /^tx (\S+):/.exec(line)?.[1];
  let kind: ViolationKind = 'agreement';
  if (/money not conserved|held .* but open holds/.test(line)) kind = 'conservation';
  else if (/not applied everywhere|committed only at/.test(line)) kind = 'atomicity';
  else if (/still held|after settling$/.test(line)) kind = 'no-hold-left';
  else if (/undecided at the coordinator/.test(line)) kind = 'liveness';
  return { kind, message: line, lines: [], ...(txId === undefined ? {} : { txId }) };
}

export interface RunCheckInput {
  readonly historyFile: string;
  readonly files: DatabaseFiles;
  readonly baseline: MoneyBaseline;
  readonly settledInTime: boolean;
  readonly boundS: number;
  /** The coordinators' key retention when the run set one (HistoryCheckOptions). */
  readonly keyRetentionMs?: number | undefined;
}

export interface RunCheckResult {
  readonly violations: readonly Violation[];
  readonly history: HistoryIndex;
  readonly snapshot: Snapshot;
}

/** Every check of a finished run: the databases among themselves, then against the history. */
export async function checkRun(input: RunCheckInput): Promise<RunCheckResult> {
  const history = await HistoryIndex.fromFile(input.historyFile);
  const snapshot = readSnapshot(input.files);
  // The payments the participants hold business rows for that the coordinator may have forgotten:
  // one rule for the database checks and the history's, over the snapshot already read.
  const retention = new Retention(snapshot, input.keyRetentionMs);
  const forgotten = new Set(
    participantNames
      .flatMap((name) => [...snapshot.effects[name].keys()])
      .filter((txId) => retention.mayBeForgotten(txId)),
  );
  const database = checkInvariants(input.files, {
    baseline: input.baseline,
    settled: true,
    forgotten,
  });
  const txKeys = new Map(snapshot.payments.map((row) => [row.txId, row]));
  const violations = [
    ...database.map(classifyDatabaseViolation).map((violation) => {
      const row = violation.txId === undefined ? undefined : txKeys.get(violation.txId);
      const entry = row && history.keys.get(keyOf(row.clientId, row.key));
      if (row === undefined) return violation;
      return { ...violation, key: row.key, client: row.clientId, lines: entry?.lines ?? [] };
    }),
    ...checkHistory(history, snapshot, input),
  ];
  return { violations, history, snapshot };
}

const linesPerViolationMax = 16;
const faultsPerViolationMax = 6;

/** Each violation with its transaction, key, history lines and the faults under way meanwhile. */
export async function formatViolations(
  violations: readonly Violation[],
  history: HistoryIndex,
  historyFile: string,
  violationsMax = 50,
): Promise<string> {
  const shown = violations.slice(0, violationsMax);
  const wanted = new Set<number>();
  const faultsOf = new Map<Violation, FaultSpan[]>();
  const linesOf = new Map<Violation, number[]>();
  for (const violation of shown) {
    const entry =
      violation.key === undefined || violation.client === undefined
        ? undefined
        : history.keys.get(keyOf(violation.client, violation.key));
    const lines = [...new Set([...violation.lines, ...(entry?.lines ?? [])])]
      .slice(0, linesPerViolationMax)
      .sort((a, b) => a - b);
    linesOf.set(violation, lines);
    for (const index of lines) wanted.add(index);
    const faults = entry
      ? history.faults
          .filter((span) => span.start <= entry.lastTime && span.end >= entry.firstTime)
          .slice(0, faultsPerViolationMax)
      : [];
    for (const span of faults) wanted.add(span.index);
    faultsOf.set(violation, faults);
  }
  const events = await eventsAt(historyFile, wanted);
  const blocks = shown.map((violation) => {
    const head = [
      `VIOLATION ${violation.kind}: ${violation.message}`,
      `  transaction ${violation.txId ?? '-'}  key ${violation.key ?? '-'}  client ${violation.client ?? '-'}`,
    ];
    const lines = (linesOf.get(violation) ?? [])
      .map((index) => events.get(index))
      .filter((event): event is HistoryEvent => event !== undefined)
      .map((event) => `    ${JSON.stringify(event)}`);
    const faults = (faultsOf.get(violation) ?? [])
      .map((span) => events.get(span.index))
      .filter((event): event is HistoryEvent => event !== undefined)
      .map((event) => `    ${JSON.stringify(event)}`);
    return [
      ...head,
      ...(lines.length > 0 ? ['  history:', ...lines] : []),
      ...(faults.length > 0 ? ['  faults under way:', ...faults] : []),
    ].join('\n');
  });
  const more = violations.length - shown.length;
  if (more > 0) blocks.push(`… and ${more} more violations`);
  return blocks.join('\n\n');
}
