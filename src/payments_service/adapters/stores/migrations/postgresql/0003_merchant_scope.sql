-- Tenancy: every payment belongs to a merchant, and idempotency keys are unique per merchant,
-- not globally. Rows from before this migration were made when every caller was merchant
-- `default` (authentication off), so they get that merchant (a constant default: PostgreSQL
-- 11+ adds the column without rewriting the table). The default is then dropped: an INSERT
-- that forgets the merchant fails instead of landing in `default`.
ALTER TABLE payments ADD COLUMN merchant_id text NOT NULL DEFAULT 'default';
ALTER TABLE payments ALTER COLUMN merchant_id DROP DEFAULT;

-- The claim's unique index, now over (merchant_id, idempotency_key): two merchants with one
-- key are two payments, and the claim's ON CONFLICT names this index's columns. Building it
-- reads the table and blocks writes meanwhile (inside the migration's transaction).
CREATE UNIQUE INDEX payments_merchant_idempotency_key ON payments (merchant_id, idempotency_key);
DROP INDEX payments_idempotency_key;
