import formbody from '@fastify/formbody';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { AuditLog } from './audit.js';
import type { GateConfig } from './config/load.js';
import { EnrollmentService } from './enrollment/service.js';
import { MachineConfigRenderer } from './machine-config/render.js';
import { registerErrorHandling } from './plugins/errors.js';
import { adminRoutes } from './routes/admin.js';
import { machineConfigRoutes } from './routes/machine-config.js';
import { oauthRoutes } from './routes/oauth.js';
import type { Storage } from './storage/storage.js';

export interface AppDeps {
  config: GateConfig;
  storage: Storage;
  adminToken: string;
  /** TLS key and certificate; plain HTTP when undefined. */
  https?: { key: string; cert: string } | undefined;
  /** Milliseconds since the epoch; tests pass their own clock. */
  now?: () => number;
  logger?: FastifyServerOptions['logger'];
}

export interface Gate {
  app: FastifyInstance;
  enrollment: EnrollmentService;
  renderer: MachineConfigRenderer;
}

/** Log fields that must never be written: tokens, codes, secrets, cookies. */
export const REDACTED_LOG_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'req.body',
];

/** Builds the gate's fastify app; never listens (main.ts does, tests use a port or inject). */
export async function buildApp(deps: AppDeps): Promise<Gate> {
  const now = deps.now ?? Date.now;
  const { config, storage } = deps;
  const renderer = new MachineConfigRenderer(config.templates_dir, config.profiles);
  renderer.check();
  const audit = new AuditLog(storage, now);
  const enrollment = new EnrollmentService(
    storage,
    renderer,
    audit,
    {
      publicUrl: config.public_url,
      nodeClients: config.node_clients,
      codeTtlMs: config.device.code_ttl,
      intervalMs: config.device.interval,
      tokenTtlMs: config.device.token_ttl,
      maxPendingPerIp: config.device.max_pending_per_ip,
      poll: { expiryGraceMs: config.device.expiry_grace, twinWindowMs: 2_000, earlyTolerance: 0.2 },
    },
    now,
  );

  const base = {
    logger: deps.logger ?? { level: config.log_level, redact: REDACTED_LOG_PATHS },
    bodyLimit: 256 * 1024,
    requestTimeout: 30_000,
    connectionTimeout: 60_000,
    return503OnClosing: true,
    // a misspelt key in an admin request is an error, not silently dropped
    ajv: { customOptions: { removeAdditional: false } },
    // query strings are never trusted for routing: /device/code?uuid=… is still /device/code
    routerOptions: { ignoreTrailingSlash: true },
  };
  // Why the cast: fastify types an instance by its server kind (http or https), while the route
  // plugins below are written once for either.
  const gate = (deps.https ? Fastify({ ...base, https: deps.https }) : Fastify(base)) as unknown as FastifyInstance;
  registerErrorHandling(gate);
  await gate.register(formbody, { bodyLimit: 64 * 1024 });

  gate.get('/healthz', async () => ({ status: 'ok' }));
  await gate.register(oauthRoutes(enrollment, config.public_url));
  await gate.register(machineConfigRoutes(enrollment));
  await gate.register(adminRoutes(enrollment, storage, deps.adminToken), { prefix: '/api/v1' });
  return { app: gate, enrollment, renderer };
}
