-- Prefix search of the admin API (issue 13): one index per searched expression, read as a range
-- (server/storage/prefix-range.ts), so finding a node by a mac prefix reads a few index entries
-- whatever the size of the fleet. The expressions must stay exactly as SQLITE_SEARCH_COLUMNS spells
-- them: SQLite uses an index on an expression only for that same expression.
CREATE INDEX nodes_search_uuid ON nodes (lower(uuid));
CREATE INDEX nodes_search_mac ON nodes (lower(mac));
CREATE INDEX nodes_search_hostname ON nodes (lower(hostname));
CREATE INDEX nodes_search_source_ip ON nodes (lower(source_ip));
CREATE INDEX nodes_search_serial ON nodes (lower(json_extract(variables, '$.serial')));
CREATE INDEX nodes_search_sent_hostname ON nodes (lower(json_extract(variables, '$.hostname')));
-- registered nodes that never asked (the state `registered`), newest first
CREATE INDEX nodes_registered ON nodes (created_at, id) WHERE status = 'pending' AND requested_at IS NULL;
