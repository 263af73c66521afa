import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { test } from 'node:test';
import helmet from 'helmet';
import { staticSecurityHeaders } from '../../server/plugins/security-headers.js';

// The recorded headers must be exactly what helmet itself sets on a real response: compared here
// against helmet running per request on a plain Node server, with the gate's kind of options.
const options = {
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'self'"], frameAncestors: ["'none'"] } },
  strictTransportSecurity: { maxAge: 31_536_000 },
  referrerPolicy: { policy: 'no-referrer' as const },
};

test('the security headers recorded once are the ones helmet sets on every response', async () => {
  const perRequest = helmet(options);
  const server = createServer((req, res) => perRequest(req, res, () => res.end('ok')));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const port = (server.address() as { port: number }).port;
    const got = await new Promise<Record<string, unknown>>((resolve, reject) => {
      request({ port, host: '127.0.0.1', path: '/' }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers));
      })
        .on('error', reject)
        .end();
    });
    const fromHelmet = Object.fromEntries(
      Object.entries(got).filter(([k]) => !['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'].includes(k)),
    );
    const recorded = staticSecurityHeaders(options);
    assert.deepEqual(recorded, fromHelmet);
    assert.match(recorded['content-security-policy'] ?? '', /frame-ancestors 'none'/);
    assert.equal(recorded['x-content-type-options'], 'nosniff');
  } finally {
    server.close();
  }
});

test('options that would need the request are refused at start-up, not per request', () => {
  assert.throws(() =>
    staticSecurityHeaders({
      contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'self'"], scriptSrc: [() => `'nonce-${Math.random()}'`] } },
    }),
    /differs per request/,
  );
});
