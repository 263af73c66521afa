import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { test } from 'node:test';
import { ensureSelfSignedTls, serverNames } from '../../server/tls/self-signed.js';
import { X509Certificate } from 'node:crypto';
import { request } from '../../cli/http.js';
import { startTestGate } from '../helpers/gate.js';

test('self-signed mode: an ECDSA CA and a server certificate that openssl verifies strictly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-tls-'));
  const names = serverNames('https://gate.example.com:8443', '0.0.0.0:8443');
  assert.deepEqual(names.sort(), ['127.0.0.1', '::1', 'gate.example.com', 'localhost']);
  const first = ensureSelfSignedTls(dir, names);
  const tls = join(dir, 'tls');
  const out = execFileSync('openssl', ['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', join(tls, 'ca.crt'), join(tls, 'server.crt')]).toString();
  assert.match(out, /server\.crt: OK/);
  const text = execFileSync('openssl', ['x509', '-in', join(tls, 'server.crt'), '-noout', '-text']).toString();
  assert.match(text, /DNS:gate\.example\.com/);
  assert.match(text, /IP Address:127\.0\.0\.1/);
  assert.match(text, /TLS Web Server Authentication/);
  assert.match(text, /ecdsa-with-SHA256/);
  assert.equal(statSync(join(tls, 'ca.key')).mode & 0o777, 0o600);
  assert.equal(statSync(join(tls, 'server.key')).mode & 0o777, 0o600);
  assert.equal(statSync(tls).mode & 0o777, 0o700);

  const again = ensureSelfSignedTls(dir, names);
  assert.equal(again.cert, first.cert, 'kept across restarts');
  const renamed = ensureSelfSignedTls(dir, [...names, 'gate2.example.com']);
  assert.notEqual(renamed.cert, first.cert, 'made again when the names change');
  assert.equal(renamed.caPem, first.caPem, 'the CA stays, so pinned clients keep working');
});

test('the gate serves that certificate and clients pinning the CA connect', async () => {
  const g = await startTestGate({ tls: { extra_sans: ['gate.lab.internal', '10.9.8.7'] } });
  try {
    const port = Number(new URL(g.url).port);
    const peer = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, ca: g.ca, servername: 'localhost' }, () => {
        resolve(s.getPeerX509Certificate()?.toString() ?? '');
        s.end();
      });
      s.on('error', reject);
    });
    assert.equal(peer, readFileSync(join(g.gate.config.data_dir, 'tls', 'server.crt'), 'utf8'));
    assert.match(new X509Certificate(peer).subjectAltName ?? '', /DNS:gate\.lab\.internal.*IP Address:10\.9\.8\.7|IP Address:10\.9\.8\.7.*DNS:gate\.lab\.internal/);
    const served = await request(`${g.url}/ca`, { ca: g.ca });
    assert.equal(served.body, g.ca, 'GET /ca serves the CA to pin');
    assert.equal(new X509Certificate(served.body).fingerprint256, g.gate.tls?.caFingerprint);
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port, servername: 'localhost' }, () => resolve(s));
        s.on('error', reject);
      }),
      /self-signed|unable to (get|verify)/,
      'without the pinned CA the certificate is not trusted',
    );
  } finally {
    await g.close();
  }
});
