-- Tenancy: every payment belongs to a merchant, and idempotency keys are unique per merchant,
-- not globally. Rows from before this migration were made when every caller was merchant
-- `default` (authentication off), so they get that merchant. SQLite cannot drop a column
-- default without rebuilding the table; the store names merchant_id in every INSERT, so the
-- default only ever applies to these existing rows.
ALTER TABLE payments ADD COLUMN merchant_id TEXT NOT NULL DEFAULT 'default';

-- The claim's unique index, now over (merchant_id, idempotency_key): two merchants with one
-- key are two payments, and the claim's ON CONFLICT names this index's columns.
CREATE UNIQUE INDEX payments_merchant_idempotency_key ON payments (merchant_id, idempotency_key);
DROP INDEX payments_idempotency_key;
