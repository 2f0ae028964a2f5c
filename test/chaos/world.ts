/**
 * The chaos run's world: customers, accounts, stock and open orders, chosen so that every
 * participant refuses some payments while most commit.
 *
 * - steady: three customers with ample money and limits buy pens (plenty of stock): they commit.
 * - poor: a customer whose bank balance covers only a few pens: the bank refuses the rest.
 * - capped: a customer whose spending limit covers only a few pens: the customer service refuses.
 * - scarce: a steady customer buys lamps, of which there are only a few: the vendor refuses.
 *
 * Every order exists at the vendor before the run (an order is what a payment pays), and each is
 * handed to one fresh idempotency key. When a class runs out, or now and then on purpose, a fresh
 * key pays an order that was already used: the vendor must refuse a second payment of a paid order.
 */
import type { Payment } from '../../common/protocol.ts';
import {
  accountIdFor,
  addStock,
  makeBulkOrders,
  seedLoadParties,
  type ParticipantDatabases,
} from '../../participants/seed.ts';
import type { Rng } from './random.ts';

export const paymentClasses = ['steady', 'poor', 'capped', 'scarce'] as const;
export type PaymentClass = (typeof paymentClasses)[number];

export const vendorId = 'chaos-shop';
const currency = 'EUR';
const steadyCustomers = ['chaos-ann', 'chaos-ben', 'chaos-cat'] as const;
const penPriceMinor = 100;
const lampPriceMinor = 900;
/** The poor customer's balance and the capped customer's limit: a few pens' worth each. */
const fewPensMinor = 2_500;
const lampStock = 20;
/** Enough that the steady customers never run short whatever the run's length. */
const steadyBalanceMinor = 100_000_000_000;

/** Share of fresh payments per class. */
const classWeights: Readonly<Record<PaymentClass, number>> = {
  steady: 0.7,
  poor: 0.1,
  capped: 0.1,
  scarce: 0.1,
};

/** Payments per second the pools are sized for; past it, orders are paid a second time. */
const plannedRatePerS = 200;
const ordersPerClassMin = 200;

export interface WorldPlan {
  readonly ordersPerClass: Readonly<Record<PaymentClass, number>>;
}

/**
 * Orders are made for at most this much of a run: seeding takes a few seconds per hour's worth.
 * A longer run pays orders a second time once they run out, which the vendor refuses.
 */
const plannedDurationSMax = 7_200;

export function planWorld(durationS: number): WorldPlan {
  const seconds = Math.min(durationS, plannedDurationSMax);
  const count = (cls: PaymentClass): number =>
    Math.ceil(seconds * plannedRatePerS * classWeights[cls]) + ordersPerClassMin;
  return {
    ordersPerClass: {
      steady: count('steady'),
      poor: count('poor'),
      capped: count('capped'),
      scarce: count('scarce'),
    },
  };
}

/** A run of orders `<prefix>-0` … `<prefix>-<count - 1>`, one line each, all alike. */
export interface OrderSeries {
  readonly prefix: string;
  readonly customerId: string;
  readonly sku: string;
  readonly unitPriceMinor: number;
  readonly count: number;
}

/** The orders of one class: its series, taken in turn (index i is order i / n of series i % n). */
export type OrderBook = Readonly<Record<PaymentClass, readonly OrderSeries[]>>;

/** Fills the participants' databases; returns where the orders of each class are. */
export function seedChaosWorld(dbs: ParticipantDatabases, plan: WorldPlan): OrderBook {
  const party = (customerId: string, balanceMinor: number): void => {
    seedLoadParties(dbs, { customerId, vendorId, currency, balanceMinor });
  };
  for (const customer of steadyCustomers) party(customer, steadyBalanceMinor);
  party('chaos-poor', steadyBalanceMinor);
  party('chaos-capped', steadyBalanceMinor);
  dbs.bank
    .prepare('UPDATE accounts SET balance_minor = ? WHERE account_id = ?')
    .run(fewPensMinor, accountIdFor('chaos-poor', currency));
  dbs.customer
    .prepare('UPDATE customers SET spending_limit_minor = ? WHERE customer_id = ?')
    .run(fewPensMinor, 'chaos-capped');
  const { ordersPerClass } = plan;
  const pens = ordersPerClass.steady + ordersPerClass.poor + ordersPerClass.capped;
  addStock(dbs.vendor, vendorId, 'pen', pens);
  addStock(dbs.vendor, vendorId, 'lamp', lampStock);
  const series = (
    customerId: string,
    sku: string,
    unitPriceMinor: number,
    count: number,
    prefix: string,
  ): OrderSeries => {
    // The payments it returns are not kept: OrderPool rebuilds each one when it is needed.
    makeBulkOrders(dbs.vendor, {
      customerId,
      vendorId,
      currency,
      sku,
      unitPriceMinor,
      count,
      prefix,
    });
    return { prefix, customerId, sku, unitPriceMinor, count };
  };
  const perSteady = Math.ceil(ordersPerClass.steady / steadyCustomers.length);
  return {
    steady: steadyCustomers.map((customer) =>
      series(customer, 'pen', penPriceMinor, perSteady, `steady-${customer}`),
    ),
    poor: [series('chaos-poor', 'pen', penPriceMinor, ordersPerClass.poor, 'poor')],
    capped: [series('chaos-capped', 'pen', penPriceMinor, ordersPerClass.capped, 'capped')],
    scarce: [series('chaos-ann', 'lamp', lampPriceMinor, ordersPerClass.scarce, 'scarce')],
  };
}

/** The payment that pays order `index` of a series exactly, as makeBulkOrders made it. */
export function paymentOfSeries(series: OrderSeries, index: number): Payment {
  return {
    payer: series.customerId,
    payee: vendorId,
    amountMinor: series.unitPriceMinor,
    currency,
    orderId: `${series.prefix}-${index}`,
    lines: [{ sku: series.sku, quantity: 1, unitPriceMinor: series.unitPriceMinor }],
  };
}

/** Hands out each order once; then, or now and then on purpose, an order already handed out. */
export class OrderPool {
  readonly #book: OrderBook;
  readonly #next: Record<PaymentClass, number> = { steady: 0, poor: 0, capped: 0, scarce: 0 };

  constructor(book: OrderBook) {
    this.#book = book;
  }

  /** A payment for a fresh key, and whether its order was handed out before. */
  take(rng: Rng, payAgainProbability = 0.03): { payment: Payment; payAgain: boolean } {
    const roll = rng.next();
    let cumulative = 0;
    let cls: PaymentClass = 'steady';
    for (const candidate of paymentClasses) {
      cumulative += classWeights[candidate];
      if (roll < cumulative) {
        cls = candidate;
        break;
      }
    }
    return this.takeFrom(cls, rng, payAgainProbability);
  }

  takeFrom(
    cls: PaymentClass,
    rng: Rng,
    payAgainProbability = 0,
  ): { payment: Payment; payAgain: boolean } {
    const series = this.#book[cls];
    const size = series.reduce((total, entry) => total + entry.count, 0);
    const next = this.#next[cls];
    const used = Math.min(next, size);
    const fresh = next < size && !(used > 0 && rng.chance(payAgainProbability));
    if (fresh) this.#next[cls] = next + 1;
    const index = fresh ? next : rng.int(0, Math.max(0, used - 1));
    const entry = series[index % series.length];
    if (entry === undefined) throw new RangeError(`no orders of class ${cls}`);
    return {
      payment: paymentOfSeries(entry, Math.floor(index / series.length)),
      payAgain: !fresh,
    };
  }
}

/** The same key with a different request: one more cent per pen, so the fingerprint differs. */
export function changedPayment(payment: Payment): Payment {
  const lines = payment.lines.map((line) => ({
    ...line,
    unitPriceMinor: line.unitPriceMinor + 1,
  }));
  const amountMinor = lines.reduce((sum, line) => sum + line.quantity * line.unitPriceMinor, 0);
  return { ...payment, lines, amountMinor };
}
