import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { request } from '../../cli/http.js';
import { talosConfigUrl } from '../../cli/talos-node.js';
import { bootNode } from '../helpers/boot-node.js';
import { launchChromium } from '../helpers/browser.js';
import { runCli } from '../helpers/cli.js';
import { approveCliLogin, operatorWorkstation } from '../helpers/cli-login.js';
import { freePort, startTestGate, type TestGate } from '../helpers/gate.js';
import { startIdp, type TestIdp } from '../helpers/idp.js';
import { createTestDatabase, testServerUrl, type TestDatabase } from '../helpers/postgres.js';
import { makeTalosCa, type TestCa } from '../helpers/talos-ca.js';

// Moving up, the whole way: a real gate on SQLite enrolls nodes over the device flow, an operator
// logs in with the CLI (device flow, approved in chromium) and exchanges ID tokens; the gate stops,
// `talos-gate db migrate` copies its database into a fresh PostgreSQL database, and a gate started
// on PostgreSQL with the same config and data_dir (signing key, cookie secret, TLS material) serves
// the migrated nodes their configs byte for byte and takes the operator's refresh token.

testServerUrl();

const NODES = [
  { uuid: 'aaaaaaaa-0000-4000-8000-00000000000a', mac: '52:54:00:00:00:0a', profile: 'controlplane' },
  { uuid: 'bbbbbbbb-0000-4000-8000-00000000000b', mac: '52:54:00:00:00:0b', profile: 'worker' },
];

let idp: TestIdp;
let ca: TestCa;
let browser: Browser;
let port: number;
let dir: string;
let sqliteGate: TestGate;
let pgGate: TestGate | undefined;
let target: TestDatabase;

function gateConfig() {
  return {
    listen: `127.0.0.1:${port}`,
    oidc: { issuer_url: idp.issuer, client_id: 'talos-gate', cli_client_id: 'talos-gate-cli', scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'] },
    rbac: { rules: [{ claim: 'groups', value: 'ops', roles: ['os:operator'] }] },
    talos: { ca_cert: ca.certPath, ca_key: ca.keyPath, endpoints: ['10.0.0.10'] },
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'talos-gate-db-migrate-gate-'));
  port = await freePort();
  idp = await startIdp({
    users: [{ sub: 'otto', label: 'Otto', claims: { email: 'otto@example.com', groups: ['ops'] } }],
    clients: [
      { client_id: 'talos-gate', redirect_uris: [`https://127.0.0.1:${port}/auth/callback`] },
      { client_id: 'talos-gate-cli', redirect_uris: ['http://127.0.0.1/callback'], application_type: 'native' },
    ],
  });
  ca = makeTalosCa(dir, 'ed25519', 'migrate-ca');
  browser = await launchChromium();
  sqliteGate = await startTestGate(gateConfig());
  target = await createTestDatabase();
});
after(async () => {
  await pgGate?.close();
  await sqliteGate?.gate.close().catch(() => undefined); // stopped by the test already, normally
  await sqliteGate?.close();
  await target?.drop();
  await browser?.close();
  await idp?.close();
});

async function enroll(g: TestGate, n: (typeof NODES)[number]): Promise<{ config: string; token: string }> {
  const { da, result } = bootNode(g, n);
  const { user_code } = await da;
  const approved = await g.admin('POST', '/api/v1/device/approve', { user_code, profile: n.profile });
  assert.equal(approved.status, 200, JSON.stringify(approved.json));
  return result;
}

async function deviceLogin(g: TestGate, name: string): Promise<string> {
  const ws = operatorWorkstation(dir, name);
  const caFile = join(dir, 'gate-ca.crt');
  (await import('node:fs')).writeFileSync(caFile, g.ca);
  const run = ws.cli(['login', '--server', g.url, '--server-ca', caFile, '--device']);
  const [, uri, code] = await run.waitFor(/open (\S+) and enter the code ([A-Z]{4}-[A-Z]{4})/);
  await approveCliLogin(browser, `${uri}?user_code=${code}`, 'Otto');
  assert.equal(await run.exit, 0, run.stderr());
  const tokens = JSON.parse(readFileSync(join(ws.home, '.config', 'talos-gate', 'tokens.json'), 'utf8')) as Record<string, { refreshToken: string }>;
  const refresh = Object.values(tokens)[0]?.refreshToken;
  assert.ok(refresh, 'the CLI keeps a refresh token');
  return refresh;
}

const refreshAt = (g: TestGate, refreshToken: string) =>
  request(`${g.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'talos-gate-cli' }).toString(),
    ca: g.ca,
  });

test('a gate moved from SQLite to PostgreSQL with db migrate serves what the SQLite gate knew', async () => {
  // on SQLite: two nodes enrolled, an operator logged in (and exchanged), an ID token exchanged
  const enrolled = [];
  for (const n of NODES) enrolled.push(await enroll(sqliteGate, n));
  const refresh = await deviceLogin(sqliteGate, 'otto');
  const tokens = await idp.login('talos-gate', 'otto');
  const ex = await request(`${sqliteGate.url}/exchange`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id_token: tokens.id_token }), ca: sqliteGate.ca });
  assert.equal(ex.status, 200, ex.body);
  const certsBefore = (await sqliteGate.admin('GET', '/api/v1/certs?limit=100')).json.certs as { serial: string }[];
  assert.equal(certsBefore.length, 2, 'the CLI login and the exchange each made a certificate');
  const auditBefore = (await sqliteGate.admin('GET', '/api/v1/audit?limit=500')).json;
  const nodesBefore = (await sqliteGate.admin('GET', '/api/v1/nodes')).json.nodes as unknown[];
  await sqliteGate.gate.close();

  // the move
  const file = join(sqliteGate.gate.config.data_dir, 'talos-gate.db');
  const run = runCli(['db', 'migrate', '--from', file, '--to', target.url]);
  assert.equal(await run.exit, 0, run.stderr() + run.stdout());
  const counted = (t: string) => Number(new RegExp(`^  ${t} +(\\d+) +(\\d+) `, 'm').exec(run.stdout())?.[1]);
  assert.equal(counted('nodes'), 2);
  assert.equal(counted('certificates'), 2);
  assert.ok(counted('refresh_tokens') >= 1 && counted('operator_grants') === 1 && counted('node_tokens') === 2);
  assert.ok(counted('audit_events') > 0 && counted('web_sessions') > 0);
  assert.doesNotMatch(run.stdout(), /DIFFERS/);

  // on PostgreSQL: the same config, data_dir, admin token and system secret (the sealed values are copied as they are)
  pgGate = await startTestGate({ ...gateConfig(), data_dir: sqliteGate.gate.config.data_dir, admin_token: sqliteGate.adminToken, secrets: sqliteGate.gate.config.secrets, database: { url: target.url } });
  assert.equal(pgGate.ca, sqliteGate.ca, 'the same TLS material (data_dir)');
  for (const [i, n] of NODES.entries()) {
    const got = await request(talosConfigUrl(pgGate.url, n), { headers: { authorization: `Bearer ${enrolled[i]?.token}` }, ca: pgGate.ca });
    assert.equal(got.status, 200, got.body);
    assert.equal(got.body, enrolled[i]?.config, `${n.uuid}: the same config, byte for byte, with the token the SQLite gate gave`);
  }
  const refreshed = await refreshAt(pgGate, refresh);
  assert.equal(refreshed.status, 200, refreshed.body);
  assert.ok((JSON.parse(refreshed.body) as { access_token?: string }).access_token, 'the migrated refresh token gives an access token');
  const replay = await refreshAt(pgGate, refresh);
  assert.equal(JSON.parse(replay.body).error, 'invalid_grant', 'and it was used once, as on SQLite');

  const certsAfter = (await pgGate.admin('GET', '/api/v1/certs?limit=100')).json.certs as { serial: string }[];
  assert.deepEqual(certsAfter.map((c) => c.serial), certsBefore.map((c) => c.serial));
  const auditAfter = (await pgGate.admin('GET', '/api/v1/audit?limit=500')).json;
  const ids = (a: { events: { id: number }[] }) => new Set(a.events.map((e) => e.id));
  for (const id of ids(auditBefore)) assert.ok(ids(auditAfter).has(id), `audit event ${id} is there`);
  assert.deepEqual(((await pgGate.admin('GET', '/api/v1/nodes')).json.nodes as unknown[]).length, nodesBefore.length);

  // a second migrate into the now used target is refused
  const again = runCli(['db', 'migrate', '--from', file, '--to', target.url]);
  assert.equal(await again.exit, 2, again.stderr());
  assert.match(again.stderr(), /--to: database \w+ already holds data/);
});
