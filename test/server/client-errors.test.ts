import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { request } from '../../cli/http.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';
import { parseResponse, rawTls } from '../helpers/raw-tls.js';

// Requests Node's HTTP parser refuses before fastify sees them (headers over the 16 KB default of
// --max-http-header-size, malformed request lines) are answered by the clientErrorHandler: a
// response that says Connection: close, then a graceful close, so a keep-alive client never sends
// its next request down a connection the gate is about to drop.

const BIG = 'a'.repeat(20 * 1024); // over Node's default 16 KB of headers (the gate does not change it)

describe('client errors close the connection cleanly', () => {
  let g: TestGate;
  before(async () => {
    g = await startTestGate();
  });
  after(() => g?.close());

  test('a 20 KB header gets 431 with Connection: close and a JSON body, then a clean close (no reset)', async () => {
    const host = new URL(g.url).host;
    // keep-alive (HTTP/1.1's default): no Connection header from the client
    const res = await rawTls(g.url, g.ca, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${BIG}\r\n\r\n`);
    assert.equal(res.closed, 'end', `closed by ${res.closed}: ${res.error?.message ?? ''}`);
    const r = parseResponse(res.text);
    assert.equal(r.status, 431);
    assert.match(res.text, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    assert.equal(r.headers.connection, 'close');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
    const body = JSON.parse(r.body) as Record<string, unknown>;
    assert.equal(body.error, 'invalid_request');
    assert.equal(typeof body.error_description, 'string');
    assert.equal(res.text.length, res.text.indexOf('\r\n\r\n') + 4 + r.body.length, 'nothing after the response');
  });

  test('a malformed request line gets 400 with Connection: close, then a clean close', async () => {
    const res = await rawTls(g.url, g.ca, 'GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n');
    assert.equal(res.closed, 'end', `closed by ${res.closed}: ${res.error?.message ?? ''}`);
    const r = parseResponse(res.text);
    assert.equal(r.status, 400);
    assert.equal(r.headers.connection, 'close');
    assert.equal((JSON.parse(r.body) as { error: string }).error, 'invalid_request');
  });

  test('header overflow after a long stream of headers: the gate keeps reading, so the answer is not lost to a reset', async () => {
    // 200 KB of headers in one write: far past the point where the parser gives up
    const host = new URL(g.url).host;
    const many = Array.from({ length: 100 }, (_, i) => `X-H${i}: ${'b'.repeat(2000)}`).join('\r\n');
    const res = await rawTls(g.url, g.ca, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\n${many}\r\n\r\n`);
    assert.equal(res.closed, 'end', `closed by ${res.closed}: ${res.error?.message ?? ''}`);
    const r = parseResponse(res.text);
    assert.equal(r.status, 431);
    assert.equal(r.headers.connection, 'close');
  });

  test('a barrage over keep-alive agents mixing oversized and normal requests: no normal request ever fails', async () => {
    const agents = Array.from({ length: 4 }, () => new Agent({ keepAlive: true, maxSockets: 4, ca: g.ca }));
    try {
      const failures: string[] = [];
      const oversized: { status: number; connection: string | undefined }[] = [];
      let normalOk = 0;
      await Promise.all(
        Array.from({ length: 400 }, async (_, i) => {
          const agent = agents[i % agents.length];
          if (i % 3 === 1) {
            const res = await request(`${g.url}/healthz`, { agent, ca: g.ca, headers: { 'x-big': BIG } }).catch((e: Error) => e);
            // the oversized request itself may be told apart either way; it must never take others with it
            if (!(res instanceof Error)) oversized.push({ status: res.status, connection: String(res.headers.connection) });
            return;
          }
          const res = await request(`${g.url}/healthz`, { agent, ca: g.ca }).catch((e: Error) => e);
          if (res instanceof Error) failures.push(`#${i}: ${res.message}`);
          else if (res.status !== 200) failures.push(`#${i}: status ${res.status}`);
          else normalOk++;
        }),
      );
      assert.deepEqual(failures, [], `${failures.length} normal requests failed`);
      assert.ok(normalOk > 250, `${normalOk} normal requests answered`);
      assert.ok(oversized.length > 0, 'oversized requests are answered');
      for (const o of oversized) assert.deepEqual(o, { status: 431, connection: 'close' });
    } finally {
      for (const a of agents) a.destroy();
    }
  });
});
