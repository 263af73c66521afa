import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import Fastify, { LogController } from 'fastify';
import { registerAccessLog } from '../../server/plugins/access-log.js';

function appLogging(level: string) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const app = Fastify({ logger: { level, stream }, logController: new LogController({ disableRequestLogging: true }) });
  registerAccessLog(app);
  app.get('/x', async () => ({ ok: true }));
  app.get('/fail', async () => {
    throw Object.assign(new Error('nope'), { statusCode: 400 });
  });
  return { app, lines };
}

test('one access line per answered request: method, path without its query, status, time, request id', async (t) => {
  const { app, lines } = appLogging('info');
  t.after(() => app.close());
  await app.inject({ method: 'GET', url: '/x?code=secret-user-code' });
  await app.inject({ method: 'GET', url: '/fail' });
  const access = lines.filter((l) => l.msg === 'request');
  assert.equal(access.length, 2);
  assert.equal(lines.filter((l) => l.msg === 'incoming request' || l.msg === 'request completed').length, 0);
  const [ok, failed] = access as [Record<string, unknown>, Record<string, unknown>];
  assert.equal(ok.method, 'GET');
  assert.equal(ok.path, '/x');
  assert.equal(ok.status, 200);
  assert.equal(typeof ok.ms, 'number');
  assert.equal(typeof ok.reqId, 'string');
  assert.ok(!JSON.stringify(lines).includes('secret-user-code'), 'no query string in the log');
  assert.equal(failed.status, 400);
});

test('no access lines when the level is above info', async (t) => {
  const { app, lines } = appLogging('warn');
  t.after(() => app.close());
  await app.inject({ method: 'GET', url: '/x' });
  assert.deepEqual(lines, []);
});
