import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from '../../cli/http.js';
import { ConfigError, loadConfig } from '../../server/config/load.js';
import { TALOS_MAKES_THE_KEY } from '../../server/exchange/service.js';
import { TALOS_API_REPROBE_MS } from '../../server/signing/talos-api.js';
import { canonicalSpki } from '../helpers/der-writer.js';
import { startFakeApid, startSilentPort, startStallingProxy, type FakeApid } from '../helpers/fake-apid.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';
import { assertTalosClientCertificate, goJudge, startGoApid, type GoApid } from '../helpers/go-x509.js';
import { startIdp, type TestIdp } from '../helpers/idp.js';
import { mtlsCall } from '../helpers/talos-ca.js';

// talos.signer: talos-api through a real gate: real ID tokens from the oidc-provider IdP, a fake apid
// of our own (test/helpers/fake-apid.ts) that signs with its own Ed25519 CA, Go's crypto/x509 and a
// Go mTLS server trusting that CA as the judges of what the gate hands on.

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-signer-'));

const rbac = {
  rules: [
    { claim: 'groups', value: 'talos-admins', roles: ['os:admin'] },
    { claim: 'groups', value: 'ops', roles: ['os:operator'] },
    { claim: 'groups', value: 'devs', roles: ['os:reader'] },
  ],
};

async function exchange(g: TestGate, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const started = Date.now();
  const res = await request(`${g.url}/exchange`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    ca: g.ca,
  });
  return { status: res.status, headers: res.headers, ms: Date.now() - started, json: JSON.parse(res.body) as Record<string, any> }; // any: response fields read per test
}

async function readyz(g: TestGate) {
  const res = await request(`${g.url}/readyz`, { ca: g.ca });
  return { status: res.status, json: JSON.parse(res.body) as { status: string; checks: Record<string, string> } };
}

async function until<T>(what: string | (() => string), f: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Waits for /readyz to say the Talos API signs. The start-up probe has the test's 1 s deadline, which
 * a loaded CI machine can miss (the first gRPC dial and TLS handshake); /readyz then probes again
 * after TALOS_API_REPROBE_MS, so the wait covers one re-probe, and a timeout names the last check it saw.
 */
async function untilTalosApiOk(g: TestGate, what: string): Promise<void> {
  let last = '(no answer yet)';
  await until(
    () => `${what}; the last /readyz talos_api was ${JSON.stringify(last)}`,
    async () => {
      last = (await readyz(g)).json.checks.talos_api ?? '(absent)';
      return last === 'ok' ? true : undefined;
    },
    TALOS_API_REPROBE_MS + 5_000,
  );
}

describe('talos.signer: talos-api', () => {
  let idp: TestIdp;
  let fake: FakeApid;
  let goApid: GoApid;
  let g: TestGate;
  let talosconfig: string;

  const gateConfig = (file: string, endpoints: string[], extra: Record<string, unknown> = {}) => ({
    oidc: { issuer_url: idp.issuer, client_id: 'talos-gate' },
    rbac,
    talos: { signer: 'talos-api', endpoints: ['10.0.0.10'], api: { endpoints, talosconfig: file, timeout: '1s' } },
    ...extra,
  });

  before(async () => {
    idp = await startIdp({
      users: [
        { sub: 'alice', claims: { email: 'alice@example.com', groups: ['talos-admins', 'devs'] } },
        { sub: 'bob', claims: { email: 'bob@example.com', groups: ['ops'] } },
        { sub: 'mallory', claims: { email: 'mallory@example.com', groups: ['ops'] } },
        { sub: 'dave', claims: { email: 'dave@example.com', groups: ['marketing'] } },
      ],
      clients: [{ client_id: 'talos-gate', redirect_uris: ['http://127.0.0.1:9/callback'] }],
    });
    fake = await startFakeApid();
    goApid = await startGoApid(fake.ca.pem);
    talosconfig = join(dir, 'gate-talosconfig');
    fake.writeTalosconfig(talosconfig, ['os:admin']);
    g = await startTestGate(gateConfig(talosconfig, [fake.endpoint]));
  });
  after(async () => {
    await g?.close();
    await goApid?.close();
    await fake?.close();
    await idp?.close();
  });

  test('Talos signs: Go verifies against the fake\'s CA, a Go mTLS server sees the roles; recorded and audited; no CA key anywhere', async () => {
    const config = readFileSync(g.configFile, 'utf8');
    assert.doesNotMatch(config, /ca_key|ca_cert|issuing_ca/, 'the gate\'s config names no CA file');
    assert.equal(g.gate.config.talos.ca_key, undefined);

    const discovery = JSON.parse((await request(`${g.url}/.well-known/talos-gate`, { ca: g.ca })).body) as Record<string, unknown>;
    assert.equal(discovery.signer, 'talos-api');
    assert.equal(discovery.client_keys, false);

    await untilTalosApiOk(g, 'the start-up probe');
    const calls = fake.calls.length;
    const token = (await idp.login('talos-gate', 'alice')).id_token;
    const r = await exchange(g, { id_token: token, ttl_seconds: 120 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.roles, ['os:admin', 'os:reader']);
    assert.equal(r.json.subject, 'alice@example.com');
    assert.equal(r.json.ca, fake.ca.pem, 'the CA the gate\'s talosconfig trusts apid with');
    assert.deepEqual(r.json.endpoints, ['10.0.0.10']);
    assert.match(r.json.key, /^-----BEGIN PRIVATE KEY-----\n/, 'Talos\' "ED25519 PRIVATE KEY" handed on as PKCS#8');
    assert.ok(r.json.ttl_seconds <= 120 && r.json.ttl_seconds >= 115, `ttl ${r.json.ttl_seconds}`);

    const call = fake.calls[calls];
    assert.ok(call && fake.calls.length === calls + 1, 'one call to Talos');
    assert.deepEqual(call.roles, ['os:admin', 'os:reader']);
    assert.equal(call.ttlMs, 120_000);
    assert.deepEqual(call.peerRoles, ['os:admin'], 'the gate called with its own os:admin credential');
    assert.deepEqual(call.nodes, [], 'no "nodes" metadata: the endpoint itself signs');

    const x = new X509Certificate(r.json.cert);
    assert.equal(x.fingerprint256.replace(/:/g, '').toLowerCase(), r.json.fingerprint);
    assert.equal(x.serialNumber.toLowerCase(), r.json.serial);
    assertTalosClientCertificate(await goJudge(r.json.cert, fake.ca.pem), {
      roles: ['os:admin', 'os:reader'],
      commonName: null,
      spkiDer: canonicalSpki(createPrivateKey(r.json.key)),
    });
    const seen = await mtlsCall(goApid.port, { cert: r.json.cert, key: r.json.key, ca: goApid.serverCa });
    assert.deepEqual(seen.organizations, ['os:admin', 'os:reader']);

    const certs = await g.admin('GET', '/api/v1/certs?subject=alice');
    const rec = certs.json.certs.find((c: { serial: string }) => c.serial === r.json.serial);
    assert.ok(rec, 'the certificate is recorded');
    assert.equal(rec.fingerprint, r.json.fingerprint);
    assert.deepEqual(rec.roles, ['os:admin', 'os:reader']);
    const audit = await g.admin('GET', '/api/v1/audit?limit=20');
    const issued = audit.json.events.find((e: { type: string; detail: { serial?: string } }) => e.type === 'cert_issued' && e.detail.serial === r.json.serial);
    assert.ok(issued, 'a cert_issued audit event');
    assert.equal(issued.detail.signer, 'talos-api');
  });

  test('public_key and csr are refused with the documented sentence, and Talos is not asked', async () => {
    const token = (await idp.login('talos-gate', 'bob')).id_token;
    const calls = fake.calls.length;
    const own = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' });
    const withKey = await exchange(g, { id_token: token, public_key: own });
    assert.equal(withKey.status, 400);
    assert.equal(withKey.json.error, 'invalid_request');
    assert.equal(withKey.json.error_description, TALOS_MAKES_THE_KEY);
    const csrKey = join(dir, 'csr.key');
    execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', csrKey]);
    const csr = execFileSync('openssl', ['req', '-new', '-key', csrKey, '-subj', '/CN=bob']).toString();
    const withCsr = await exchange(g, { id_token: token, csr });
    assert.equal(withCsr.status, 400);
    assert.equal(withCsr.json.error_description, TALOS_MAKES_THE_KEY);
    assert.match(readFileSync(new URL('../../docs/certificate-exchange.md', import.meta.url), 'utf8'), new RegExp(TALOS_MAKES_THE_KEY.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'docs/certificate-exchange.md quotes it');
    assert.equal(fake.calls.length, calls);
    assert.equal((await exchange(g, { id_token: token })).status, 200, 'without a key it works');
  });

  test('RBAC and blocks still apply: no role is 403, a blocked subject is refused before Talos is asked', async () => {
    const calls = fake.calls.length;
    const dave = await exchange(g, { id_token: (await idp.login('talos-gate', 'dave')).id_token });
    assert.equal(dave.status, 403);
    assert.match(dave.json.error_description, /no Talos role/);
    assert.equal((await g.admin('POST', '/api/v1/subjects/mallory/block', { reason: 'test' })).status, 200);
    const mallory = await exchange(g, { id_token: (await idp.login('talos-gate', 'mallory')).id_token });
    assert.equal(mallory.status, 403);
    assert.match(mallory.json.error_description, /blocked/);
    assert.equal(fake.calls.length, calls, 'Talos was not asked for either');
    const stats = await g.admin('GET', '/api/v1/certs?subject=mallory');
    assert.equal(stats.json.certs.length, 0);
  });

  const misbehaviours: [string, FakeApid['misbehave'], RegExp][] = [
    ['extra roles', { extraRoles: ['os:etcd:backup'] }, /for roles \[os:etcd:backup, os:operator\], not the requested \[os:operator\]/],
    ['a longer lifetime', { longerByMs: 3_600_000 }, /lives longer than asked/],
    ['another CA', { wrongCa: true }, /not issued by the expected Talos CA/],
    ['a key that is not the certificate\'s', { otherKey: true }, /private key does not match/],
    ['an error in the answer\'s metadata', { metadataError: 'node cp-2: unavailable' }, /Talos reported an error/],
  ];
  for (const [what, misbehave, reason] of misbehaviours) {
    test(`a Talos answer with ${what} is refused: 502, audited, nothing recorded`, async () => {
      const token = (await idp.login('talos-gate', 'bob')).id_token;
      const before = (await g.admin('GET', '/api/v1/stats')).json;
      Object.assign(fake.misbehave, misbehave);
      let r;
      try {
        r = await exchange(g, { id_token: token });
      } finally {
        for (const k of Object.keys(misbehave)) delete fake.misbehave[k as keyof typeof misbehave];
      }
      assert.equal(r.status, 502, JSON.stringify(r.json));
      assert.equal(r.json.error, 'bad_gateway');
      assert.match(r.json.error_description, reason);
      assert.equal(r.json.cert, undefined);
      const stats = (await g.admin('GET', '/api/v1/stats')).json;
      assert.equal(stats.total_certs_issued, before.total_certs_issued, 'nothing recorded');
      assert.equal(stats.cert_errors, before.cert_errors + 1, 'a cert_error audit event');
      const audit = await g.admin('GET', '/api/v1/audit?limit=5');
      const ev = audit.json.events.find((e: { type: string }) => e.type === 'cert_error');
      assert.equal(ev.subject, 'bob');
      assert.equal(ev.detail.signer, 'talos-api');
      assert.match(ev.detail.reason, reason);
    });
  }

  test('apid down: 503 with Retry-After within 3 s, and /readyz says so; back up, it signs again', async () => {
    const token = (await idp.login('talos-gate', 'bob')).id_token;
    await fake.stop();
    try {
      const r = await exchange(g, { id_token: token });
      assert.equal(r.status, 503, JSON.stringify(r.json));
      assert.ok(r.ms < 3000, `answered in ${r.ms} ms`);
      assert.equal(r.json.error, 'temporarily_unavailable');
      assert.match(r.json.error_description, /Talos API cannot be reached/);
      assert.ok(Number(r.headers['retry-after']) >= 1, `Retry-After ${r.headers['retry-after']}`);
      const ready = await readyz(g);
      assert.equal(ready.status, 503);
      assert.match(ready.json.checks.talos_api ?? '', /^failed: the Talos API cannot be reached/);
    } finally {
      await fake.start();
    }
    const again = await until('a signature after apid is back', async () => {
      const r = await exchange(g, { id_token: token });
      return r.status === 200 ? r : undefined;
    });
    assert.deepEqual(again.json.roles, ['os:operator']);
  });

  test('endpoints are tried in turn: a silent one costs its deadline, then the next signs; only silent ones: 503, never a hang', async () => {
    const silent = await startSilentPort();
    const both = await startTestGate(gateConfig(talosconfig, [silent.endpoint, fake.endpoint]));
    const onlySilent = await startTestGate(gateConfig(talosconfig, [silent.endpoint]));
    try {
      const token = (await idp.login('talos-gate', 'bob')).id_token;
      const r = await exchange(both, { id_token: token });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.ok(r.ms < 3000, `answered in ${r.ms} ms`);
      const down = await exchange(onlySilent, { id_token: token });
      assert.equal(down.status, 503, JSON.stringify(down.json));
      assert.ok(down.ms < 3000, `answered in ${down.ms} ms`);
      assert.ok(down.headers['retry-after']);
    } finally {
      await both.close();
      await onlySilent.close();
      await silent.close();
    }
  });

  test('apid hangs with its connection up (nothing read, nothing answered): every exchange gets 503 within its deadline; once apid answers, the gate dials again and signs', async () => {
    const proxy = await startStallingProxy(fake.endpoint);
    const gs = await startTestGate(gateConfig(talosconfig, [proxy.endpoint]));
    try {
      await untilTalosApiOk(gs, 'the start-up probe through the proxy');
      const token = (await idp.login('talos-gate', 'bob')).id_token;
      assert.equal((await exchange(gs, { id_token: token })).status, 200, 'signs through the proxy');
      const dialed = proxy.connections;

      proxy.stall();
      // more exchanges at once than one answer holds: the HTTP/2 connection is up and stuck
      const stuck = await Promise.all(Array.from({ length: 8 }, () => exchange(gs, { id_token: token })));
      for (const r of stuck) {
        assert.equal(r.status, 503, JSON.stringify(r.json));
        assert.equal(r.json.error, 'temporarily_unavailable');
        assert.match(r.json.error_description, /Talos API cannot be reached/);
        assert.ok(Number(r.headers['retry-after']) >= 1, `Retry-After ${r.headers['retry-after']}`);
        assert.ok(r.ms < 3000, `answered in ${r.ms} ms (talos.api.timeout 1s, one endpoint)`);
      }
      assert.match((await readyz(gs)).json.checks.talos_api ?? '', /^failed: the Talos API cannot be reached/);

      // apid answers again on new connections; the stuck one stays stuck, so only a gate that gives it up signs
      proxy.pass();
      const again = await until('a signature after apid answers again', async () => {
        const r = await exchange(gs, { id_token: token });
        return r.status === 200 ? r : undefined;
      });
      assert.deepEqual(again.json.roles, ['os:operator']);
      assert.ok(proxy.connections > dialed, 'the gate dialed apid again instead of reusing the stuck connection');
    } finally {
      await gs.close();
      await proxy.close();
    }
  });

  test('a credential without os:admin: /readyz says so at start, exchanges get 502; a rotated talosconfig is picked up without a restart', async () => {
    const file = join(dir, 'reader-talosconfig');
    fake.writeTalosconfig(file, ['os:reader']);
    const gr = await startTestGate(gateConfig(file, [fake.endpoint]));
    try {
      const ready = await until('the start-up probe', async () => {
        const r = await readyz(gr);
        return r.json.checks.talos_api?.startsWith('failed') ? r : undefined;
      });
      assert.equal(ready.status, 503);
      assert.match(ready.json.checks.talos_api ?? '', /PermissionDenied.*os:admin.*roles \[os:reader\]/);
      const token = (await idp.login('talos-gate', 'bob')).id_token;
      const r = await exchange(gr, { id_token: token });
      assert.equal(r.status, 502);
      assert.equal(r.json.error, 'bad_gateway');
      assert.match(r.json.error_description, /refused GenerateClientConfiguration \(PermissionDenied\): it needs os:admin/);

      // the ServiceAccount's secret is rotated (a rename, as Kubernetes swaps it): a new certificate with os:admin
      fake.writeTalosconfig(file, ['os:admin']);
      const ok = await until('the rotated credential', async () => {
        const x = await exchange(gr, { id_token: token });
        return x.status === 200 ? x : undefined;
      });
      assert.deepEqual(ok.json.roles, ['os:operator']);
      const last = fake.calls[fake.calls.length - 1];
      assert.deepEqual(last?.peerRoles, ['os:admin'], 'the new credential was used');
      const firstSerial = last?.peerSerial;
      // and once more: another new certificate, again without a restart
      fake.writeTalosconfig(file, ['os:admin']);
      await until('the second rotation', async () => {
        const x = await exchange(gr, { id_token: token });
        return x.status === 200 && fake.calls[fake.calls.length - 1]?.peerSerial !== firstSerial ? x : undefined;
      });
      assert.equal((await readyz(gr)).json.checks.talos_api, 'ok');
    } finally {
      await gr.close();
    }
  });

  test('config: CA files are refused with talos-api, a talosconfig is required, $TALOSCONFIG is its default', () => {
    const write = (name: string, text: string) => {
      const f = join(dir, name);
      writeFileSync(f, text);
      return f;
    };
    const key = write('some.key', 'x');
    const mixed = write('mixed.yaml', `talos:\n  signer: talos-api\n  ca_key: ${key}\n  api:\n    talosconfig: ${talosconfig}\n`);
    assert.throws(() => loadConfig(mixed, {}), (e: unknown) => e instanceof ConfigError && e.key === 'talos.ca_key' && /not used with talos.signer: talos-api/.test(e.problem));
    const none = write('none.yaml', 'talos:\n  signer: talos-api\n');
    assert.throws(() => loadConfig(none, {}), (e: unknown) => e instanceof ConfigError && e.key === 'talos.api.talosconfig' && /TALOSCONFIG/.test(e.problem));
    assert.equal(loadConfig(none, { TALOSCONFIG: talosconfig }).talos.api.talosconfig, talosconfig);
    const apiWithCa = write('api-with-ca.yaml', `talos:\n  api:\n    talosconfig: ${talosconfig}\n`);
    assert.throws(() => loadConfig(apiWithCa, {}), (e: unknown) => e instanceof ConfigError && e.key === 'talos.api' && /only used with talos.signer: talos-api/.test(e.problem));
    const bad = write('bad-endpoint.yaml', `talos:\n  signer: talos-api\n  api:\n    talosconfig: ${talosconfig}\n    endpoints: ["not a host"]\n`);
    assert.throws(() => loadConfig(bad, {}), (e: unknown) => e instanceof ConfigError && e.key === 'talos.api.endpoints[0]');
  });

  test('a broken talosconfig stops the gate at start, naming the file', async () => {
    const file = join(dir, 'broken-talosconfig');
    writeFileSync(file, 'context: gate\ncontexts:\n  gate:\n    ca: bm9wZQ==\n');
    await assert.rejects(startTestGate(gateConfig(file, [fake.endpoint])), (e: Error) => e.message.includes(file) && /context gate: ca is not base64 PEM/.test(e.message));
  });
});
