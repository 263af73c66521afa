import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { request } from '../../cli/http.js';
import { TalosNode, talosConfigUrl } from '../../cli/talos-node.js';
import { runCli } from '../helpers/cli.js';
import { canonicalSpki } from '../helpers/der-writer.js';
import { startTestGate } from '../helpers/gate.js';
import { assertTalosClientCertificate, goJudge, startGoApid } from '../helpers/go-x509.js';
import { startIdp } from '../helpers/idp.js';
import { makeTalosCa, mtlsCall, opensslVerifyClient, startApidLike } from '../helpers/talos-ca.js';

test('a dedicated issuing CA: the gate never holds the cluster CA key, and nodes accept its certificates', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-issuing-'));
  const out = join(dir, 'issuing');
  const init = runCli(['ca', 'init', '--out', out, '--name', 'lab issuing CA']);
  assert.equal(await init.exit, 0, init.stderr());
  assert.match(init.stdout(), /issuing_ca_cert: .*issuing-ca\.crt/);
  assert.equal(statSync(join(out, 'issuing-ca.key')).mode & 0o777, 0o600);
  const again = runCli(['ca', 'init', '--out', out]);
  assert.equal(await again.exit, 1, 'never overwrites an existing CA');
  assert.match(again.stderr(), /already exists/);

  const osCa = makeTalosCa(dir, 'ed25519', 'os');
  const issuingPem = readFileSync(join(out, 'issuing-ca.crt'), 'utf8');
  const issuing = { kind: 'ed25519' as const, certPath: join(out, 'issuing-ca.crt'), keyPath: join(out, 'issuing-ca.key'), opensslKeyPath: join(out, 'issuing-ca.key'), certPem: issuingPem };
  const idp = await startIdp({
    users: [{ sub: 'alice', claims: { email: 'alice@example.com', groups: ['ops'] } }],
    clients: [{ client_id: 'talos-gate', redirect_uris: ['http://127.0.0.1:9/cb'] }],
  });
  const g = await startTestGate({
    oidc: { issuer_url: idp.issuer, client_id: 'talos-gate' },
    rbac: { rules: [{ claim: 'groups', value: 'ops', roles: ['os:operator'] }] },
    talos: { ca_cert: osCa.certPath, issuing_ca_cert: issuing.certPath, issuing_ca_key: issuing.keyPath },
    audit_log: 'off',
  });
  const apid = await startApidLike(osCa, dir, [issuingPem]);
  try {
    const token = (await idp.login('talos-gate', 'alice')).id_token;
    const res = await request(`${g.url}/exchange`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id_token: token }), ca: g.ca });
    assert.equal(res.status, 200, res.body);
    const r = JSON.parse(res.body) as { ca: string; cert: string; key: string };
    assert.equal(r.ca.trim(), osCa.certPem.trim(), 'talosctl still trusts the cluster CA that nodes present');
    assert.match(opensslVerifyClient(issuing, r.cert, dir), /: OK/);
    assert.throws(() => opensslVerifyClient(osCa, r.cert, dir), 'not signed by the cluster CA');
    const seen = await mtlsCall(apid.port, { cert: r.cert, key: r.key, ca: r.ca });
    assert.deepEqual(seen.organizations, ['os:operator']);
    // Go, as apid: a Talos client certificate of the issuing CA, and not of the cluster CA
    assertTalosClientCertificate(await goJudge(r.cert, issuingPem), { roles: ['os:operator'], commonName: 'alice@example.com', spkiDer: canonicalSpki(createPrivateKey(r.key)) });
    assert.match((await goJudge(r.cert, osCa.certPem)).verify.error ?? '', /unknown authority/, 'Go does not chain it to the cluster CA');
    // and Go's crypto/tls trusting the cluster CA plus the accepted issuing CA lets it in
    const goApid = await startGoApid(osCa.certPem + issuingPem);
    try {
      assert.deepEqual((await mtlsCall(goApid.port, { cert: r.cert, key: r.key, ca: goApid.serverCa })).organizations, ['os:operator']);
    } finally {
      await goApid.close();
    }

    // machine configs served by the gate carry the issuing CA in machine.acceptedCAs
    const vars = { uuid: 'accepted-cas-node', mac: '52:54:00:00:0a:0a' };
    let code = '';
    const node = new TalosNode({ configUrl: talosConfigUrl(g.url, vars), clientId: 'talos-node', variables: vars, ca: g.ca, onDeviceCode: (d) => (code = d.user_code) });
    const run = node.run();
    while (!code) await new Promise((r2) => setTimeout(r2, 20));
    assert.equal((await g.admin('POST', '/api/v1/device/approve', { user_code: code, profile: 'worker' })).status, 200);
    const cfg = parse((await run).config);
    assert.deepEqual(cfg.machine.acceptedCAs, [{ crt: Buffer.from(issuingPem).toString('base64') }]);
  } finally {
    await apid.close();
    await g.close();
    await idp.close();
  }
});
