/**
 * Durable payment intents on the client's side. Before its first attempt, a payment's key and
 * request are written to a local SQLite file; when a definitive answer comes, it is written next to
 * them. After the client process restarts, every intent without an answer is resumed with its
 * original key, so a payment the client lost track of is finished, never started twice.
 */
import { setPragmas, type SqliteDatabase } from '../common/sqlite.ts';
import Database from 'better-sqlite3';
import { readPayment, type Payment } from '../common/protocol.ts';

export interface PendingIntent {
  readonly idempotencyKey: string;
  readonly payment: Payment;
  readonly createdAt: number;
}

export class IntentStore {
  readonly #db: SqliteDatabase;
  readonly #statements;

  constructor(file: string) {
    this.#db = new Database(file);
    setPragmas(this.#db);
    this.#db.exec(`CREATE TABLE IF NOT EXISTS intents (
      idempotency_key TEXT PRIMARY KEY,
      payment TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      answered_at INTEGER,
      answer TEXT
    ) STRICT`);
    this.#statements = {
      record: this.#db.prepare(
        `INSERT INTO intents (idempotency_key, payment, created_at) VALUES (?, ?, ?)
         ON CONFLICT (idempotency_key) DO NOTHING`,
      ),
      answer: this.#db.prepare(
        'UPDATE intents SET answered_at = ?, answer = ? WHERE idempotency_key = ?',
      ),
      pending: this.#db.prepare(
        `SELECT idempotency_key, payment, created_at FROM intents
         WHERE answered_at IS NULL ORDER BY created_at`,
      ),
    };
  }

  /** Durable when it returns (synchronous=FULL): only then may the first attempt go out. */
  record(idempotencyKey: string, payment: Payment, now: number): void {
    this.#statements.record.run(idempotencyKey, JSON.stringify(payment), now);
  }

  answer(idempotencyKey: string, answer: object, now: number): void {
    this.#statements.answer.run(now, JSON.stringify(answer), idempotencyKey);
  }

  pending(): PendingIntent[] {
    const rows = this.#statements.pending.all() as {
      idempotency_key: string;
      payment: string;
      created_at: number;
    }[];
    return rows.map((row) => ({
      idempotencyKey: row.idempotency_key,
      payment: readPayment(JSON.parse(row.payment)),
      createdAt: row.created_at,
    }));
  }

  close(): void {
    this.#db.close();
  }
}
