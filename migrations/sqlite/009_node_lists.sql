-- Node rows bounded (security review #11, finding 8): anyone who reaches /device/code makes a node.
--
-- Lists are paged newest first by (created_at, id), a key that never changes, so a walk over the
-- pages sees every node once however many arrive meanwhile.
DROP INDEX nodes_status;
CREATE INDEX nodes_status_created ON nodes (status, created_at, id);
CREATE INDEX nodes_created ON nodes (created_at, id);
