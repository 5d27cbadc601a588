-- Settlement leases. The process that creates a payment owns its settlement until lease_until
-- (one attempt plus a margin). A payment still PENDING after that lost its owner (a crash):
-- recovery takes it over by moving the lease (FOR UPDATE SKIP LOCKED), so exactly one replica
-- resumes it. Rows from before this migration get the epoch: recoverable at once.
ALTER TABLE payments ADD COLUMN lease_until timestamptz NOT NULL DEFAULT 'epoch';

-- Recovery scans only PENDING rows, in lease order.
CREATE INDEX payments_pending_lease ON payments (lease_until) WHERE status = 'PENDING';
