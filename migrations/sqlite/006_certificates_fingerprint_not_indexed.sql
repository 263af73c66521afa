-- The fingerprint was UNIQUE, which kept an index of random 64-character keys that nothing looks up:
-- every exchange paid for a write into it at a random place (a fifth of the database's cost per
-- exchange at 100,000 records). A certificate is identified by its serial, which stays unique.
-- SQLite cannot drop a constraint, so the table is rebuilt with the same rows and ids.
CREATE TABLE certificates_new (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  serial       TEXT NOT NULL UNIQUE,   -- hex
  fingerprint  TEXT NOT NULL,          -- SHA-256 of the DER, hex
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
INSERT INTO certificates_new (id, serial, fingerprint, subject, email, common_name, issuer, roles, issued_at, expires_at, client_ip, source)
  SELECT id, serial, fingerprint, subject, email, common_name, issuer, roles, issued_at, expires_at, client_ip, source FROM certificates;
-- AUTOINCREMENT's high-water mark goes along, so an id given once (then deleted) is never given again
DELETE FROM sqlite_sequence WHERE name = 'certificates_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'certificates_new', seq FROM sqlite_sequence WHERE name = 'certificates';
DROP TABLE certificates;
ALTER TABLE certificates_new RENAME TO certificates;
CREATE INDEX certificates_expires ON certificates (expires_at);
CREATE INDEX certificates_subject ON certificates (subject, id);
