-- Auto-approval of a pre-registered node, hardened (security review #11):
-- - bound to source addresses: a JSON list of IPs or CIDR blocks the node's request must come from
--   (empty: any address ip_allowlist.nodes lets in);
-- - one-shot: the first approval of the node uses it up (auto_approve turns 0). Nodes that were
--   approved before this migration (their config was rendered) have used theirs: a later boot of
--   such a node waits for an admin, who re-arms it with POST /api/v1/nodes/{id}/auto-approve.
ALTER TABLE nodes ADD COLUMN auto_approve_cidrs TEXT NOT NULL DEFAULT '[]';
UPDATE nodes SET auto_approve = 0 WHERE auto_approve = 1 AND config IS NOT NULL;
