-- Payments and their idempotency keys. first_status/first_message are the first response
-- (NULL until the creating call has answered); status/message are the current outcome.
-- metadata is JSON kept as text: jsonb would refuse a \u0000 that a valid request may carry.
CREATE TABLE payments (
    payment_id      text PRIMARY KEY,
    idempotency_key text NOT NULL,
    fingerprint     text NOT NULL,
    amount_minor    bigint NOT NULL,
    currency        text NOT NULL,
    order_id        text NOT NULL,
    metadata        text NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    status          text NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    message         text NOT NULL,
    first_status    text CHECK (first_status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    first_message   text
);

-- One live payment per key across every replica: this index is what makes claim atomic.
CREATE UNIQUE INDEX payments_idempotency_key ON payments (idempotency_key);

-- purge_expired walks this index in bounded batches.
CREATE INDEX payments_expires_at ON payments (expires_at);
