-- Payments and their idempotency keys. Timestamps are integer microseconds since the Unix epoch
-- (UTC), so created_at round-trips exactly. first_status/first_message are the first response
-- (NULL until the creating call has answered); status/message are the current outcome.
CREATE TABLE payments (
    payment_id      TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    order_id        TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    message         TEXT NOT NULL,
    first_status    TEXT CHECK (first_status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    first_message   TEXT
) WITHOUT ROWID;

-- One live payment per key: this index is what makes claim atomic.
CREATE UNIQUE INDEX payments_idempotency_key ON payments (idempotency_key);

-- purge_expired walks this index in bounded batches.
CREATE INDEX payments_expires_at ON payments (expires_at);
