-- The pending device requests of an address bucket (device.max_pending_per_ip), counted under the
-- bucket's transaction-level advisory lock, for POST /device/code's one statement
-- (server/storage/postgres/hot-paths.ts). A function because a statement reads the snapshot taken as
-- it starts, before any lock it takes is granted; a VOLATILE function's queries each take a fresh
-- one (docs 38.7, "Function Volatility Categories"), so this count sees every request of the bucket
-- committed by whoever held the lock before. The lock's keys are operations.ts's LOCK_BUCKET (1) and
-- hashtext of the bucket, as countPendingDeviceRequestsInBucket takes it; held until the transaction
-- (the one statement) ends.
CREATE FUNCTION tg_pending_in_bucket(bucket TEXT, at BIGINT) RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(1, hashtext(bucket));
  RETURN (SELECT COUNT(*) FROM device_requests r WHERE r.source_bucket = bucket AND r.status = 'pending' AND r.expires_at > at);
END
$$;
