import { mkdirSync, readFileSync, unwatchFile, watchFile, writeFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import type { GateMetrics } from './metrics.js';
import { ConfigError, ENV_PREFIX, loadConfig, type GateConfig } from './config/load.js';
import { EnrollmentMaintenance } from './enrollment/maintenance.js';
import { MachineConfigRenderer } from './machine-config/render.js';
import { WebhookDispatcher } from './notifications/dispatcher.js';
import { subscriptionsFor, webhooksFrom } from './notifications/webhooks.js';
import { openStorage } from './storage/open.js';
import { refuseUnreadableValues } from './secrets/startup.js';
import { demoSystemSecret, sealedBoxFor } from './secrets/system-secret.js';
import type { Storage } from './storage/storage.js';
import { maintainSigningKeys } from './operators/signing-keys.js';
import { DataDirSecrets, DatabaseSecrets, randomSecret, type SecretPlace } from './secrets/instance-secrets.js';
import { ensureSelfSignedTls, ensureSharedSelfSignedTls, serverNames, type TlsMaterial } from './tls/self-signed.js';
import { startDemo, type Demo } from './demo.js';

export interface RunningGate {
  app: FastifyInstance;
  prepared: PreparedGate;
  /** Set when running the demo on embedded defaults. */
  demo: Demo | undefined;
  storage: Storage;
  /** The background garbage collection; tests run a pass with maintenance.run(). */
  maintenance: EnrollmentMaintenance;
  /** Delivers the webhook outbox; undefined when no webhook is configured or this process does not maintain. */
  notifications: WebhookDispatcher | undefined;
  config: GateConfig;
  url: string;
  adminToken: string;
  tls: TlsMaterial | undefined;
  close(): Promise<void>;
}

/**
 * The admin token from config, else one made once: with PostgreSQL kept in the database (every
 * instance accepts it) and copied to data_dir/admin-token for the operator to read; with SQLite in
 * data_dir/admin-token.
 */
async function adminTokenFor(config: GateConfig, secrets: SecretPlace): Promise<{ token: string; file?: string }> {
  if (config.admin_token) return { token: config.admin_token };
  const file = join(config.data_dir, 'admin-token');
  const token = await secrets.get('admin-token', randomSecret);
  if (secrets instanceof DatabaseSecrets) writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return { token, file };
}

async function tlsFor(config: GateConfig, secrets: SecretPlace): Promise<TlsMaterial | undefined> {
  switch (config.tls.mode) {
    case 'off':
      return undefined;
    case 'files':
      return { cert: readFileSync(config.tls.cert as string, 'utf8'), key: readFileSync(config.tls.key as string, 'utf8') };
    case 'self-signed': {
      const names = [...new Set([...serverNames(config.public_url, config.listen), ...config.tls.extra_sans])];
      if (!(secrets instanceof DatabaseSecrets)) return ensureSelfSignedTls(config.data_dir, names);
      const tls = await ensureSharedSelfSignedTls(secrets, names);
      // the CA certificate (public) where the banner and the docs say clients find it; its key stays in the database
      mkdirSync(join(config.data_dir, 'tls'), { recursive: true, mode: 0o700 });
      writeFileSync(join(config.data_dir, 'tls', 'ca.crt'), tls.caPem ?? '', { mode: 0o644 });
      return tls;
    }
  }
}

/**
 * tls.mode files: new certificate files (a renewal by cert-manager, certbot, …) are picked up
 * without a restart. A broken or mismatched pair is refused and the old certificate stays.
 */
function watchTlsFiles(app: FastifyInstance, config: GateConfig): () => void {
  const cert = config.tls.cert as string;
  const key = config.tls.key as string;
  const reload = () => {
    try {
      const material = { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
      createSecureContext(material); // throws when broken or when key and certificate do not match
      (app.server as unknown as { setSecureContext(o: { cert: string; key: string }): void }).setSecureContext(material); // why: fastify types the server as http
      app.log.info({ cert }, 'TLS certificate reloaded');
    } catch (e) {
      app.log.error({ cert, err: (e as Error).message }, 'new TLS files are not usable; keeping the old certificate');
    }
  };
  for (const f of [cert, key]) watchFile(f, { interval: 1000 }, reload);
  return () => {
    for (const f of [cert, key]) unwatchFile(f, reload);
  };
}

function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}

export interface PreparedGate {
  config: GateConfig;
  demo: Demo | undefined;
  /** The TALOS_GATE_* variables the config took keys from, for the banner. */
  envSettings: string[];
  admin: { token: string; file?: string };
  tls: TlsMaterial | undefined;
  cookieSecret: string;
}

/**
 * Everything before listening that writes: config checks, data_dir, the database schema, then the
 * secrets and TLS material (in the database with PostgreSQL, docs/ha.md; in data_dir with SQLite).
 * With workers, the primary runs it once before forking, so workers only read.
 */
export async function prepareGate(
  configFile: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  opts: { demo?: boolean } = {},
): Promise<PreparedGate> {
  const loaded = loadConfig(configFile, env);
  const envSettings = Object.keys(env).filter((k) => k.startsWith(ENV_PREFIX) && env[k] !== undefined).sort();
  // The demo (development IdP, throwaway CA) runs only when nothing at all is configured, or when
  // asked for by name: a gate set up through TALOS_GATE_* variables alone never silently becomes it.
  const wantDemo = opts.demo === true || (configFile === undefined && envSettings.length === 0);
  if (wantDemo && configFile !== undefined) throw new ConfigError(loaded.source, '', 'the demo runs without a config file: drop --demo or --config');
  if (wantDemo && loaded.oidc.issuer_url) {
    throw new ConfigError(`environment variable ${ENV_PREFIX}OIDC_ISSUER_URL`, 'oidc.issuer_url', 'the demo brings its own development IdP: unset it, or drop --demo');
  }
  const clustered = loaded.workers > 1;
  if (clustered && configFile === undefined) {
    throw new ConfigError(loaded.source, 'workers', 'more than one worker needs a config file (the demo runs in one process)');
  }
  // before anything is written: every profile renders, so a broken template or patch stops the start
  new MachineConfigRenderer(loaded.templates_dir, loaded.profiles).check();
  mkdirSync(loaded.data_dir, { recursive: true, mode: 0o700 });
  const demo = wantDemo ? await startDemo(loaded) : undefined;
  const chosen = demo?.config ?? loaded;
  // the demo seals with a secret it makes in data_dir; a real gate without one stops in openStorage
  const config =
    demo && chosen.secrets.system.length === 0 ? { ...chosen, secrets: { ...chosen.secrets, system: [demoSystemSecret(chosen.data_dir)] } } : chosen;
  // applies migrations; a database.url that cannot be used stops the start here, naming the key;
  // a stored value these secrets cannot open stops it too, naming the rows (never an empty config served)
  const box = sealedBoxFor(config);
  const storage = await openStorage(config, { box });
  try {
    await refuseUnreadableValues(storage, box, config.source);
    // the triggers that fill the webhook outbox read these: what this config asks for, from now on
    await storage.webhooks.syncSubscriptions(subscriptionsFor(webhooksFrom(config.notifications.webhooks), config.notifications.auth_failure_burst));
    // PostgreSQL: the secrets every instance must share come from the database (docs/ha.md)
    const secrets: SecretPlace = storage.backend === 'postgres' ? new DatabaseSecrets(storage, Date.now, config.data_dir) : new DataDirSecrets(config.data_dir);
    const admin = await adminTokenFor(config, secrets);
    const tls = await tlsFor(config, secrets);
    const cookieSecret = await secrets.get('cookie-secret', randomSecret);
    return { config, demo, envSettings, admin, tls, cookieSecret };
  } finally {
    await storage.close();
  }
}

/** One maintenance round: garbage collection, retention, signing keys. On PostgreSQL one instance at a time runs it. */
export interface MaintenanceRound {
  gc: { nodes: number; deviceRequests: number };
  retention: { certificates: number; auditEvents: number };
  keys: { rotated?: string; retired: string[] };
}

/**
 * Runs a round unless another instance runs one right now (Storage.exclusively): the others skip
 * the round rather than repeat the same deletes. Resolves undefined when skipped.
 */
export async function maintenanceRound(
  storage: Storage,
  maintenance: EnrollmentMaintenance,
  config: { retention: Pick<GateConfig['retention'], 'certs' | 'audit'>; operator: Pick<GateConfig['operator'], 'access_token_ttl'> },
  now: () => number = Date.now,
): Promise<MaintenanceRound | undefined> {
  const r = await storage.exclusively('maintenance', async () => {
    const counts = await maintenance.run();
    const t = now();
    const retention = await storage.applyRetention(t - config.retention.certs, t - config.retention.audit);
    const keys = await maintainSigningKeys(storage, t, config.operator.access_token_ttl);
    return { gc: { nodes: counts.nodes, deviceRequests: counts.deviceRequests }, retention, keys };
  });
  return r.ran ? r.value : undefined;
}

/** Loads the config, opens the database, and listens. Config errors throw before anything listens. */
export async function startGate(
  configFile: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  opts: { runMaintenance?: boolean; prepared?: PreparedGate; demo?: boolean } = {},
): Promise<RunningGate> {
  const prepared = opts.prepared ?? (await prepareGate(configFile, env, opts.demo ? { demo: true } : {}));
  const { config, demo, admin, tls, cookieSecret } = prepared;
  let app: FastifyInstance | undefined;
  let notifications: WebhookDispatcher | undefined;
  let metrics: GateMetrics | undefined;
  // PostgreSQL: an idle pooled connection that broke (a server restart) is dropped and made anew when needed
  const storage = await openStorage(config, { onIdleError: (e) => app?.log.warn({ err: e.message }, 'a pooled database connection failed; it is replaced') });
  try {
    ({ app, metrics } = await buildApp({
      config,
      storage,
      adminToken: admin.token,
      cookieSecret,
      devMode: demo !== undefined,
      https: tls,
      onAudit: (e) => notifications?.nudge(e.type),
    }));
  } catch (e) {
    await storage.close();
    await demo?.idp.close();
    throw e;
  }
  const { host, port } = splitListen(config.listen);
  await app.listen({ host, port, backlog: config.listen_backlog });
  const address = app.server.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  const url = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;

  // with workers, one of them prunes; the others would only contend for the write lock
  const maintenance = new EnrollmentMaintenance(storage, {
    expiryGraceMs: config.device.expiry_grace,
    pendingRetentionMs: config.device.pending_retention,
  });
  const gc = setInterval(() => {
    if (opts.runMaintenance === false) return;
    // in batches, the event loop free between them (a backlog of junk nodes must not stall requests)
    maintenanceRound(storage, maintenance, config)
      .then((round) => {
        if (!round) return app.log.debug('maintenance round skipped: another instance runs one');
        if (round.gc.nodes > 0) app.log.info({ nodes: round.gc.nodes, device_requests: round.gc.deviceRequests }, 'deleted nodes nobody decided on');
        if (round.keys.rotated) app.log.info({ kid: round.keys.rotated }, 'gate-token signing key rotated (it signs once published)');
        if (round.keys.retired.length > 0) app.log.info({ kids: round.keys.retired }, 'retired gate-token signing keys deleted');
      })
      .catch((e: unknown) => app.log.error({ err: e }, 'garbage collection failed'));
  }, 60_000);
  gc.unref();

  // with workers, the one that maintains delivers: claims keep several dispatchers apart (PostgreSQL
  // gates sharing a database), but the other workers would only add polls
  const webhooks = webhooksFrom(config.notifications.webhooks);
  if (webhooks.length > 0 && opts.runMaintenance !== false) {
    notifications = new WebhookDispatcher(storage, webhooks, {
      publicUrl: config.public_url,
      timeoutMs: config.notifications.timeout,
      authFailureBurst: config.notifications.auth_failure_burst,
      metrics: metrics && { delivery: (r) => metrics?.webhookDelivery(r) },
      log: app.log,
    });
    notifications.start();
  }

  const stopWatching = config.tls.mode === 'files' ? watchTlsFiles(app, config) : () => {};
  if (config.tls.mode === 'off') {
    app.log.warn('tls.mode is off: serving plain HTTP; only do this behind a TLS-terminating proxy');
  }
  if (admin.file) app.log.info(`admin token kept in ${admin.file}`);

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      clearInterval(gc);
      stopWatching();
      await notifications?.stop(); // its deliveries in flight are released, to be sent at the next start
      await maintenance.stop(); // between two batches, before the database closes
      await app.close();
      await storage.close();
      await demo?.idp.close();
    })();
    return closing;
  };
  return { app, prepared, demo, storage, maintenance, notifications, config, url, adminToken: admin.token, tls, close };
}
