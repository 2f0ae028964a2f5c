/**
 * Orders for the throughput benchmark. Every payment pays its own open order (a vendor accepts
 * one payment per order), so the benchmark makes orders ahead of each level, between levels while
 * the services are idle, and builds each order's payment only when it is sent: a million payment
 * objects kept in memory would distort the load generator's own figures.
 *
 * Two payers: `loader` can pay everything; `broke` has a bank account with nothing in it, so the
 * bank votes NO (insufficient funds) after the vendor and the customer voted YES, and both get an
 * ABORT: the variant with 10 % NO votes uses it for every tenth payment.
 */
import type { Payment } from '../common/protocol.ts';
import type { SqliteDatabase } from '../common/sqlite.ts';
import {
  addStock,
  makeBulkOrders,
  seedLoadParties,
  type ParticipantDatabases,
} from '../participants/seed.ts';

export const vendorId = 'acme';
const currency = 'EUR';
const sku = 'pen';
const unitPriceMinor = 100;
/**
 * Orders made per insert (one SQLite transaction): bounds the transient memory of makeBulkOrders
 * and how long the vendor's database is locked against the vendor service.
 */
const chunkOrdersMax = 10_000;

export class OrdersExhaustedError extends Error {
  override readonly name = 'OrdersExhaustedError';
}

/** Seeds both payers, the vendor's account and its stock; orders come later, per level. */
export function seedParties(databases: ParticipantDatabases): void {
  const balanceMinor = 1_000_000_000_000;
  seedLoadParties(databases, { customerId: 'loader', vendorId, currency, balanceMinor });
  seedLoadParties(databases, { customerId: 'broke', vendorId, currency, balanceMinor });
  databases.bank.prepare("UPDATE accounts SET balance_minor = 0 WHERE owner_id = 'broke'").run();
  addStock(databases.vendor, vendorId, sku, 1_000_000_000);
}

/** The open orders of one payer, made in chunks and handed out once each. */
export class OrderSupply {
  readonly #customerId: string;
  /** Order ids are `<customer initial><chunk>-<index>`, e.g. `l3-1234`. */
  readonly #chunkSizes: number[] = [];
  #chunk = 0;
  #index = 0;
  #made = 0;
  #used = 0;

  constructor(customerId: string) {
    this.#customerId = customerId;
  }

  get used(): number {
    return this.#used;
  }

  /** Makes orders until at least `count` are unused. */
  ensure(vendorDb: SqliteDatabase, count: number): void {
    while (this.#made - this.#used < count) {
      const size = Math.min(chunkOrdersMax, count - (this.#made - this.#used));
      makeBulkOrders(vendorDb, {
        customerId: this.#customerId,
        vendorId,
        currency,
        sku,
        unitPriceMinor,
        count: size,
        prefix: this.#prefix(this.#chunkSizes.length),
      });
      this.#chunkSizes.push(size);
      this.#made += size;
    }
  }

  /** The payment of the next unused order; exactly what makeBulkOrders stored for it. */
  next(): Payment {
    while (this.#index >= (this.#chunkSizes[this.#chunk] ?? 0)) {
      if (this.#chunk >= this.#chunkSizes.length) {
        throw new OrdersExhaustedError(`no open orders left for ${this.#customerId}`);
      }
      this.#chunk += 1;
      this.#index = 0;
    }
    const orderId = `${this.#prefix(this.#chunk)}-${this.#index}`;
    this.#index += 1;
    this.#used += 1;
    return {
      payer: this.#customerId,
      payee: vendorId,
      amountMinor: unitPriceMinor,
      currency,
      orderId,
      lines: [{ sku, quantity: 1, unitPriceMinor }],
    };
  }

  #prefix(chunk: number): string {
    return `${this.#customerId.charAt(0)}${chunk}`;
  }
}
