-- The dashboard counts an account's deliveries that failed for good (they stay until retried
-- or their target is deleted) without reading the rest of its history.
CREATE INDEX deliveries_failed ON deliveries (account_id) WHERE status = 'failed';
