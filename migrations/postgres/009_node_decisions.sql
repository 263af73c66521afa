-- An admin's decision on a node's request (hot-paths.ts decideNodeRequest): the request and its node
-- are written only while both are as they were read (their row versions, xmin), and the audit
-- events with them, in one statement. Two rows cannot be compare-and-set by one plain statement (a
-- data-modifying CTE runs whether or not the others find their row), so this function writes the
-- request, then the node, and raises when the node changed: the statement's writes are undone
-- together, and the caller reads both again and decides again. It answers the audit events, or
-- NULL when the request changed (nothing written).
CREATE FUNCTION tg_decide_node_request(req_id BIGINT, req_version TEXT, req JSONB, node_key TEXT, node_version TEXT, node JSONB, events JSONB) RETURNS JSONB
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  written JSONB;
BEGIN
  UPDATE device_requests d SET status = r.status, decided_at = r.decided_at, decided_by = r.decided_by
    FROM jsonb_populate_record(NULL::device_requests, req) r
    WHERE d.id = req_id AND d.xmin::text = req_version;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  UPDATE nodes n SET status = r.status, auto_approve = r.auto_approve, profile = r.profile, hostname = r.hostname,
      patches = r.patches, config = r.config, decided_at = r.decided_at, decided_by = r.decided_by
    FROM jsonb_populate_record(NULL::nodes, node) r
    WHERE n.id = node_key AND n.xmin::text = node_version;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'node % changed while it was decided', node_key USING ERRCODE = 'serialization_failure';
  END IF;
  WITH e AS (
    INSERT INTO audit_events (at, type, actor, subject, ip, detail)
    SELECT x.at, x.type, x.actor, x.subject, x.ip, x.detail
    FROM jsonb_to_recordset(events) AS x(at BIGINT, type TEXT, actor TEXT, subject TEXT, ip TEXT, detail TEXT)
    RETURNING *)
  SELECT COALESCE(jsonb_agg(to_jsonb(e) ORDER BY e.id), '[]'::JSONB) INTO written FROM e;
  RETURN written;
END
$$;
