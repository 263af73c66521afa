import { randomBytes, randomUUID } from 'node:crypto';
import { goFormEncode, request } from '../cli/http.js';
import { hashSecret } from '../device/secrets.js';
import { openSqliteStorage } from '../server/storage/sqlite/index.js';
import { newNode } from '../server/storage/storage.js';
import type { GateProcess } from './gate-process.js';
import { closedLoop, type LoadResult } from './load.js';
import { SealedBox } from '../server/secrets/sealed-box.js';

// Scale of state: the same requests against an empty database and one holding many certificate
// records and pending device requests. The gate must not slow down with what it remembers.

export interface StateProbe {
  token: LoadResult;
  exchange: LoadResult;
  certs_active: LoadResult;
  rss_mib: number;
}

/** Device codes of fresh pending requests, to poll at /token. */
async function pendingCodes(gate: GateProcess, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await request(`${gate.url}/device/code`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: goFormEncode({ client_id: 'talos-node', uuid: randomUUID(), mac: '52:54:00:aa:bb:cc' }),
      ca: gate.ca,
    });
    out.push((JSON.parse(res.body) as { device_code: string }).device_code);
  }
  return out;
}

export async function probe(gate: GateProcess, idToken: string, durationMs: number): Promise<StateProbe> {
  const codes = await pendingCodes(gate, 16);
  const token = await closedLoop({
    concurrency: 16,
    durationMs,
    ca: gate.ca,
    send: (client) => ({
      url: `${gate.url}/token`,
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: goFormEncode({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: codes[client] as string, client_id: 'talos-node' }),
    }),
  });
  const exchange = await closedLoop({
    concurrency: 16,
    durationMs,
    ca: gate.ca,
    send: () => ({ url: `${gate.url}/exchange`, method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${idToken}` }, body: '{}' }),
  });
  const certsActive = await closedLoop({
    concurrency: 8,
    durationMs,
    ca: gate.ca,
    send: () => ({ url: `${gate.url}/api/v1/certs?active=true`, headers: { authorization: `Bearer ${gate.adminToken}` } }),
  });
  return { token, exchange, certs_active: certsActive, rss_mib: Math.round(gate.rssMiB()) };
}

/** Fills the gate's database (WAL lets the running gate keep going) with records as a busy gate would have them. */
export async function fillDatabase(dbFile: string, certs: number, pending: number): Promise<void> {
  const s = openSqliteStorage(dbFile, { cipher: new SealedBox([randomBytes(32).toString('hex')]) });
  const now = Date.now();
  await s.transaction(async (tx) => {
    for (let i = 0; i < certs; i++) {
      await tx.addCertificate({
        serial: randomBytes(16).toString('hex'),
        fingerprint: randomBytes(32).toString('hex'),
        subject: `user-${i % 500}`,
        email: `user-${i % 500}@example.com`,
        commonName: `user-${i % 500}@example.com`,
        issuer: 'https://idp.example.com',
        roles: ['os:reader'],
        issuedAt: now - (i % 3600) * 1000,
        // most are still valid, as with many operators renewing every few minutes
        expiresAt: now + 3_600_000,
        clientIp: '192.0.2.1',
        source: 'id_token',
      });
    }
    for (let i = 0; i < pending; i++) {
      const id = randomUUID();
      await tx.createNode(newNode(id, now, { uuid: id, variables: { uuid: id }, requestedAt: now, sourceIp: '192.0.2.2' }));
      await tx.createDeviceRequest({
        deviceCodeHash: hashSecret(randomBytes(32).toString('base64url')),
        userCode: randomBytes(6).toString('hex').toUpperCase(),
        clientId: 'talos-node',
        kind: 'node',
        nodeId: id,
        variables: { uuid: id },
        scope: null,
        audience: null,
        sourceIp: '192.0.2.2',
        sourceBucket: '192.0.2.2',
        createdAt: now,
        expiresAt: now + 3_600_000,
        intervalMs: 1000,
        status: 'pending',
      });
    }
  });
  await s.close();
}
