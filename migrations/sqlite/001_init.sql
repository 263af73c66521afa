-- Nodes enrolled (or pre-registered) through the device flow. id is the node's uuid, or its mac
-- when it sent no uuid; both lower-case.
CREATE TABLE nodes (
  id                TEXT PRIMARY KEY,
  uuid              TEXT,
  mac               TEXT,
  variables         TEXT NOT NULL DEFAULT '{}',   -- JSON: what the node last sent, as it came
  status            TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'revoked')),
  profile           TEXT,
  hostname          TEXT,
  patches           TEXT NOT NULL DEFAULT '[]',   -- JSON list of per-node patches
  auto_approve      INTEGER NOT NULL DEFAULT 0,
  config            TEXT,                         -- machine config rendered at approval
  created_at        INTEGER NOT NULL,
  requested_at      INTEGER,
  source_ip         TEXT,
  decided_at        INTEGER,
  decided_by        TEXT,
  config_downloads  INTEGER NOT NULL DEFAULT 0,
  last_download_at  INTEGER,
  last_download_ip  TEXT
);
CREATE INDEX nodes_status ON nodes (status);

-- RFC 8628 device authorization requests. The device code is kept only as its SHA-256.
CREATE TABLE device_requests (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  device_code_hash  TEXT NOT NULL UNIQUE,
  user_code         TEXT NOT NULL UNIQUE,
  client_id         TEXT NOT NULL,
  kind              TEXT NOT NULL,
  node_id           TEXT REFERENCES nodes (id) ON DELETE CASCADE,
  variables         TEXT NOT NULL DEFAULT '{}',
  scope             TEXT,
  audience          TEXT,
  source_ip         TEXT NOT NULL,
  created_at        INTEGER NOT NULL,
  expires_at        INTEGER NOT NULL,
  interval_ms       INTEGER NOT NULL,
  status            TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
  decided_at        INTEGER,
  decided_by        TEXT,
  last_poll_at      INTEGER,
  last_poll_basic   INTEGER NOT NULL DEFAULT 0,
  last_answer       TEXT
);
CREATE INDEX device_requests_node ON device_requests (node_id, status);
CREATE INDEX device_requests_ip ON device_requests (source_ip, status, expires_at);
CREATE INDEX device_requests_expiry ON device_requests (expires_at);

-- Access tokens handed to nodes by /token, bound to one node; kept only as SHA-256.
CREATE TABLE node_tokens (
  token_hash        TEXT PRIMARY KEY,
  node_id           TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  device_request_id INTEGER NOT NULL UNIQUE REFERENCES device_requests (id) ON DELETE CASCADE,
  issued_at         INTEGER NOT NULL,
  expires_at        INTEGER NOT NULL,
  revoked_at        INTEGER
);
CREATE INDEX node_tokens_node ON node_tokens (node_id);

CREATE TABLE audit_events (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  at       INTEGER NOT NULL,
  type     TEXT NOT NULL,
  actor    TEXT,
  subject  TEXT,
  ip       TEXT,
  detail   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_at ON audit_events (at);
