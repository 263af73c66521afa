import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { goFormEncode, request } from '../../cli/http.js';
import { startTestGate } from '../helpers/gate.js';
import { startIdp } from '../helpers/idp.js';

const form = (uuid: string) => goFormEncode({ client_id: 'talos-node', uuid });

test('rate limits answer 429 with Retry-After and a JSON error, per client IP', async () => {
  const g = await startTestGate({ rate_limits: { device_code: 3, exchange: 2 } });
  try {
    const send = (uuid: string) =>
      request(`${g.url}/device/code`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form(uuid), ca: g.ca });
    for (let i = 0; i < 3; i++) assert.equal((await send(`rl-${i}`)).status, 200);
    const limited = await send('rl-4');
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After');
    assert.equal(JSON.parse(limited.body).error, 'too_many_requests');
    assert.equal((await g.admin('GET', '/api/v1/nodes/rl-4')).status, 404, 'a limited request stores nothing');
    const ex = () => request(`${g.url}/exchange`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', ca: g.ca });
    await ex();
    await ex();
    assert.equal((await ex()).status, 429);
  } finally {
    await g.close();
  }
});

test('X-Forwarded-For counts only from trusted proxies', async () => {
  const trusted = await startTestGate({ trusted_proxies: ['127.0.0.1/32'] });
  const untrusted = await startTestGate();
  try {
    for (const [g, want] of [
      [trusted, '203.0.113.7'],
      [untrusted, '127.0.0.1'],
    ] as const) {
      const res = await request(`${g.url}/device/code`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': '198.51.100.1, 203.0.113.7' },
        body: form('xff-node'),
        ca: g.ca,
      });
      assert.equal(res.status, 200);
      assert.equal((await g.admin('GET', '/api/v1/nodes/xff-node')).json.source_ip, want);
    }
  } finally {
    await trusted.close();
    await untrusted.close();
  }
});

test('a bad trusted_proxies entry is a config error naming the key', async () => {
  await assert.rejects(startTestGate({ trusted_proxies: ['10.0.0.0/33'] }), /trusted_proxies\[0\]: "10\.0\.0\.0\/33" is not an IP address or CIDR/);
});

test('/readyz says what is not ready', async () => {
  const idp = await startIdp({ users: [], clients: [{ client_id: 'talos-gate', redirect_uris: ['http://127.0.0.1:9/cb'] }] });
  const g = await startTestGate({ oidc: { issuer_url: idp.issuer, client_id: 'talos-gate' } });
  try {
    const ok = await request(`${g.url}/readyz`, { ca: g.ca });
    assert.equal(ok.status, 200, ok.body);
    assert.deepEqual(JSON.parse(ok.body), { status: 'ready', checks: { database: 'ok', talos_ca: 'not configured', idp: 'ok' } });
  } finally {
    await g.close();
  }
  const g2 = await startTestGate({ oidc: { issuer_url: idp.issuer, client_id: 'talos-gate' } });
  await idp.close();
  try {
    const down = await request(`${g2.url}/readyz`, { ca: g2.ca });
    assert.equal(down.status, 503);
    const body = JSON.parse(down.body) as { status: string; checks: Record<string, string> };
    assert.equal(body.checks.database, 'ok');
    assert.match(body.checks.idp ?? '', /^failed/);
    assert.equal((await request(`${g2.url}/healthz`, { ca: g2.ca })).status, 200, 'alive even when not ready');
  } finally {
    await g2.close();
  }
});

test('/metrics: device requests by state, latency per route, counters; optionally behind a token', async () => {
  const g = await startTestGate({ metrics: { token: 'metrics-token-0123456789' } });
  try {
    await request(`${g.url}/device/code`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form('metrics-node'), ca: g.ca });
    await g.admin('POST', '/api/v1/nodes/metrics-node/deny');
    assert.equal((await request(`${g.url}/metrics`, { ca: g.ca })).status, 401);
    const res = await request(`${g.url}/metrics`, { headers: { authorization: 'Bearer metrics-token-0123456789' }, ca: g.ca });
    assert.equal(res.status, 200);
    assert.match(res.body, /^talos_gate_device_requests\{state="denied"\} 1$/m);
    assert.match(res.body, /^talos_gate_nodes\{status="denied"\} 1$/m);
    assert.match(res.body, /^talos_gate_node_approvals_total\{decision="denied"\} 1$/m);
    assert.match(res.body, /^talos_gate_http_request_duration_seconds_bucket\{le="0\.05",method="POST",route="\/device\/code",status="200"\} 1$/m);
    assert.match(res.body, /^talos_gate_sqlite_bytes \d+$/m);
    assert.match(res.body, /^talos_gate_process_resident_memory_bytes \d+$/m);
  } finally {
    await g.close();
  }
});

test('ip_allowlist keeps the admin API and node endpoints apart', async () => {
  const g = await startTestGate({ ip_allowlist: { admin: ['10.0.0.0/8'], nodes: [] } });
  const g2 = await startTestGate({ ip_allowlist: { admin: [], nodes: ['192.0.2.0/24', '::1'] } });
  try {
    const admin = await g.admin('GET', '/api/v1/nodes');
    assert.equal(admin.status, 403);
    assert.match(admin.json.error_description, /may not use the admin API/);
    const node = await request(`${g.url}/device/code`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form('allow-1'), ca: g.ca });
    assert.equal(node.status, 200, 'node endpoints stay open');
    const refused = await request(`${g2.url}/device/code`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form('allow-2'), ca: g2.ca });
    assert.equal(refused.status, 403);
    assert.equal((await g2.admin('GET', '/api/v1/nodes')).status, 200);
  } finally {
    await g.close();
    await g2.close();
  }
});

test('security headers on pages, API answers and errors: CSP without inline code, nosniff, no framing, HSTS over https', async () => {
  const g = await startTestGate();
  try {
    const answers = [
      await request(`${g.url}/device`, { ca: g.ca }),
      await request(`${g.url}/healthz`, { ca: g.ca }),
      await request(`${g.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=nope', ca: g.ca }),
      await request(`${g.url}/no-such-page`, { ca: g.ca }),
      await request(`${g.url}/exchange`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', ca: g.ca }),
    ];
    for (const res of answers) {
      const csp = String(res.headers['content-security-policy']);
      assert.match(csp, /default-src 'self'/);
      assert.match(csp, /script-src 'self'(;|$)/, 'no unsafe-inline scripts');
      assert.match(csp, /frame-ancestors 'none'/);
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
      assert.equal(res.headers['referrer-policy'], 'no-referrer');
      assert.match(String(res.headers['strict-transport-security']), /max-age=31536000/);
    }
  } finally {
    await g.close();
  }
});

test('a rack connecting at once fits the listen backlog, even while the gate is busy', async () => {
  const g = await startTestGate();
  try {
    const port = new URL(g.url).port;
    // 1,000 TCP connections opened at once from another process, while this process (the gate's)
    // does not accept for 1.5 s: beyond Node's default backlog of 511 the kernel drops SYNs, and
    // those connections only complete after the 1 s SYN retransmit.
    const script = `
      const net = require('node:net');
      const start = Date.now(); let fast = 0, done = 0; const socks = [];
      for (let i = 0; i < 1000; i++) {
        const s = net.connect(${port}, '127.0.0.1', () => { if (Date.now() - start < 700) fast++; if (++done === 1000) finish(); });
        s.on('error', () => { if (++done === 1000) finish(); });
        socks.push(s);
      }
      function finish() { process.stdout.write(String(fast)); socks.forEach((s) => s.destroy()); }
      setTimeout(finish, 5000).unref();
    `;
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['-e', script]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => setTimeout(r, 100));
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      // the gate's event loop is busy: nothing is accepted
    }
    await new Promise((r) => child.once('exit', r));
    // the kernel caps any backlog at net.core.somaxconn (4096 on Linux ≥ 5.4)
    const cap = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    assert.ok(Number(out) >= Math.min(1000, cap), `${out} of 1000 connections completed within 700 ms (somaxconn ${cap})`);
  } finally {
    await g.close();
  }
});
