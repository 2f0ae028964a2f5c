-- What a customer has pending, kept as a running total like the bank's `held_minor`: prepare
-- checked the spending limit by summing the customer's pending purchases, which costs one row per
-- payment in doubt, hundreds for a busy payer. Prepare now adds to it, commit and abort take the
-- purchase back out, all in the purchase's own transaction. The checker verifies it against the
-- pending purchases (ops/checker.ts).
ALTER TABLE customers ADD COLUMN pending_minor INTEGER NOT NULL DEFAULT 0 CHECK (pending_minor >= 0);

UPDATE customers SET pending_minor = (
  SELECT coalesce(sum(amount_minor), 0) FROM purchases
  WHERE purchases.customer_id = customers.customer_id AND purchases.status = 'pending'
);
