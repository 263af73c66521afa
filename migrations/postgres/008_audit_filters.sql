-- The web audit page's filters (issue 13): events of one type or actor, newest first. A PostgreSQL
-- index holds only its own columns, so each takes the id as its second column: `WHERE actor = $3
-- AND id < $1 ORDER BY id DESC LIMIT $2` is then one backward index range, no sort (docs 11.4,
-- "Indexes and ORDER BY"). The (type, id) index replaces the one on type alone. The subject has no
-- index, as on SQLite (its migration 014 says why): a subject's events are found in a window of the
-- trail (server/reports.ts auditPage), a range of the primary key.
CREATE INDEX audit_events_type_id ON audit_events (type, id);
DROP INDEX audit_events_type;
CREATE INDEX audit_events_actor_id ON audit_events (actor, id);
