-- What makes several gate processes one gate (issue 17): named secrets made once (the cookie/CSRF
-- secret, the generated admin token, the self-signed TLS material; the SQLite gate keeps those in
-- data_dir files and does not use this table, see docs/ha.md) and the gate-token signing keys,
-- which rotate. Values are the bytes server/secrets/sealing.ts produced, never read elsewhere.
CREATE TABLE instance_secrets (
  name        TEXT PRIMARY KEY,
  value       TEXT NOT NULL,     -- sealed (server/secrets/sealed-box.ts), bound to name
  created_at  INTEGER NOT NULL
);

CREATE TABLE gate_signing_keys (
  kid           TEXT PRIMARY KEY,
  private_key   TEXT NOT NULL,    -- PKCS#8 DER, sealed (bound to kid)
  created_at    INTEGER NOT NULL,
  activates_at  INTEGER NOT NULL  -- signs from then on; published from created_at
);
