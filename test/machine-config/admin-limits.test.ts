import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { goFormEncode, request } from '../../cli/http.js';
import type { DeviceCodeResponse } from '../../cli/talos-node.js';
import { newNode } from '../../server/storage/storage.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';

// Finding 9 of the security review through a real gate: admin input that gave 500 or stalled the
// gate is a 400/422 naming the profile, patch and limit, answered quickly, and the gate goes on.

/** A generous bound: a functional guard against stalls, not a benchmark. */
const QUICK_MS = 2000;

const LAUGHS = [
  'machine:',
  '  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  ...Array.from({ length: 9 }, (_, i) => `  l${i + 1}: &l${i + 1} [${Array(9).fill(`*l${i}`).join(',')}]`),
  '',
].join('\n');

describe('admin input within the limits of the renderer', () => {
  let g: TestGate;
  let n = 0;
  before(async () => {
    g = await startTestGate({ node_clients: [{ client_id: 'talos-node' }] });
  });
  after(() => g.close());

  const uuid = () => `9a9a9a9a-0000-4000-8000-${String(++n).padStart(12, '0')}`;

  /** An admin call that must answer within QUICK_MS. */
  async function quickAdmin(method: string, path: string, body?: unknown) {
    const started = Date.now();
    const res = await g.admin(method, path, body);
    const took = Date.now() - started;
    assert.ok(took < QUICK_MS, `${method} ${path} answered after ${took} ms`);
    return res;
  }

  /** Like quickAdmin, with the JSON body as text. */
  async function rawAdmin(method: string, path: string, body: string) {
    const started = Date.now();
    const res = await request(`${g.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${g.adminToken}`, 'content-type': 'application/json' },
      body,
      ca: g.ca,
    });
    const took = Date.now() - started;
    assert.ok(took < QUICK_MS, `${method} ${path} answered after ${took} ms`);
    return { status: res.status, json: JSON.parse(res.body) };
  }

  /** The gate still answers, and quickly. */
  async function stillAnswers() {
    const res = await quickAdmin('GET', '/api/v1/stats');
    assert.equal(res.status, 200);
  }

  /** A node asks /device/code, as Talos does at boot; its user code. */
  async function asks(id: string): Promise<{ status: number; userCode: string }> {
    const res = await request(`${g.url}/device/code`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: goFormEncode({ client_id: 'talos-node', uuid: id }),
      ca: g.ca,
    });
    const da = res.status === 200 ? (JSON.parse(res.body) as DeviceCodeResponse) : undefined;
    return { status: res.status, userCode: da?.user_code ?? '' };
  }

  function refused(res: { status: number; json: any }, status: number, error: string, message: RegExp) { // any: error bodies
    assert.equal(res.status, status, JSON.stringify(res.json).slice(0, 300));
    assert.equal(res.json.error, error);
    assert.match(res.json.error_description, message);
  }

  test('profiles named __proto__, constructor, toString are unknown: 400 naming them, at registration and approval', async () => {
    for (const profile of ['__proto__', 'constructor', 'toString']) {
      const reg = await quickAdmin('POST', '/api/v1/nodes', { uuid: uuid(), profile, auto_approve: true });
      refused(reg, 400, 'invalid_request', new RegExp(`unknown profile "${profile}"`));
      const id = uuid();
      const { userCode } = await asks(id);
      const approve = await quickAdmin('POST', '/api/v1/device/approve', { user_code: userCode, profile });
      refused(approve, 400, 'invalid_request', new RegExp(`unknown profile "${profile}"`));
      const byId = await quickAdmin('POST', `/api/v1/nodes/${id}/approve`, { profile });
      refused(byId, 400, 'invalid_request', new RegExp(`unknown profile "${profile}"`));
    }
    await stillAnswers();
  });

  test('an auto-approve node stored with such a profile asks /device/code: 200, and it waits for an admin', async () => {
    // as a gate before the fix could have stored it
    const id = uuid();
    await g.gate.storage.createNode(newNode(id, Date.now(), { uuid: id, status: 'approved', profile: 'constructor', autoApprove: true }));
    for (let i = 0; i < 2; i++) assert.equal((await asks(id)).status, 200, 'every boot gets a user code');
    const node = await quickAdmin('GET', `/api/v1/nodes/${id}`);
    assert.equal(node.json.status, 'pending');
    assert.equal(node.json.pending.length, 2);
  });

  test('node patches naming a folder: 422 invalid_config, not a regular file', async () => {
    refused(await quickAdmin('POST', '/api/v1/nodes', { uuid: uuid(), profile: 'worker', patches: ['@patches'] }), 422, 'invalid_config', /^node patch #1: patches is not a regular file/);
    refused(await quickAdmin('POST', '/api/v1/nodes', { uuid: uuid(), profile: 'worker', patches: ['@patches/common.yaml', '@.'] }), 422, 'invalid_config', /^node patch #2: \. is not a regular file/);
    const id = uuid();
    const { userCode } = await asks(id);
    refused(await quickAdmin('POST', '/api/v1/device/approve', { user_code: userCode, profile: 'worker', patches: ['@patches'] }), 422, 'invalid_config', /not a regular file/);
    await stillAnswers();
  });

  test('a billion-laughs patch: 422 naming the alias limit, quickly', async () => {
    refused(await quickAdmin('POST', '/api/v1/nodes', { uuid: uuid(), profile: 'worker', patches: [LAUGHS] }), 422, 'invalid_config', /^node patch #1: too many YAML alias expansions \(more than 100\)$/);
    const { userCode } = await asks(uuid());
    refused(await quickAdmin('POST', '/api/v1/device/approve', { user_code: userCode, profile: 'worker', patches: [LAUGHS] }), 422, 'invalid_config', /alias/);
    await stillAnswers();
  });

  test('deep patches, as YAML text or as JSON: 422 naming the depth limit', async () => {
    const flow = `machine:\n  x: ${'['.repeat(30_000)}${']'.repeat(30_000)}\n`;
    for (const patch of [JSON.stringify(flow), `{"machine":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`]) {
      // as JSON text: JSON.stringify of the deep object would itself run out of stack here
      const register = `{"uuid":"${uuid()}","profile":"worker","patches":[${patch}]}`;
      refused(await rawAdmin('POST', '/api/v1/nodes', register), 422, 'invalid_config', /^node patch #1( at line 2)?: nested deeper than 64 levels$/);
      const { userCode } = await asks(uuid());
      const approve = `{"user_code":"${userCode}","profile":"worker","patches":[${patch}]}`;
      refused(await rawAdmin('POST', '/api/v1/device/approve', approve), 422, 'invalid_config', /nested deeper than 64 levels/);
    }
    await stillAnswers();
  });

  test('a JSON patch copying the config into itself 16 times: 422 naming the size limit, quickly, and the node still waits', async () => {
    const ops: unknown[] = [{ op: 'add', path: '/big', value: {} }];
    for (let i = 0; i < 16; i++) ops.push({ op: 'copy', from: '', path: `/big/c${i}` });
    const id = uuid();
    const { userCode } = await asks(id);
    refused(
      await quickAdmin('POST', '/api/v1/device/approve', { user_code: userCode, profile: 'worker', patches: [ops] }),
      422,
      'invalid_config',
      /^node patch #1: operation #\d+ \(copy \/big\/c\d+\): the rendered config (is larger than 1 MiB|has more than 100,000 values)$/,
    );
    assert.equal((await quickAdmin('GET', `/api/v1/nodes/${id}`)).json.status, 'pending');
    await stillAnswers();
    // stored for an auto-approve node, it is refused when the node boots, which is not a 500
    const auto = uuid();
    assert.equal((await quickAdmin('POST', '/api/v1/nodes', { uuid: auto, profile: 'worker', auto_approve: true, patches: [ops] })).status, 201);
    const started = Date.now();
    assert.equal((await asks(auto)).status, 200);
    assert.ok(Date.now() - started < QUICK_MS);
    assert.equal((await quickAdmin('GET', `/api/v1/nodes/${auto}`)).json.status, 'pending');
  });

  test('a JSON patch of more than 1000 operations: 422 at registration', async () => {
    const ops = Array.from({ length: 1001 }, () => ({ op: 'add', path: '/machine/x', value: 1 }));
    refused(await quickAdmin('POST', '/api/v1/nodes', { uuid: uuid(), profile: 'worker', patches: [ops] }), 422, 'invalid_config', /^node patch #1: more than 1000 JSON patch operations$/);
  });
});
