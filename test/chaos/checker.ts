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
  return { payments, effects, barriers, negativeAccounts };
}

function readBarrier(db: Database.Database): Map<string, BarrierView> {
  const rows = db.prepare('SELECT tx_id, phase, outcome FROM barrier').all() as {
    tx_id: string;
    phase: string;
    outcome: string;
  }[];
  const views = new Map<
    string,
    { prepare: BarrierView['prepare']; commit: boolean; abort: boolean }
  >();
  for (const row of rows) {
    const view = views.get(row.tx_id) ?? { prepare: undefined, commit: false, abort: false };
    if (row.phase === 'prepare') view.prepare = row.outcome as BarrierView['prepare'];
    if (row.phase === 'commit') view.commit = true;
    if (row.phase === 'abort') view.abort = true;
    views.set(row.tx_id, view);
  }
  return views;
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

export interface KeyHistory {
  readonly client: string;
  readonly key: string;
  readonly lines: number[];
  readonly answers: Answer[];
  readonly mismatches: { readonly index: number; readonly fingerprint: string }[];
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
  readonly crashes: { readonly index: number; readonly target: string; readonly log: string }[] =
    [];
  readonly #openFaults = new Map<number, FaultSpan>();

  add(event: HistoryEvent): void {
    if (event.process === 'nemesis') {
      if (event.f === 'unexpected-exit') {
        const { target, log } = event.value;
        this.crashes.push({ index: event.index, target: text(target), log: text(log) });
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
    if (refused === 'key-mismatch') entry.mismatches.push({ index, fingerprint });
    else entry.refusals.push({ index, code: refused === '' ? 'unknown' : refused });
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
}

/** Compares the history with the databases; pure, so a test can feed it doctored facts. */
export function checkHistory(
  history: HistoryIndex,
  snapshot: Snapshot,
  options: HistoryCheckOptions,
): Violation[] {
  const violations: Violation[] = [];
  const byKey = new Map(snapshot.payments.map((row) => [keyOf(row.clientId, row.key), row]));
  for (const [id, entry] of history.keys) {
    violations.push(...checkKey(entry, byKey.get(id), snapshot));
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
  violations.push(...checkBarriers(snapshot), ...checkAccounts(snapshot));
  for (const crash of history.crashes) {
    const lines = crash.log.split('\n');
    const last = lines.findLast((line) => /^\w*Error\b|"fatal"/.test(line)) ?? 'see its log';
    violations.push({
      kind: 'crash',
      message: `${crash.target} died with no fault to account for it: ${last.slice(0, 300)}`,
      lines: [crash.index],
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

function checkKey(entry: KeyHistory, row: PaymentRow | undefined, snapshot: Snapshot): Violation[] {
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
  checkAnswers(entry, row, violation);
  checkRefusals(entry, row, violation);
  const resolved = checkReads(entry, row, violation);
  const outcome = entry.answers[0]?.outcome ?? resolved;
  if (row !== undefined && (outcome === 'committed' || outcome === 'aborted')) {
    const problem = effectProblem(snapshot, row.txId, outcome);
    if (problem !== undefined) {
      violation('reply-truth', `the key's outcome is ${outcome} but ${problem}`, entry.lines);
    }
  }
  return found;
}

type Report = (kind: ViolationKind, message: string, lines: readonly number[]) => void;

function checkAnswers(entry: KeyHistory, row: PaymentRow | undefined, report: Report): void {
  const first = entry.answers[0];
  if (first === undefined) return;
  for (const answer of entry.answers.slice(1)) {
    if (answer.txId !== first.txId || answer.outcome !== first.outcome) {
      report(
        'idempotence',
        `two answers for one key: ${first.outcome} ${first.txId} and ${answer.outcome} ${answer.txId}`,
        [first.index, answer.index],
      );
    }
  }
  if (row === undefined) {
    report(
      'reply-truth',
      `answered ${first.outcome} but the coordinator has no payment for the key`,
      [first.index],
    );
    return;
  }
  for (const answer of entry.answers) {
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

function checkRefusals(entry: KeyHistory, row: PaymentRow | undefined, report: Report): void {
  for (const mismatch of entry.mismatches) {
    if (row === undefined) {
      report('idempotence', 'refused as a key mismatch, but the key names no payment', [
        mismatch.index,
      ]);
    } else if (mismatch.fingerprint === row.fingerprint) {
      report('idempotence', 'the request executed under this key was refused as a mismatch', [
        mismatch.index,
      ]);
    }
  }
  for (const refusal of entry.refusals) {
    report('reply-truth', `a valid request was refused: ${refusal.code}`, [refusal.index]);
  }
}

/** Checks the final reads; returns the key's outcome as they resolved it. */
function checkReads(
  entry: KeyHistory,
  row: PaymentRow | undefined,
  report: Report,
): 'committed' | 'aborted' | 'unknown' | undefined {
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
  for (const read of passes) {
    if (read.state === undefined || read.state === 'preparing') {
      report('liveness', `final read ${read.pass}: ${read.state ?? 'no answer'}`, [read.index]);
      continue;
    }
    if (read.state === 'unknown') {
      if (row !== undefined) {
        report('reply-truth', `final read ${read.pass} says unknown, the journal has ${row.txId}`, [
          read.index,
        ]);
      }
      continue;
    }
    if (row === undefined || read.txId !== row.txId || read.state !== row.state) {
      const journal = row === undefined ? 'nothing' : `${row.state} ${row.txId}`;
      report(
        'reply-truth',
        `final read ${read.pass} says ${read.state} ${read.txId ?? ''}, the journal ${journal}`,
        [read.index],
      );
    }
    const answer = entry.answers[0];
    if (answer !== undefined && (answer.txId !== read.txId || answer.outcome !== read.state)) {
      report(
        'reply-truth',
        `answered ${answer.outcome} ${answer.txId}, read back as ${read.state}`,
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
  const last = passes.at(-1)?.state;
  return last === 'committed' || last === 'aborted' || last === 'unknown' ? last : undefined;
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

function checkBarriers(snapshot: Snapshot): Violation[] {
  const states = new Map(snapshot.payments.map((row) => [row.txId, row.state]));
  const found: Violation[] = [];
  for (const name of participantNames) {
    for (const [txId, view] of snapshot.barriers[name]) {
      const state = states.get(txId) ?? 'unknown';
      const add = (kind: ViolationKind, message: string): void => {
        found.push({ kind, message: `${name}: ${message}`, txId, lines: [] });
      };
      if (view.commit && state !== 'committed')
        add('agreement', `applied COMMIT; the journal says ${state}`);
      if (view.abort && state === 'committed')
        add('agreement', 'applied ABORT; the journal says committed');
      if (view.prepare === 'yes' && !view.commit && !view.abort) {
        add('no-hold-left', `voted YES and was never told the decision (journal: ${state})`);
      }
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
  const database = checkInvariants(input.files, { baseline: input.baseline, settled: true });
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
