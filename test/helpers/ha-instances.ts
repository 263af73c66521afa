import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { newSystemSecret } from './sealing.js';
import { request } from '../../cli/http.js';
import { runCli, type CliRun } from './cli.js';
import { freePort } from './gate.js';

// Gate instances as a load balancer sees them: each `talos-gate serve` its own OS process with its
// own data_dir, all on one PostgreSQL database and one config (admin token, public URL, device
// settings). Plain HTTP: the balancer in front (test/helpers/ha-proxy.ts) passes TCP through, so
// every instance would need the same certificate otherwise.

/** One `talos-gate serve` process; kill() and restart() as an operator or a crash would. */
export class GateProcess {
  readonly url: string;
  private current: CliRun | undefined;

  constructor(
    readonly port: number,
    private readonly configFile: string,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  get run(): CliRun {
    if (!this.current) throw new Error('this gate process was never started');
    return this.current;
  }

  /** Starts it (again) on its port and config; resolves once it listens. */
  async start(): Promise<void> {
    const run = runCli(['serve', '--config', this.configFile]);
    this.current = run;
    await run.waitFor(/is listening on/, 30_000);
  }

  /** SIGKILL: gone at once, its open connections reset, nothing flushed. */
  async kill(): Promise<void> {
    if (!this.alive()) return;
    this.run.child.kill('SIGKILL');
    await this.run.exit;
  }

  async stop(): Promise<void> {
    if (!this.alive()) return;
    this.run.child.kill('SIGTERM');
    await this.run.exit;
  }

  private alive(): boolean {
    return this.current !== undefined && this.current.child.exitCode === null && this.current.child.signalCode === null;
  }
}

export interface GateFleet {
  adminToken: string;
  instances: GateProcess[];
  /** An admin API call to the given instance. */
  admin(instance: GateProcess | string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>; // any: tests read arbitrary response shapes
  close(): Promise<void>;
}

export async function startGateFleet(n: number, databaseUrl: string, opts: { publicUrl?: string; overrides?: Record<string, unknown> } = {}): Promise<GateFleet> {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-ha-'));
  const adminToken = randomBytes(24).toString('hex');
  const systemSecret = newSystemSecret();
  const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
  const instances = ports.map((port, i) => {
    const file = join(dir, `gate-${i}.yaml`);
    writeFileSync(
      file,
      stringify({
        listen: `127.0.0.1:${port}`,
        ...(opts.publicUrl ? { public_url: opts.publicUrl } : {}),
        data_dir: join(dir, `data-${i}`),
        database: { url: databaseUrl, pool_size: 4 },
        tls: { mode: 'off' },
        admin_token: adminToken,
        secrets: { system: [systemSecret] },
        log_level: 'warn',
        audit_log: 'off',
        device: { interval: '1s', code_ttl: '2m' },
        ...opts.overrides,
      }),
    );
    return new GateProcess(port, file);
  });
  try {
    // one after the other: the first migrates, the others find the schema there
    for (const p of instances) await p.start();
  } catch (e) {
    await Promise.all(instances.map((p) => p.kill().catch(() => undefined)));
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const admin = async (instance: GateProcess | string, method: string, path: string, body?: unknown) => {
    const base = typeof instance === 'string' ? instance : instance.url;
    const res = await request(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const isJson = String(res.headers['content-type'] ?? '').includes('json');
    return { status: res.status, json: isJson ? JSON.parse(res.body) : res.body };
  };
  return {
    adminToken,
    instances,
    admin,
    async close() {
      await Promise.all(instances.map((p) => p.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
