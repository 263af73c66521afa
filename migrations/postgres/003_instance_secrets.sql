-- What makes several gate instances one gate (issue 17): named secrets made once (the cookie/CSRF
-- secret, the generated admin token, the self-signed TLS material) and the gate-token signing
-- keys, which rotate. Values are the bytes server/secrets/sealing.ts produced, never read elsewhere.
CREATE TABLE instance_secrets (
  name        TEXT PRIMARY KEY,
  value       TEXT NOT NULL,     -- sealed (server/secrets/sealed-box.ts), bound to name
  created_at  BIGINT NOT NULL
);

CREATE TABLE gate_signing_keys (
  kid           TEXT PRIMARY KEY,
  private_key   TEXT NOT NULL,    -- PKCS#8 DER, sealed (bound to kid)
  created_at    BIGINT NOT NULL,
  activates_at  BIGINT NOT NULL    -- signs from then on; published from created_at
);
