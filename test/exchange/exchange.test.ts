import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from '../../cli/http.js';
import { canonicalSpki } from '../helpers/der-writer.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';
import { assertTalosClientCertificate, goJudge, goJudgeAll, startGoApid } from '../helpers/go-x509.js';
import { startIdp, type TestIdp } from '../helpers/idp.js';
import { makeTalosCa, mtlsCall, opensslText, opensslVerifyClient, startApidLike, type CaKind, type TestCa } from '../helpers/talos-ca.js';

// Real ID tokens from a real oidc-provider IdP, Talos-style CAs from openssl, certificates checked
// by openssl, by Go's crypto/x509 (what apid parses them with) and by TLS servers (Node's and Go's)
// that require client certificates from the Talos CA.

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-exchange-'));

const rbac = {
  rules: [
    { claim: 'groups', value: 'talos-admins', roles: ['os:admin'] },
    { claim: 'groups', value: 'ops', roles: ['os:operator'] },
    { claim: 'groups', value: 'devs', roles: ['os:reader'] },
    { claim: 'realm_access.roles', value: 'talos-readers', roles: ['os:reader', 'os:etcd:backup'] },
  ],
};

async function exchange(g: TestGate, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await request(`${g.url}/exchange`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    ca: g.ca,
  });
  return { status: res.status, json: JSON.parse(res.body) as Record<string, any> }; // any: response fields read per test
}

function gateConfigFor(idp: TestIdp, ca: TestCa, extra: Record<string, unknown> = {}) {
  return {
    oidc: { issuer_url: idp.issuer, client_id: 'talos-gate', extra_audiences: ['talos-gate-es'], jwks_refresh_interval: '30s' },
    rbac,
    talos: { ca_cert: ca.certPath, ca_key: ca.keyPath, endpoints: ['10.0.0.10', '10.0.0.11'] },
    audit_log: join(dir, `audit-${ca.kind}-${Math.random().toString(36).slice(2)}.jsonl`),
    ...extra,
  };
}

describe('certificate exchange', () => {
  let idp: TestIdp;
  before(async () => {
    idp = await startIdp({
      users: [
        { sub: 'alice', claims: { email: 'alice@example.com', email_verified: true, groups: ['talos-admins', 'devs'] } },
        { sub: 'bob', claims: { email: 'bob@example.com', groups: 'devs ops' } },
        { sub: 'carol', claims: { realm_access: { roles: ['talos-readers'] } } },
        { sub: 'dave', claims: { email: 'dave@example.com', groups: ['marketing'] } },
      ],
      clients: [
        { client_id: 'talos-gate', redirect_uris: ['http://127.0.0.1:9/callback'] },
        { client_id: 'talos-gate-es', redirect_uris: ['http://127.0.0.1:9/callback'], id_token_signed_response_alg: 'ES256' },
        { client_id: 'other-app', redirect_uris: ['http://127.0.0.1:9/callback'] },
      ],
    });
  });
  after(() => idp.close());

  for (const kind of ['ed25519', 'p256', 'rsa'] as CaKind[]) {
    test(`${kind} Talos CA: openssl and Go verify, mTLS servers accept and see the roles`, async () => {
      const ca = makeTalosCa(dir, kind);
      const g = await startTestGate(gateConfigFor(idp, ca));
      const apid = await startApidLike(ca, dir);
      const goApid = await startGoApid(ca.certPem);
      try {
        // RS256 token, server-generated key
        const alice = await idp.login('talos-gate', 'alice');
        const r = await exchange(g, { id_token: alice.id_token });
        assert.equal(r.status, 200, JSON.stringify(r.json));
        assert.deepEqual(r.json.roles, ['os:admin', 'os:reader']);
        assert.equal(r.json.subject, 'alice@example.com');
        assert.equal(r.json.sub, 'alice');
        assert.deepEqual(r.json.endpoints, ['10.0.0.10', '10.0.0.11']);
        assert.equal(r.json.ca, ca.certPem.endsWith('\n') ? ca.certPem : `${ca.certPem}\n`);
        assert.ok(r.json.ttl_seconds >= 299 && r.json.ttl_seconds <= 300, `ttl ${r.json.ttl_seconds}`);
        assert.match(r.json.key, /-----BEGIN PRIVATE KEY-----/);
        assert.match(opensslVerifyClient(ca, r.json.cert, dir), /: OK/);
        const text = opensslText(r.json.cert, dir);
        assert.match(text, /Subject: CN=alice@example\.com,O=os:reader,O=os:admin|Subject: CN=alice@example\.com\+?.*O=os:admin/);
        assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature/);
        assert.match(text, /TLS Web Client Authentication/);
        assert.match(text, /Authority Key Identifier/);
        assert.match(text, /Subject Key Identifier/);
        const x = new X509Certificate(r.json.cert);
        assert.equal(x.fingerprint256.replace(/:/g, '').toLowerCase(), r.json.fingerprint);
        assert.equal(x.serialNumber.toLowerCase(), r.json.serial);
        assert.ok(new Date(x.validFrom).getTime() <= Date.now() - 55_000, 'backdated a minute');
        const seen = await mtlsCall(apid.port, { cert: r.json.cert, key: r.json.key, ca: ca.certPem });
        assert.deepEqual(seen.organizations.sort(), ['os:admin', 'os:reader']);
        assert.equal(seen.cn, 'alice@example.com');

        // ES256 token (extra audience), client's own P-256 key: no key in the response
        const bob = await idp.login('talos-gate-es', 'bob');
        const own = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
        const r2 = await exchange(g, { public_key: own.publicKey.export({ type: 'spki', format: 'pem' }) }, { authorization: `Bearer ${bob.id_token}` });
        assert.equal(r2.status, 200, JSON.stringify(r2.json));
        assert.equal(r2.json.key, undefined, 'the private key never leaves the client');
        assert.deepEqual(r2.json.roles, ['os:operator', 'os:reader'], 'groups as a space-separated string');
        const seen2 = await mtlsCall(apid.port, { cert: r2.json.cert, key: own.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), ca: ca.certPem });
        assert.deepEqual(seen2.organizations.sort(), ['os:operator', 'os:reader']);

        // CSR with an Ed25519 key; nested claim; no email, so CN is the sub
        const carol = await idp.login('talos-gate', 'carol');
        const csrKey = join(dir, `csr-${kind}.key`);
        execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', csrKey]);
        const csr = execFileSync('openssl', ['req', '-new', '-key', csrKey, '-subj', '/CN=evil/O=os:admin']).toString();
        const r3 = await exchange(g, { id_token: carol.id_token, csr, ttl_seconds: 99999 });
        assert.equal(r3.status, 200, JSON.stringify(r3.json));
        assert.deepEqual(r3.json.roles, ['os:etcd:backup', 'os:reader'], 'roles from realm_access.roles; the CSR subject is ignored');
        assert.equal(r3.json.subject, 'carol');
        assert.equal(r3.json.ttl_seconds, 3600, 'ttl clamped to talos.max_cert_ttl');
        const certKey = new X509Certificate(r3.json.cert).publicKey.export({ type: 'spki', format: 'der' });
        assert.ok(certKey.equals(createPublicKey(readFileSync(csrKey)).export({ type: 'spki', format: 'der' })));
        const seen3 = await mtlsCall(apid.port, { cert: r3.json.cert, key: readFileSync(csrKey, 'utf8'), ca: ca.certPem });
        assert.equal(seen3.cn, 'carol');

        // Go's crypto/x509, as apid reads them: the three certificates in one judge run
        const reports = await goJudgeAll([r, r2, r3].map((x) => ({ cert: x.json.cert as string, ca: ca.certPem })));
        const expected = [
          { roles: r.json.roles as string[], commonName: 'alice@example.com', spkiDer: canonicalSpki(createPrivateKey(r.json.key as string)) },
          { roles: r2.json.roles as string[], commonName: 'bob@example.com', spkiDer: canonicalSpki(own.publicKey) },
          { roles: r3.json.roles as string[], commonName: 'carol', spkiDer: canonicalSpki(createPublicKey(readFileSync(csrKey))) },
        ];
        expected.forEach((e, i) => assertTalosClientCertificate(reports[i] as (typeof reports)[number], e, ['server-generated key', 'client public key', 'CSR'][i]));
        // and crypto/tls, as apid's listener: RequireAndVerifyClientCert against the Talos CA
        const keys = [r.json.key as string, own.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), readFileSync(csrKey, 'utf8')];
        for (const [i, x] of [r, r2, r3].entries()) {
          const seenByGo = await mtlsCall(goApid.port, { cert: x.json.cert as string, key: keys[i] as string, ca: goApid.serverCa });
          assert.deepEqual(seenByGo.organizations, expected[i]?.roles);
          assert.equal(seenByGo.cn, expected[i]?.commonName);
        }

        const certs = await g.admin('GET', '/api/v1/certs?active=true');
        assert.equal(certs.json.total, undefined, 'counted only on request');
        assert.equal((await g.admin('GET', '/api/v1/certs?active=true&total=true')).json.total, 3);
        assert.deepEqual(certs.json.certs.map((c: { subject: string }) => c.subject), ['carol', 'bob', 'alice']);
        assert.equal(certs.json.certs[2].client_ip, '127.0.0.1');
        assert.equal(certs.json.certs[2].issuer, idp.issuer);
        const lines = readFileSync(g.gate.config.audit_log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
        assert.equal(lines.filter((l) => l.type === 'cert_issued').length, 3, 'audit events as JSON lines in the audit_log file');
      } finally {
        await goApid.close();
        await apid.close();
        await g.close();
      }
    });
  }

  test('a certificate from another CA is refused by the mTLS server', async () => {
    const ca = makeTalosCa(dir, 'ed25519', 'cluster-a');
    const other = makeTalosCa(dir, 'ed25519', 'cluster-b');
    const g = await startTestGate(gateConfigFor(idp, other));
    const apid = await startApidLike(ca, dir);
    try {
      const alice = await idp.login('talos-gate', 'alice');
      const r = await exchange(g, { id_token: alice.id_token });
      assert.equal(r.status, 200);
      const refused = await mtlsCall(apid.port, { cert: r.json.cert, key: r.json.key, ca: ca.certPem }).then(
        () => undefined,
        (e: Error & { code?: string }) => e,
      );
      assert.ok(refused, 'the server must not answer a certificate from another CA');
      assert.match(`${refused.code} ${refused.message}`, /ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED|ALERT_UNKNOWN_CA|ALERT_BAD_CERTIFICATE|unknown ca|ECONNRESET|no answer from the server/i, refused.message);
      // Go agrees: a well-formed client certificate, of an authority it does not know
      const byGo = await goJudge(r.json.cert as string, ca.certPem);
      assert.equal(byGo.parseError, null);
      assert.match(byGo.verify.error ?? '', /unknown authority/, JSON.stringify(byGo.verify));
      assertTalosClientCertificate(await goJudge(r.json.cert as string, other.certPem), { roles: r.json.roles as string[], commonName: 'alice@example.com', spkiDer: canonicalSpki(createPrivateKey(r.json.key as string)) });
      // the same client with a certificate from the right CA is answered: the refusal was about the CA
      const good = startTestGate(gateConfigFor(idp, ca));
      const g2 = await good;
      try {
        const r2 = await exchange(g2, { id_token: alice.id_token });
        assert.deepEqual((await mtlsCall(apid.port, { cert: r2.json.cert, key: r2.json.key, ca: ca.certPem })).cn, 'alice@example.com');
        assertTalosClientCertificate(await goJudge(r2.json.cert as string, ca.certPem), { roles: r2.json.roles as string[], commonName: 'alice@example.com' });
      } finally {
        await g2.close();
      }
    } finally {
      await apid.close();
      await g.close();
    }
  });

  describe('refusals: clear error, audit event, no certificate', () => {
    let g: TestGate;
    let ca: TestCa;
    before(async () => {
      ca = makeTalosCa(dir, 'ed25519', 'negatives');
      g = await startTestGate(gateConfigFor(idp, ca));
    });
    after(() => g.close());

    const now = () => Math.floor(Date.now() / 1000);
    const claims = (over: Record<string, unknown> = {}) => ({ iss: idp.issuer, aud: 'talos-gate', sub: 'alice', email: 'alice@example.com', groups: ['talos-admins'], iat: now(), exp: now() + 300, ...over });

    const cases: [string, () => Promise<string>, number, RegExp][] = [
      ['a well-formed token signed by the IdP key is accepted (control)', async () => idp.sign(claims(), { alg: 'RS256' }), 200, /./],
      ['wrong issuer', async () => idp.sign(claims({ iss: 'https://evil.example.com' }), { alg: 'RS256' }), 401, /another issuer/],
      ['wrong audience (a real token for another client)', async () => (await idp.login('other-app', 'alice')).id_token, 401, /another audience/],
      ['expired', async () => idp.sign(claims({ iat: now() - 7200, exp: now() - 3600 }), { alg: 'ES256' }), 401, /expired/],
      ['not yet valid', async () => idp.sign(claims({ nbf: now() + 3600 }), { alg: 'RS256' }), 401, /not yet valid/],
      ['alg none', async () => idp.sign(claims(), { alg: 'none' }), 401, /algorithm|malformed/],
      // security review #10: a numeric sub gave 500
      ['a numeric sub', async () => idp.sign(claims({ sub: 42 }), { alg: 'RS256' }), 401, /sub claim must be a non-empty string/],
      ['an empty sub', async () => idp.sign(claims({ sub: '' }), { alg: 'RS256' }), 401, /sub/],
      ['HS256 signed with the IdP public key', async () => idp.sign(claims(), { alg: 'HS256-with-public-key' }), 401, /algorithm that is not allowed/],
      ['unknown kid', async () => idp.sign(claims(), { alg: 'RS256', kid: 'not-a-key' }), 401, /unknown key/],
      [
        'tampered payload',
        async () => {
          const [h, , s] = (await idp.sign(claims({ groups: ['devs'] }), { alg: 'RS256' })).split('.');
          return `${h}.${Buffer.from(JSON.stringify(claims())).toString('base64url')}.${s}`;
        },
        401,
        /signature is invalid/,
      ],
      ['no role maps', async () => (await idp.login('talos-gate', 'dave')).id_token, 403, /no Talos role/],
      ['not a JWT at all', async () => 'hello', 401, /malformed/],
    ];

    for (const [name, token, status, message] of cases) {
      test(name, async () => {
        const before = (await g.admin('GET', '/api/v1/stats')).json;
        const r = await exchange(g, { id_token: await token() });
        assert.equal(r.status, status, JSON.stringify(r.json));
        const after = (await g.admin('GET', '/api/v1/stats')).json;
        if (status === 200) {
          assert.equal(after.total_certs_issued, before.total_certs_issued + 1);
          assertTalosClientCertificate(await goJudge(r.json.cert as string, ca.certPem), { roles: ['os:admin'], commonName: 'alice@example.com', spkiDer: canonicalSpki(createPrivateKey(r.json.key as string)) });
          return;
        }
        assert.match(r.json.error_description, message);
        assert.equal(r.json.error, status === 401 ? 'invalid_token' : 'access_denied');
        assert.equal(r.json.cert, undefined);
        assert.equal(after.total_certs_issued, before.total_certs_issued, 'no certificate issued');
        assert.equal(after.auth_failures, before.auth_failures + 1, 'an auth_failure audit event');
      });
    }

    test('a blocked subject is refused at once, and again after unblock is accepted', async () => {
      const token = (await idp.login('talos-gate', 'alice')).id_token;
      const blocked = await g.admin('POST', '/api/v1/subjects/alice/block', { reason: 'left the company' });
      assert.equal(blocked.status, 200);
      const r = await exchange(g, { id_token: token });
      assert.equal(r.status, 403);
      assert.match(r.json.error_description, /blocked/);
      const list = await g.admin('GET', '/api/v1/subjects/blocked');
      assert.equal(list.json.subjects[0].reason, 'left the company');
      assert.equal((await g.admin('POST', '/api/v1/subjects/alice/unblock')).status, 200);
      assert.equal((await exchange(g, { id_token: token })).status, 200);
      const audit = await g.admin('GET', '/api/v1/audit?limit=50');
      const types = audit.json.events.map((e: { type: string }) => e.type);
      assert.ok(types.includes('subject_blocked') && types.includes('subject_unblocked'));
    });

    test('made-up kids do not make the gate fetch the JWKS for each request', async () => {
      const before = idp.hits('/jwks');
      for (let i = 0; i < 20; i++) {
        const r = await exchange(g, { id_token: await idp.sign(claims(), { alg: 'RS256', kid: `made-up-${i}` }) });
        assert.equal(r.status, 401);
      }
      assert.ok(idp.hits('/jwks') - before <= 1, `JWKS fetched ${idp.hits('/jwks') - before} times for 20 unknown kids`);
    });

    test('malformed requests get 400', async () => {
      const token = (await idp.login('talos-gate', 'alice')).id_token;
      assert.equal((await exchange(g, {})).status, 400);
      assert.equal((await exchange(g, { id_token: token, public_key: 'nope' })).status, 400);
      assert.equal((await exchange(g, { id_token: token, csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----' })).status, 400);
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const rsaKey = await exchange(g, { id_token: token, public_key: rsa.publicKey.export({ type: 'spki', format: 'pem' }) });
      assert.equal(rsaKey.status, 400);
      assert.match(rsaKey.json.error_description, /Ed25519 or ECDSA/);
      assert.equal((await exchange(g, { id_token: token, unknown: 1 })).status, 400);
      assert.equal((await exchange(g, { id_token: token }, { authorization: 'Bearer other' })).status, 400);
    });
  });

  test('CA checks at start: key must match, not be world-readable, and the certificate must be a CA', async () => {
    const a = makeTalosCa(dir, 'ed25519', 'check-a');
    const b = makeTalosCa(dir, 'p256', 'check-b');
    const fail = async (talos: Record<string, unknown>, re: RegExp) => {
      await assert.rejects(startTestGate({ ...gateConfigFor(idp, a), talos }), re);
    };
    await fail({ ca_cert: a.certPath, ca_key: b.keyPath }, /does not match the certificate/);
    const loose = join(dir, 'loose.key');
    writeFileSync(loose, readFileSync(a.keyPath), { mode: 0o644 });
    await fail({ ca_cert: a.certPath, ca_key: loose }, /readable by group or others/);
    const leaf = join(dir, 'leaf.crt');
    execFileSync('openssl', ['req', '-x509', '-new', '-key', a.opensslKeyPath, '-subj', '/CN=leaf', '-days', '1', '-addext', 'basicConstraints=critical,CA:FALSE', '-out', leaf]);
    await fail({ ca_cert: leaf, ca_key: a.keyPath }, /is not a CA certificate/);
  });
});
