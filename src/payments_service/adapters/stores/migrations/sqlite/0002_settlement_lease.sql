-- Settlement leases. The process that creates a payment owns its settlement until lease_until
-- (one attempt plus a margin). A payment still PENDING after that lost its owner (a crash):
-- recovery takes it over by moving the lease, so one process resumes it. Rows from before this
-- migration get 0 (the epoch): recoverable at once.
ALTER TABLE payments ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;

-- Recovery scans only PENDING rows, in lease order.
CREATE INDEX payments_pending_lease ON payments (lease_until) WHERE status = 'PENDING';
