-- The web audit page's filters (issue 13): events of one subject (a node) or one actor, newest first.
-- An SQLite index holds the rowid (audit_events.id) after its column, so `WHERE subject = ? AND id < ?
-- ORDER BY id DESC` reads this index backwards from the page's start: no scan of the trail, no sort.
-- audit_events_type (002) serves the event type the same way.
CREATE INDEX audit_events_subject ON audit_events (subject);
CREATE INDEX audit_events_actor ON audit_events (actor);
