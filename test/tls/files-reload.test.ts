import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { test } from 'node:test';
import { startTestGate } from '../helpers/gate.js';

function makeServerCert(dir: string, name: string): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key };
}

function servedCn(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(new X509Certificate(s.getPeerX509Certificate()?.raw ?? Buffer.alloc(0)).subject);
      s.end();
    });
    s.on('error', reject);
  });
}

async function eventually(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

test('tls.mode files: new files are served without a restart; broken ones are refused and the old stays', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-tlsfiles-'));
  const a = makeServerCert(dir, 'cert-a');
  const b = makeServerCert(dir, 'cert-b');
  const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
  copyFileSync(a.cert, live.cert);
  copyFileSync(a.key, live.key);
  const g = await startTestGate({ tls: { mode: 'files', cert: live.cert, key: live.key } });
  try {
    const port = Number(new URL(g.url).port);
    assert.equal(await servedCn(port), 'CN=cert-a');
    writeFileSync(live.cert, '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n');
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(await servedCn(port), 'CN=cert-a', 'a broken file is not taken');
    writeFileSync(live.key, readFileSync(b.key));
    writeFileSync(live.cert, readFileSync(b.cert));
    assert.ok(await eventually(async () => (await servedCn(port)) === 'CN=cert-b', 6000), 'the new certificate is served');
  } finally {
    await g.close();
  }
});
