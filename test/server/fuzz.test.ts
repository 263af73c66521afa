import assert from 'node:assert/strict';
import { createHash, createPrivateKey, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest, Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { request } from '../../cli/http.js';
import { TalosNode, talosConfigUrl } from '../../cli/talos-node.js';
import { SealedBox } from '../../server/secrets/sealed-box.js';
import { openSqliteStorage } from '../../server/storage/sqlite/index.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/gate.js';
import { startIdp } from '../helpers/idp.js';
import { makeTalosCa } from '../helpers/talos-ca.js';

// 5,000 generated bad requests across every public endpoint against a gate process: no 5xx, the gate
// still answers, the database is unchanged but for audit rows, and no secret shows in any response
// or in the gate's logs of the whole run.

function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INJECTIONS = ["' OR 1=1 --", '"; DROP TABLE nodes; --', '<script>alert(1)</script>', '../../../../etc/passwd', '${jndi:ldap://x/a}', '{{7*7}}', '\u0000', '%00', '\r\nSet-Cookie: x=1', '😀'.repeat(50)];

interface Raw {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

function generate(rand: () => number): Raw {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)] as T;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
  const b64 = (s: string) => Buffer.from(s).toString('base64url');
  const nearJwt = () =>
    pick([
      `${b64('{"alg":"none"}')}.${b64('{"sub":"x","iss":"http://127.0.0.1"}')}.`,
      `${b64('{"alg":"RS256","kid":"rs-1"}')}.${b64('{"sub":"admin","exp":9999999999}')}.${b64('sig')}`,
      `${b64('{"alg":"HS256"}')}.${b64('{}')}.${bytes(32).toString('base64url')}`,
      `${b64('{"alg":"EdDSA","kid":"x"}')}.${b64(JSON.stringify({ iss: 'https://127.0.0.1', gid: pick(INJECTIONS), sub: 'a' }))}.${b64('x')}`,
      'a.b',
      `${'e'.repeat(5000)}.${'e'.repeat(5000)}.${'e'.repeat(100)}`,
    ]);
  const junk = () => pick([pick(INJECTIONS), bytes(20).toString('latin1'), 'x'.repeat(Math.floor(rand() * 3000)), '', '${hostname}']);
  // what a client can put in a header at all: printable ASCII
  const headerJunk = () => junk().replace(/[^\x20-\x7e]/g, '?');
  const form = (fields: Record<string, string | string[]>) =>
    Object.entries(fields)
      .flatMap(([k, v]) => [v].flat().map((x) => `${encodeURIComponent(k)}=${encodeURIComponent(x)}`))
      .join('&');
  const ctForm = { 'content-type': 'application/x-www-form-urlencoded' };
  const ctJson = { 'content-type': 'application/json' };
  const kind = Math.floor(rand() * 14);
  switch (kind) {
    case 0: // random bytes to a form endpoint
      return { method: 'POST', path: pick(['/device/code', '/token', '/revoke']), headers: ctForm, body: bytes(Math.floor(rand() * 2000)) };
    case 1: // wrong or missing content types
      return { method: 'POST', path: pick(['/device/code', '/token', '/exchange', '/api/v1/device/approve']), headers: pick([{ 'content-type': 'text/xml' }, { 'content-type': 'multipart/form-data; boundary=x' }, {}, ctJson]), body: Buffer.from(junk()) };
    case 2: // huge bodies
      return { method: 'POST', path: pick(['/device/code', '/exchange', '/token']), headers: pick([ctForm, ctJson]), body: Buffer.alloc(300_000 + Math.floor(rand() * 100_000), 'a') };
    case 3: // truncated JSON
      return { method: 'POST', path: pick(['/exchange', '/api/v1/nodes', '/api/v1/device/approve']), headers: ctJson, body: Buffer.from('{"id_token": "abc", "public_key": "-----BEGIN'.slice(0, Math.floor(rand() * 40))) };
    case 4: // invalid UTF-8
      return { method: 'POST', path: pick(['/device/code', '/token']), headers: ctForm, body: Buffer.concat([Buffer.from('client_id=talos-node&uuid='), Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xff, 0xfe])]) };
    case 5: // duplicate parameters
      return { method: 'POST', path: pick(['/device/code', '/token']), headers: ctForm, body: Buffer.from(form({ client_id: ['talos-node', 'talos-node'], uuid: ['a', 'b'], grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: ['x', 'y'] })) };
    case 6: // injection strings and absurd uuids/macs: always invalid (no uuid format survives)
      return { method: 'POST', path: '/device/code', headers: ctForm, body: Buffer.from(form({ client_id: pick(['talos-node', junk()]), uuid: `${pick(INJECTIONS)}/${junk()}`, mac: junk(), hostname: junk() })) };
    case 7: // forged Basic headers at /token
      return {
        method: 'POST',
        path: '/token',
        headers: { ...ctForm, authorization: pick([`Basic ${bytes(30).toString('base64')}`, 'Basic', `Basic ${Buffer.from('talos-node').toString('base64')}`, `Basic ${Buffer.from(`%ZZ:${junk()}`).toString('base64')}`, `Bearer ${nearJwt()}`]) },
        body: Buffer.from(form({ grant_type: pick(['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token', 'password', junk()]), device_code: junk(), refresh_token: junk(), client_id: pick(['other', junk()]) })),
      };
    case 8: // JWTs that are almost right at /exchange
      return { method: 'POST', path: '/exchange', headers: { ...ctJson, authorization: `Bearer ${nearJwt()}` }, body: Buffer.from(JSON.stringify(pick([{}, { public_key: junk() }, { csr: `-----BEGIN CERTIFICATE REQUEST-----\n${bytes(100).toString('base64')}\n-----END CERTIFICATE REQUEST-----` }, { ttl_seconds: -1 }]))) };
    case 9: // /config with made-up tokens and absurd queries
      return { method: 'GET', path: `/config?uuid=${encodeURIComponent(junk())}&mac=${encodeURIComponent(junk())}&uuid=2`, headers: pick<Record<string, string>>([{ authorization: `Bearer ${headerJunk()}` }, { authorization: `Bearer ${nearJwt()}` }, {}]) };
    case 10: // the admin API with bad credentials
      return { method: pick(['GET', 'POST', 'DELETE', 'PUT']), path: pick(['/api/v1/nodes', `/api/v1/nodes/${encodeURIComponent(junk())}/approve`, '/api/v1/certs?limit=-5', '/api/v1/subjects/x/block', '/api/v1/stats']), headers: { ...ctJson, authorization: pick([`Bearer ${headerJunk()}`, `Bearer ${nearJwt()}`, `Basic ${bytes(10).toString('base64')}`, 'Bearer']) }, body: Buffer.from('{"profile":"worker"}') };
    case 11: // the web pages without a session or with forged cookies
      return {
        method: pick(['GET', 'POST']),
        path: pick(['/device', `/device?user_code=${encodeURIComponent(junk())}`, '/device/decision', '/auth/callback?code=x&state=y', `/auth/callback?error=${encodeURIComponent(junk())}`, '/nodes/x/revoke', '/']),
        headers: { ...ctForm, cookie: pick([`tg_session=${headerJunk()}`, `tg_csrf=${headerJunk()}`, `tg_session=${'a'.repeat(4000)}`, '']) },
        body: Buffer.from(form({ user_code: junk(), decision: pick(['approve', 'deny', junk()]), _csrf: junk() })),
      };
    case 12: // unknown routes and methods
      return { method: pick(['PATCH', 'OPTIONS', 'DELETE', 'GET']), path: pick(['/token', '/device/code', '/..%2f..%2fetc/passwd', `/${encodeURIComponent(junk())}`, '/.well-known/../api/v1/nodes']), headers: {} };
    default: // revocation with junk
      return { method: 'POST', path: '/revoke', headers: ctForm, body: Buffer.from(form({ token: junk(), client_id: pick(['talos-gate-cli', junk()]) })) };
  }
}

function send(base: URL, agent: Agent, r: Raw): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: base.hostname, port: base.port, method: r.method, path: r.path, agent, headers: { ...r.headers, ...(r.body ? { 'content-length': String(r.body.length) } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      },
    );
    req.on('error', reject);
    if (r.body) req.write(r.body);
    req.end();
  });
}

function snapshot(dbFile: string): Record<string, string> {
  const db = new Database(dbFile, { readonly: true });
  const out: Record<string, string> = {};
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[]).map((t) => t.name);
  for (const t of tables) {
    if (t === 'audit_events') continue;
    const rows = db.prepare(`SELECT * FROM ${t} ORDER BY rowid`).all();
    out[t] = createHash('sha256').update(JSON.stringify(rows)).digest('hex');
  }
  db.close();
  return out;
}

test('5,000 bad requests: no 5xx, nothing stored, no secret in any response or log line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-fuzz-'));
  const port = await freePort();
  const idp = await startIdp({
    users: [{ sub: 'fuzz', claims: { email: 'fuzz@example.com', groups: ['ops'] } }],
    clients: [{ client_id: 'talos-gate', redirect_uris: [`https://127.0.0.1:${port}/auth/callback`] }],
  });
  const ca = makeTalosCa(dir, 'ed25519', 'fuzz-ca');
  const adminToken = randomBytes(24).toString('hex');
  const file = join(dir, 'gate.yaml');
  const systemSecret = randomBytes(32).toString('hex');
  writeFileSync(
    file,
    stringify({
      listen: `127.0.0.1:${port}`,
      data_dir: join(dir, 'data'),
      admin_token: adminToken,
      secrets: { system: [systemSecret] },
      log_level: 'info',
      audit_log: 'stdout',
      device: { interval: '1s', max_pending_per_ip: 5 },
      oidc: { issuer_url: idp.issuer, client_id: 'talos-gate' },
      rbac: { rules: [{ claim: 'groups', value: 'ops', roles: ['os:operator'] }] },
      talos: { ca_cert: ca.certPath, ca_key: ca.keyPath },
      rate_limits: { device_code: 1_000_000, token: 1_000_000, exchange: 1_000_000, code_entry: 1_000_000, sign_in: 1_000_000 },
    }),
  );
  const serve = runCli(['serve', '--config', file]);
  const secrets: string[] = [adminToken];
  try {
    await serve.waitFor(/Try it without hardware/);
    const gateCa = readFileSync(join(dir, 'data', 'tls', 'ca.crt'), 'utf8');
    const base = new URL(`https://127.0.0.1:${port}`);

    // a real run first: a node enrolls and downloads its config, an operator exchanges an ID token
    const vars = { uuid: 'fuzz-real-node', mac: '52:54:00:00:f0:01' };
    let code = '';
    let deviceCode = '';
    const node = new TalosNode({ configUrl: talosConfigUrl(base.origin, vars), clientId: 'talos-node', variables: vars, ca: gateCa, onDeviceCode: (d) => ((code = d.user_code), (deviceCode = d.device_code)) });
    const run = node.run();
    while (!code) await new Promise((r) => setTimeout(r, 20));
    await request(`${base.origin}/api/v1/device/approve`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ user_code: code, profile: 'worker' }), ca: gateCa });
    const { token } = await run;
    const idToken = (await idp.login('talos-gate', 'fuzz')).id_token;
    const ex = JSON.parse((await request(`${base.origin}/exchange`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${idToken}` }, body: '{}', ca: gateCa })).body) as { key: string };
    secrets.push(deviceCode, token, idToken, ex.key.split('\n')[1] as string);
    for (const f of ['cookie-secret', join('tls', 'server.key'), join('tls', 'ca.key')]) {
      const text = readFileSync(join(dir, 'data', f), 'utf8');
      secrets.push(f.endsWith('.pem') || f.endsWith('.key') ? (text.split('\n')[1] as string) : text.trim());
    }
    // the gate-token signing key lives in the database, sealed (server/operators/signing-keys.ts)
    const keyDb = openSqliteStorage(join(dir, 'data', 'talos-gate.db'), { cipher: new SealedBox([systemSecret]) });
    for (const { privateKey } of await keyDb.listSigningKeys()) {
      const pem = createPrivateKey({ key: privateKey, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
      secrets.push(pem.split('\n')[1] as string);
    }
    await keyDb.close();

    const dbFile = join(dir, 'data', 'talos-gate.db');
    const before = snapshot(dbFile);
    const rand = prng(20261124);
    const agent = new Agent({ keepAlive: true, maxSockets: 16, ca: gateCa });
    const statuses: Record<number, number> = {};
    const fives: string[] = [];
    let i = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (i < 5000) {
          i++;
          const r = generate(rand);
          const res = await send(base, agent, r).catch((e: Error) => ({ status: -1, body: e.message, headers: {} }));
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
          if (res.status >= 500 || res.status < 0) fives.push(`${res.status} ${r.method} ${r.path.slice(0, 80)}: ${res.body.slice(0, 200)}`);
          for (const s of secrets) if (s && res.body.includes(s)) assert.fail(`a secret in the response to ${r.method} ${r.path.slice(0, 60)}`);
          assert.doesNotMatch(res.body, /at .*\.(ts|js):\d+:\d+/, 'no stack trace');
        }
      }),
    );
    agent.destroy();
    assert.deepEqual(fives, [], 'no 5xx and no dropped connection');
    assert.ok(Object.keys(statuses).every((s) => Number(s) >= 200 && Number(s) < 500), JSON.stringify(statuses));
    assert.equal((await request(`${base.origin}/healthz`, { ca: gateCa })).status, 200, 'still answering');
    assert.deepEqual(snapshot(dbFile), before, 'nothing but audit rows changed');
  } finally {
    serve.child.kill('SIGTERM');
    await serve.exit;
    await idp.close();
  }
  const logs = serve.stdout() + serve.stderr();
  assert.ok(logs.split('\n').length > 100, 'the gate logged the run');
  for (const s of secrets) assert.equal(s ? logs.includes(s) : false, false, `a secret (${s.slice(0, 6)}…) is in the logs`);
  assert.doesNotMatch(logs, /PRIVATE KEY/);
  assert.ok(readdirSync(join(dir, 'data')).includes('talos-gate.db'));
});
