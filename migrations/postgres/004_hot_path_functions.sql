-- Functions for the one-statement hot paths of server/storage/postgres/hot-paths.ts. Each takes a
-- transaction-level advisory lock and then reads: a statement reads the snapshot taken as it starts,
-- before any lock it takes is granted, but a VOLATILE function's queries each take a fresh one (docs
-- 38.7, "Function Volatility Categories"), so the read sees whatever the lock's previous holder
-- committed. The locks' keys are operations.ts's (LOCK_BUCKET 1, LOCK_SUBJECT 2, and hashtext of the
-- value), as its countPendingDeviceRequestsInBucket, getBlockedSubject and blockSubject take them;
-- they are held until the transaction (the one statement) ends.

-- POST /device/code: the pending requests of an address bucket (device.max_pending_per_ip), under
-- the bucket's lock, so the request this count admits is stored before the next one counts.
CREATE FUNCTION tg_pending_in_bucket(bucket TEXT, at BIGINT) RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(1, hashtext(bucket));
  RETURN (SELECT COUNT(*) FROM device_requests r WHERE r.source_bucket = bucket AND r.status = 'pending' AND r.expires_at > at);
END
$$;

-- POST /exchange: whether a subject is blocked, under a shared lock of the subject that a block
-- takes exclusively, so a block commits before the certificate is recorded or after, never between.
CREATE FUNCTION tg_subject_blocked(who TEXT) RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock_shared(2, hashtext(who));
  RETURN EXISTS (SELECT 1 FROM blocked_subjects b WHERE b.subject = who);
END
$$;
