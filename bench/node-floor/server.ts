import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { parseArgs } from 'node:util';
import { newEd25519Jwk } from '../../server/pki/fresh-keys.js';
import { canonicalSpki, ed25519Pkcs8 } from '../../server/pki/spki.js';

// The Node floor: what Node.js itself costs for an exchange's unavoidable work, measured beside the
// gate and the Go anchor. A bare node:https server (no framework) that, per POST /exchange, parses the
// JSON body, verifies the ID token's signature with the IdP's key (one-shot node:crypto on a cached
// KeyObject, as the gate's fast path does), parses its payload, takes the client's Ed25519 key or makes
// one, signs a TBSCertificate-sized message with the CA's Ed25519 key, hashes the signature and answers
// a JSON body the size of the gate's. It checks no claim, maps no role, writes no DER, records and
// audits nothing: it is not an exchange server, only the floor under one. The gap between it and the
// gate is the gate's own work; the gap between it and Go is the platform's.

const { values } = parseArgs({
  options: { port: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, jwks: { type: 'string' }, 'ca-key': { type: 'string' } },
});
const jwks = (await (await fetch(values.jwks as string)).json()) as { keys: (Record<string, unknown> & { kid?: string; alg?: string })[] };
const keys = new Map<string, KeyObject>();
for (const k of jwks.keys) if (k.kid) keys.set(`${k.alg}:${k.kid}`, createPublicKey({ key: k as { kty: string }, format: 'jwk' }));
const caKey = createPrivateKey(readFileSync(values['ca-key'] as string));
const caPem = 'C'.repeat(700);
const tbs = Buffer.alloc(420, 0x30);

function answer(body: string, authorization: string | undefined): { status: number; json: unknown } {
  const req = JSON.parse(body || '{}') as { public_key?: string };
  const token = authorization?.startsWith('Bearer ') ? authorization.slice(7) : '';
  const [h = '', p = '', s = ''] = token.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as { alg?: string; kid?: string };
  const key = keys.get(`${header.alg}:${header.kid}`);
  if (!key) return { status: 401, json: { error: 'invalid_token' } };
  const ok = verify('sha256', Buffer.from(`${h}.${p}`, 'latin1'), header.alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key, Buffer.from(s, 'base64url'));
  if (!ok) return { status: 401, json: { error: 'invalid_token' } };
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as { sub?: string };
  let privatePem: string | undefined;
  let spki: Buffer;
  if (req.public_key) {
    spki = Buffer.from(req.public_key.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  } else {
    // the key's raw halves (JWK), wrapped in fixed DER prefixes, as the gate makes them (and for the
    // same reason: server/pki/fresh-keys.ts)
    const jwk = newEd25519Jwk();
    spki = canonicalSpki('ed25519', Buffer.from(jwk.x, 'base64url'));
    privatePem = `-----BEGIN PRIVATE KEY-----\n${ed25519Pkcs8(Buffer.from(jwk.d, 'base64url')).toString('base64')}\n-----END PRIVATE KEY-----\n`;
  }
  spki.copy(tbs, 300);
  const signature = sign(null, tbs, caKey);
  const cert = Buffer.concat([tbs, signature]).toString('base64');
  return {
    status: 200,
    json: {
      ca: caPem,
      cert,
      ...(privatePem ? { key: privatePem } : {}),
      endpoints: ['10.0.0.1'],
      roles: ['os:operator'],
      subject: claims.sub,
      sub: claims.sub,
      serial: createHash('sha256').update(signature).digest('hex').slice(0, 32),
      fingerprint: createHash('sha256').update(cert).digest('hex'),
      expires_at: new Date(Date.now() + 300_000).toISOString(),
      ttl_seconds: 300,
    },
  };
}

const server = createServer({ cert: readFileSync(values.cert as string), key: readFileSync(values.key as string), keepAliveTimeout: 65_000 }, (req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let out: { status: number; json: unknown };
    try {
      out = answer(Buffer.concat(chunks).toString('utf8'), req.headers.authorization);
    } catch {
      out = { status: 400, json: { error: 'invalid_request' } };
    }
    res.writeHead(out.status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(JSON.stringify(out.json));
  });
});
server.listen(Number(values.port), '127.0.0.1', () => process.stdout.write(`listening on 127.0.0.1:${values.port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
