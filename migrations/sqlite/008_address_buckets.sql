-- Per-address limits count an address bucket (security review #11, finding 8): an IPv4 address, or
-- the /64 of an IPv6 address (server/client-ip.ts addressBucket). Requests stored before this
-- migration count by their exact address until they expire (code_ttl, at most 24 h).
ALTER TABLE device_requests ADD COLUMN source_bucket TEXT NOT NULL DEFAULT '';
UPDATE device_requests SET source_bucket = source_ip;
DROP INDEX device_requests_ip;
CREATE INDEX device_requests_bucket ON device_requests (source_bucket, status, expires_at);
