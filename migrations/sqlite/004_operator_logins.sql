-- talosctl operators who logged in with the device flow against the gate ("talos-gate login --device").
-- A grant is one login: who approved it, their claims at that time, and (when the web sign-in got
-- one) the IdP refresh token the gate uses to re-check them at each refresh.
CREATE TABLE operator_grants (
  id                 TEXT PRIMARY KEY,
  client_id          TEXT NOT NULL,
  sub                TEXT NOT NULL,
  email              TEXT,
  claims             TEXT NOT NULL,
  idp_refresh_token  TEXT,
  created_at         INTEGER NOT NULL,
  refreshed_at       INTEGER,
  expires_at         INTEGER NOT NULL,
  revoked_at         INTEGER,
  revoked_reason     TEXT
);
CREATE INDEX operator_grants_sub ON operator_grants (sub);

-- Rotating refresh tokens of a grant, kept as SHA-256. A used one presented again revokes the grant.
CREATE TABLE refresh_tokens (
  token_hash  TEXT PRIMARY KEY,
  grant_id    TEXT NOT NULL REFERENCES operator_grants (id) ON DELETE CASCADE,
  issued_at   INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  used_at     INTEGER
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);

ALTER TABLE device_requests ADD COLUMN grant_id TEXT REFERENCES operator_grants (id) ON DELETE SET NULL;
ALTER TABLE web_sessions ADD COLUMN idp_refresh_token TEXT;
