-- Nodes nobody decided on, not registered by an admin (no profile: registration and approval both
-- give one), found by when they last asked, for the retention GC (device.pending_retention;
-- security review #11, finding 8).
CREATE INDEX nodes_abandoned ON nodes (requested_at)
  WHERE status = 'pending' AND decided_at IS NULL AND profile IS NULL AND auto_approve = 0;
