-- Talos client certificates issued by /exchange. Certificates are short-lived; this is the record
-- of who got which roles when, kept for retention.certs.
CREATE TABLE certificates (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  serial       TEXT NOT NULL UNIQUE,   -- hex
  fingerprint  TEXT NOT NULL UNIQUE,   -- SHA-256 of the DER, hex
  subject      TEXT NOT NULL,          -- the IdP's sub
  email        TEXT,
  common_name  TEXT NOT NULL,
  issuer       TEXT NOT NULL,          -- the IdP's iss
  roles        TEXT NOT NULL,          -- JSON list
  issued_at    INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  client_ip    TEXT,
  source       TEXT NOT NULL           -- how the identity came: id_token, gate_token
);
CREATE INDEX certificates_expires ON certificates (expires_at);
CREATE INDEX certificates_subject ON certificates (subject, id);

-- Subjects refused at once, without waiting for the IdP or for their certificates to expire.
CREATE TABLE blocked_subjects (
  subject     TEXT PRIMARY KEY,
  blocked_at  INTEGER NOT NULL,
  blocked_by  TEXT,
  reason      TEXT
);

CREATE INDEX audit_events_type ON audit_events (type);
