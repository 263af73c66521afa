-- POST /device/code admits a request while its address bucket has fewer than
-- device.max_pending_per_ip pending ones. Migration 004's tg_pending_in_bucket counted under the
-- bucket's exclusive lock, so every /device/code of one address waited for the one before it to
-- commit: a rack behind one NAT address (or a bench on 127.0.0.1) enrolled one node at a time, and
-- the waiting statements held the pool's connections while the rack's polls queued for them.
--
-- Far from the limit the count needs no exclusivity. Each statement that admits holds the bucket's
-- lock in shared mode from its count until it commits, so the requests it did not see are those of
-- statements holding the lock at the same time: at most one each, and there are fewer such
-- statements than the server has connections (max_connections). A request admitted in shared mode
-- therefore leaves at most count + max_connections pending, which is within the limit when
--   count + max_connections < max_pending.
-- Closer to the limit the function admits nothing and answers -1, and the caller asks again with
-- exclusive = true: the bucket's exclusive lock waits for the shared holders to commit, so its count
-- is exact. (PostgreSQL queues a new shared request behind a waiting exclusive one, so the exclusive
-- ask is not starved.) The lock's keys are operations.ts's (LOCK_BUCKET 1, hashtext of the bucket),
-- which its countPendingDeviceRequestsInBucket takes exclusively.
--
-- As in migration 004, the function is VOLATILE so its count takes a fresh snapshot after the lock
-- is granted (docs 38.7), and the lock is held until the statement's transaction ends.
CREATE FUNCTION tg_bucket_admission(bucket TEXT, at BIGINT, max_pending BIGINT, exclusive BOOLEAN) RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  concurrent BIGINT := current_setting('max_connections')::BIGINT;
  n BIGINT;
BEGIN
  IF exclusive THEN
    PERFORM pg_advisory_xact_lock(1, hashtext(bucket));
  ELSE
    PERFORM pg_advisory_xact_lock_shared(1, hashtext(bucket));
  END IF;
  n := (SELECT COUNT(*) FROM device_requests r WHERE r.source_bucket = bucket AND r.status = 'pending' AND r.expires_at > at);
  IF NOT exclusive AND n + concurrent >= max_pending THEN
    RETURN -1;
  END IF;
  RETURN n;
END
$$;
