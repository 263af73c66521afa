-- Prefix search of the admin API (issue 13): one index per searched expression, read as a range
-- (server/storage/prefix-range.ts). COLLATE "C" makes the range byte order, whatever the database's
-- collation, so every string starting with the prefix falls inside it (a linguistic collation would
-- not promise that; docs 11.10, "Operator Classes and Operator Families", on text_pattern_ops is the
-- same idea for LIKE). The expressions must stay exactly as POSTGRES_SEARCH_COLUMNS spells them.
CREATE INDEX nodes_search_uuid ON nodes ((lower(uuid) COLLATE "C"));
CREATE INDEX nodes_search_mac ON nodes ((lower(mac) COLLATE "C"));
CREATE INDEX nodes_search_hostname ON nodes ((lower(hostname) COLLATE "C"));
CREATE INDEX nodes_search_source_ip ON nodes ((lower(source_ip) COLLATE "C"));
CREATE INDEX nodes_search_serial ON nodes ((lower(variables::jsonb ->> 'serial') COLLATE "C"));
CREATE INDEX nodes_search_sent_hostname ON nodes ((lower(variables::jsonb ->> 'hostname') COLLATE "C"));
CREATE INDEX nodes_registered ON nodes (created_at, id) WHERE status = 'pending' AND requested_at IS NULL;
