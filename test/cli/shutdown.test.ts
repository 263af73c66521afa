import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { request } from '../../cli/http.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/gate.js';

test('SIGTERM: the request in flight is answered, the database is closed cleanly, exit 0', async () => {
  // an IdP that accepts connections and never answers: /readyz then takes its full 3 s
  const blackHole = createServer(() => {});
  await new Promise<void>((r) => blackHole.listen(0, '127.0.0.1', r));
  const idpPort = (blackHole.address() as { port: number }).port;
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-shutdown-'));
  const port = await freePort();
  const file = join(dir, 'gate.yaml');
  writeFileSync(file, stringify({ listen: `127.0.0.1:${port}`, data_dir: join(dir, 'data'), admin_token: randomBytes(24).toString('hex'), secrets: { system: [randomBytes(32).toString('hex')] }, log_level: 'warn', audit_log: 'off', oidc: { issuer_url: `http://127.0.0.1:${idpPort}`, client_id: 'x' } }));
  const serve = runCli(['serve', '--config', file]);
  try {
    await serve.waitFor(/Try it without hardware/);
    const ca = readFileSync(join(dir, 'data', 'tls', 'ca.crt'), 'utf8');
    const inFlight = request(`https://127.0.0.1:${port}/readyz`, { ca });
    await new Promise((r) => setTimeout(r, 300));
    serve.child.kill('SIGTERM');
    const res = await inFlight;
    assert.equal(res.status, 503, 'answered although the gate was told to stop');
    assert.match(res.body, /"idp":"failed/);
    assert.equal(await serve.exit, 0);
    const wal = join(dir, 'data', 'talos-gate.db-wal');
    assert.ok(!existsSync(wal) || statSync(wal).size === 0, 'the database was closed (WAL checkpointed)');
  } finally {
    serve.child.kill('SIGKILL');
    blackHole.close();
  }
});
