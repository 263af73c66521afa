-- POST /exchange records its certificate and audit events in one statement (hot-paths.ts
-- recordCertificate). Under load the exchanges of one moment go out together instead (the
-- CertificateBatch of certificate-batch.ts), one statement and one commit for all of them, as SQLite's
-- group commit does: the per-statement work (a round trip, parse and bind, a commit and its WAL
-- record) is paid once per batch, not once per certificate.
--
-- items: a JSON array of {subject, cert (a certificates row), audit (audit_events rows)}; the answer
-- is an array in the same order of {blocked} or {blocked, cert, events}. Each subject's lock is taken
-- shared before its block is read, as tg_subject_blocked does (migration 004), and held to the
-- commit, so a block (which takes it exclusively) commits before the batch reads it or after the
-- batch has committed, never between. The locks are taken in one order (by key) before any is
-- needed, so two batches never wait for each other in a circle.
CREATE FUNCTION tg_record_certificates(items JSONB) RETURNS JSONB
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  item JSONB;
  answer JSONB := '[]'::JSONB;
  cert_row JSONB;
  event_rows JSONB;
BEGIN
  PERFORM pg_advisory_xact_lock_shared(2, k)
    FROM (SELECT DISTINCT hashtext(i->>'subject') AS k FROM jsonb_array_elements(items) AS i ORDER BY 1) AS keys;
  FOR item IN SELECT i FROM jsonb_array_elements(items) AS i LOOP
    IF EXISTS (SELECT 1 FROM blocked_subjects b WHERE b.subject = item->>'subject') THEN
      answer := answer || jsonb_build_array(jsonb_build_object('blocked', true));
      CONTINUE;
    END IF;
    WITH c AS (
      INSERT INTO certificates (serial, fingerprint, subject, email, common_name, issuer, roles, issued_at, expires_at, client_ip, source)
      SELECT r.serial, r.fingerprint, r.subject, r.email, r.common_name, r.issuer, r.roles, r.issued_at, r.expires_at, r.client_ip, r.source
      FROM jsonb_populate_record(NULL::certificates, item->'cert') r
      RETURNING *)
    SELECT to_jsonb(c) INTO cert_row FROM c;
    WITH e AS (
      INSERT INTO audit_events (at, type, actor, subject, ip, detail)
      SELECT x.at, x.type, x.actor, x.subject, x.ip, x.detail
      FROM jsonb_to_recordset(item->'audit') AS x(at BIGINT, type TEXT, actor TEXT, subject TEXT, ip TEXT, detail TEXT)
      RETURNING *)
    SELECT COALESCE(jsonb_agg(to_jsonb(e) ORDER BY e.id), '[]'::JSONB) INTO event_rows FROM e;
    answer := answer || jsonb_build_array(jsonb_build_object('blocked', false, 'cert', cert_row, 'events', event_rows));
  END LOOP;
  RETURN answer;
END
$$;
