import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { request } from '../../cli/http.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/gate.js';

// The launcher (bin/talos-gate.cjs) sizes libuv's thread pool to the cores before the gate's ES
// modules load, because loading them starts the pool and fixes its size (bin/thread-pool.cjs).

interface ThreadPool {
  threadPoolSize(cores: number): number;
  applyThreadPoolSize(env: NodeJS.ProcessEnv, cores: number): string;
}
const pool = createRequire(import.meta.url)('../../bin/thread-pool.cjs') as ThreadPool;

test('the pool leaves one core to the event loop, keeps at least one thread and never more than libuv\'s 4', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 8, 64].map(pool.threadPoolSize), [1, 1, 2, 3, 4, 4, 4]);
  assert.equal(pool.threadPoolSize(0), 1);
  assert.equal(pool.threadPoolSize(Number.NaN), 1);
});

test('an operator\'s UV_THREADPOOL_SIZE stands; unset or empty, the launcher sets one', () => {
  const set: NodeJS.ProcessEnv = { UV_THREADPOOL_SIZE: '16' };
  assert.equal(pool.applyThreadPoolSize(set, 2), '16');
  assert.equal(set.UV_THREADPOOL_SIZE, '16');
  const unset: NodeJS.ProcessEnv = {};
  assert.equal(pool.applyThreadPoolSize(unset, 8), '4');
  assert.equal(unset.UV_THREADPOOL_SIZE, '4');
  const empty: NodeJS.ProcessEnv = { UV_THREADPOOL_SIZE: ' ' };
  assert.equal(pool.applyThreadPoolSize(empty, 2), '1');
});

/** How many threads a gate started through the launcher runs, once it serves. */
async function threadsOfServingGate(env: NodeJS.ProcessEnv): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-pool-'));
  const port = await freePort();
  const file = join(dir, 'gate.yaml');
  writeFileSync(file, stringify({ listen: `127.0.0.1:${port}`, data_dir: join(dir, 'data'), admin_token: randomBytes(24).toString('hex'), secrets: { system: [randomBytes(32).toString('hex')] }, tls: { mode: 'off' }, public_url: `http://127.0.0.1:${port}`, log_level: 'warn', audit_log: 'off' }));
  const serve = runCli(['serve', '--config', file], { env });
  try {
    await serve.waitFor(/Try it without hardware/);
    // a request served: whatever starts threads lazily has started
    assert.equal((await request(`http://127.0.0.1:${port}/healthz`)).status, 200);
    const pid = serve.child.pid as number;
    return readdirSync(`/proc/${pid}/task`).length;
  } finally {
    serve.child.kill('SIGTERM');
    assert.equal(await serve.exit, 0, serve.stderr());
  }
}

test('a gate started through the launcher runs the pool size for its cores, or the one set', async () => {
  // unset for the launcher (runCli passes this process's environment on; an empty value would not
  // do: libuv reads it as 1)
  delete process.env.UV_THREADPOOL_SIZE;
  const chosen = pool.threadPoolSize(availableParallelism());
  const sized = await threadsOfServingGate({});
  // three more than the launcher's choice, set by the operator: exactly three more threads
  const larger = await threadsOfServingGate({ UV_THREADPOOL_SIZE: String(chosen + 3) });
  assert.equal(larger - sized, 3, `threads: ${sized} with the launcher's pool of ${chosen}, ${larger} with UV_THREADPOOL_SIZE=${chosen + 3}`);
});
