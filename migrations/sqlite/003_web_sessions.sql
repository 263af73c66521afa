-- Browser sessions of the web page. The cookie holds only an opaque id; this table holds its SHA-256.
CREATE TABLE web_sessions (
  id_hash       TEXT PRIMARY KEY,
  created_at    INTEGER NOT NULL,
  last_seen_at  INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL,           -- absolute expiry
  login         TEXT,                       -- JSON: a sign-in in progress (state, nonce, PKCE verifier, return_to)
  sub           TEXT,
  email         TEXT,
  name          TEXT,
  claims        TEXT,                       -- JSON: the ID token's claims at sign-in
  is_admin      INTEGER NOT NULL DEFAULT 0,
  signed_in_at  INTEGER
);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

-- Wrong user codes typed on /device, per session and per IP (RFC 8628 §5.1).
CREATE TABLE code_entry_failures (
  key  TEXT NOT NULL,
  at   INTEGER NOT NULL
);
CREATE INDEX code_entry_failures_key ON code_entry_failures (key, at);
