import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { adminRequest, type AdminAnswer } from './admin-api.js';
import { newSystemSecret } from './sealing.js';
import { runCli, type CliRun } from './cli.js';
import { freePort } from './gate.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';

// Several gate instances on one PostgreSQL database (docs/ha.md), each its own OS process started
// with `talos-gate serve` as an operator would: one config shared by all (the same database.url,
// public_url, secrets), differing only where instances on different machines would differ — the
// listen address, data_dir and audit log. With tls.mode off (configExtra) they speak plain HTTP, as
// behind a TCP balancer (test/helpers/ha-proxy.ts) that would otherwise need one certificate on all.

export interface HaInstance {
  index: number;
  /** Where this instance listens (https://127.0.0.1:PORT in self-signed mode). */
  url: string;
  port: number;
  dataDir: string;
  configFile: string;
  /** The running `talos-gate serve` process; undefined while stopped. */
  run: CliRun | undefined;
  /** The CA this instance presents (its data_dir/tls/ca.crt copy), empty with tls.mode off or files. */
  ca(): string;
  /** Stops the process (SIGTERM: a graceful stop; SIGKILL: a crash) and resolves with its exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** A crash: SIGKILL, no graceful stop. */
  kill(): Promise<number | null>;
  /** Starts it again with the same config and port, resolving once it listens. */
  start(): Promise<void>;
  /** stop() then start(). */
  restart(signal?: NodeJS.Signals): Promise<void>;
}

export interface HaCluster {
  instances: HaInstance[];
  urls: string[];
  database: TestDatabase;
  /** The config every instance got, before listen and data_dir. */
  config: Record<string, unknown>;
  /** The admin token: the config's, or (generatedAdminToken) the one the instances made in the database. */
  adminToken: string;
  /** An admin API call with the admin token to an instance (its CA trusted) or any URL (a balancer). */
  admin(on: HaInstance | string, method: string, path: string, body?: unknown): Promise<AdminAnswer>;
  close(): Promise<void>;
}

export interface HaOptions {
  /** Keys merged over the shared config (public_url, tls, device, oidc, audit_log, …). */
  configExtra?: Record<string, unknown>;
  /** No admin_token in the config: the instances make one and share it through the database. */
  generatedAdminToken?: boolean;
  /** The ports to listen on (default: free ones); a proxy in front may want to know them first. */
  ports?: number[];
  /** How long an instance may take to listen. */
  startTimeoutMs?: number;
}

/**
 * N instances on a fresh database, started at the same moment (they race for migrations and the
 * secrets they make). public_url defaults to the first instance's URL; pass configExtra.public_url
 * for a proxy or load balancer in front (and `ports`, to point the proxy at them first). Each
 * cluster gets its own fresh database, dropped by close().
 */
export async function startInstances(n: number, opts: HaOptions = {}): Promise<HaCluster> {
  const database = await createTestDatabase();
  const root = mkdtempSync(join(tmpdir(), 'talos-gate-ha-'));
  const ports = opts.ports ?? (await Promise.all(Array.from({ length: n }, () => freePort())));
  const scheme = (opts.configExtra?.tls as { mode?: string } | undefined)?.mode === 'off' ? 'http' : 'https';
  const config: Record<string, unknown> = {
    public_url: `${scheme}://127.0.0.1:${ports[0]}`,
    database: { url: database.url, pool_size: 4 },
    // one system secret for all: it seals what they share in the database
    secrets: { system: [newSystemSecret()] },
    log_level: 'warn',
    device: { interval: '1s', code_ttl: '2m' },
    ...(opts.generatedAdminToken ? {} : { admin_token: randomBytes(24).toString('hex') }),
    ...opts.configExtra,
  };
  const instances: HaInstance[] = ports.slice(0, n).map((port, index) => {
    const dir = join(root, `instance-${index}`);
    mkdirSync(dir, { recursive: true });
    const dataDir = join(dir, 'data');
    const configFile = join(dir, 'config.yaml');
    writeFileSync(configFile, stringify({ ...config, listen: `127.0.0.1:${port}`, data_dir: dataDir, audit_log: config.audit_log ?? join(dir, 'audit.jsonl') }));
    const inst: HaInstance = {
      index,
      url: `${scheme}://127.0.0.1:${port}`,
      port,
      dataDir,
      configFile,
      run: undefined,
      ca: () => {
        try {
          return readFileSync(join(dataDir, 'tls', 'ca.crt'), 'utf8');
        } catch {
          return '';
        }
      },
      async stop(signal: NodeJS.Signals = 'SIGTERM') {
        const run = inst.run;
        if (!run) return null;
        inst.run = undefined;
        if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill(signal);
        return run.exit;
      },
      kill: () => inst.stop('SIGKILL'),
      async start() {
        if (inst.run) throw new Error(`instance ${index} runs already`);
        const run = runCli(['serve', '--config', configFile]);
        inst.run = run;
        const exited = run.exit.then((code) => {
          throw new Error(`instance ${index} exited (${code}) before it listened:\n${run.stdout()}\n${run.stderr()}`);
        });
        await Promise.race([run.waitFor(/talos-gate is listening on/, opts.startTimeoutMs ?? 60_000), exited]);
        exited.catch(() => undefined);
      },
      async restart(signal?: NodeJS.Signals) {
        await inst.stop(signal);
        await inst.start();
      },
    };
    return inst;
  });

  const close = async () => {
    await Promise.all(instances.map((i) => i.stop('SIGKILL')));
    await database.drop();
    rmSync(root, { recursive: true, force: true });
  };
  try {
    await Promise.all(instances.map((i) => i.start()));
  } catch (e) {
    await close();
    throw e;
  }
  const adminToken = opts.generatedAdminToken ? readFileSync(join(instances[0]!.dataDir, 'admin-token'), 'utf8').trim() : String(config.admin_token);
  const admin = (on: HaInstance | string, method: string, path: string, body?: unknown) =>
    typeof on === 'string' ? adminRequest(on, adminToken, method, path, body) : adminRequest(on.url, adminToken, method, path, body, on.ca());
  return { instances, urls: instances.map((i) => i.url), database, config, adminToken, admin, close };
}
