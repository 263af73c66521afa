import cookie from '@fastify/cookie';
import csrfProtection from '@fastify/csrf-protection';
import formbody from '@fastify/formbody';
import rateLimit from '@fastify/rate-limit';
import { ApiError } from './api-error.js';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { SubjectBlocks } from './access/subject-blocks.js';
import { GateReports } from './reports.js';
import { AuditLog, openAuditSink, type AuditEntry } from './audit.js';
import { rateLimitKey } from './client-ip.js';
import { GateMetrics } from './metrics.js';
import type { GateConfig } from './config/load.js';
import { DEFAULT_POLL_POLICY } from '../device/poll.js';
import { EnrollmentService } from './enrollment/service.js';
import { IdTokenVerifier } from './exchange/id-token.js';
import { ExchangeService } from './exchange/service.js';
import { loadCaCertificate, loadSigningCa } from './pki/ca.js';
import { CaFileIssuer } from './signing/ca-file.js';
import type { CertificateIssuer } from './signing/issuer.js';
import { TalosApiIssuer } from './signing/talos-api.js';
import { MachineConfigRenderer } from './machine-config/render.js';
import { registerAccessLog } from './plugins/access-log.js';
import { clientErrorHandler } from './plugins/client-errors.js';
import { registerErrorHandling } from './plugins/errors.js';
import { registerIpAllowlist } from './plugins/ip-allowlist.js';
import { registerSecurityHeaders } from './plugins/security-headers.js';
import { adminRoutes } from './routes/admin.js';
import { exchangeRoutes } from './routes/exchange.js';
import { SESSION_COOKIE, webRoutes } from './routes/web.js';
import { CodeEntryGuard } from './web/code-entry-guard.js';
import { DecisionTickets } from './web/decision-tickets.js';
import { OidcLogin } from './web/oidc-login.js';
import { SessionService } from './web/sessions.js';
import { GateTokenSigner } from './operators/gate-tokens.js';
import { OperatorService } from './operators/service.js';
import { hashSecret } from '../device/secrets.js';
import { machineConfigRoutes } from './routes/machine-config.js';
import { oauthRoutes } from './routes/oauth.js';
import type { Storage } from './storage/storage.js';

export interface AppDeps {
  config: GateConfig;
  storage: Storage;
  adminToken: string;
  /** Signs cookies and CSRF tokens; kept in data_dir so sessions survive restarts. */
  cookieSecret: string;
  /** The demo on embedded defaults: a loud banner on every page. */
  devMode?: boolean;
  /** TLS key and certificate (and, self-signed, the CA clients pin); plain HTTP when undefined. */
  https?: { key: string; cert: string; caPem?: string | undefined } | undefined;
  /** Milliseconds since the epoch; tests pass their own clock. */
  now?: () => number;
  logger?: FastifyServerOptions['logger'];
  /** Told of every audit event once written (main.ts nudges the webhook dispatcher). */
  onAudit?: (e: AuditEntry) => void;
}

export interface Gate {
  app: FastifyInstance;
  enrollment: EnrollmentService;
  exchange: ExchangeService | undefined;
  renderer: MachineConfigRenderer;
  metrics: GateMetrics | undefined;
}

type IssuerLog = NonNullable<ConstructorParameters<typeof TalosApiIssuer>[0]['log']>;

/**
 * Who signs client certificates (talos.signer): Talos through its API; else the dedicated issuing
 * CA when configured, else the Talos OS CA. Undefined when nothing can sign (no exchange).
 */
function issuerFor(config: GateConfig, log: IssuerLog): CertificateIssuer | undefined {
  const t = config.talos;
  if (t.signer === 'talos-api') {
    return new TalosApiIssuer({ talosconfig: t.api.talosconfig as string, context: t.api.context, endpoints: t.api.endpoints, timeoutMs: t.api.timeout, log });
  }
  if (!t.ca_cert) return undefined;
  if (t.issuing_ca_cert && t.issuing_ca_key) return new CaFileIssuer(loadSigningCa(t.issuing_ca_cert, t.issuing_ca_key), loadCaCertificate(t.ca_cert).pem, true);
  if (t.ca_key) return new CaFileIssuer(loadSigningCa(t.ca_cert, t.ca_key), loadCaCertificate(t.ca_cert).pem, false);
  return undefined;
}

function exchangeFor(
  config: GateConfig,
  storage: Storage,
  audit: AuditLog,
  signer: CertificateIssuer | undefined,
  operators: OperatorService,
  now: () => number,
) {
  const { oidc, talos } = config;
  if (!oidc.issuer_url || !oidc.client_id || !signer) return undefined;
  const verifier = new IdTokenVerifier({
    issuer: oidc.issuer_url,
    audiences: [oidc.client_id, ...(oidc.cli_client_id ? [oidc.cli_client_id] : []), ...oidc.extra_audiences],
    clockSkewMs: oidc.clock_skew,
    requiredClaims: oidc.required_claims,
    jwksRefreshIntervalMs: oidc.jwks_refresh_interval,
  });
  return new ExchangeService(
    storage,
    audit,
    verifier,
    {
      signer,
      issuer: oidc.issuer_url,
      certTtlMs: talos.cert_ttl,
      maxCertTtlMs: talos.max_cert_ttl,
      subjectClaim: talos.subject_claim,
      endpoints: talos.endpoints,
      rules: config.rbac.rules,
      defaultRoles: config.roles,
    },
    now,
    operators,
  );
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
  // the signer's messages go to the gate's log once there is one (the signer is made first: its
  // start-up checks decide whether the gate starts at all)
  let logger: FastifyInstance['log'] | undefined;
  const signer = issuerFor(config, (level, message, detail) => logger?.[level](detail ?? {}, message));
  // With a dedicated issuing CA, nodes enrolled here trust its certificates from their first boot.
  const renderer = new MachineConfigRenderer(config.templates_dir, config.profiles, signer?.acceptedCas() ?? []);
  try {
    renderer.check();
  } catch (e) {
    signer?.close();
    throw e;
  }
  const auditSink = openAuditSink(config.audit_log);
  const metrics = config.metrics.enabled ? new GateMetrics(storage, now) : undefined;
  const onAudit = deps.onAudit;
  const audit = new AuditLog(storage, now, auditSink, metrics || onAudit ? (e) => {
    metrics?.observe(e);
    onAudit?.(e);
  } : undefined);
  const oidcLogin =
    config.oidc.issuer_url && config.oidc.client_id
      ? new OidcLogin({
          issuer: config.oidc.issuer_url,
          clientId: config.oidc.client_id,
          clientSecret: config.oidc.client_secret,
          scopes: config.oidc.scopes,
          redirectUri: `${config.public_url}/auth/callback`,
        })
      : undefined;
  const gateTokens = await GateTokenSigner.open(storage, config.data_dir, config.public_url, now);
  const blocks = new SubjectBlocks(storage, audit, now);
  const reports = new GateReports(storage, now);
  const operators = new OperatorService(
    storage,
    audit,
    gateTokens,
    oidcLogin,
    { accessTokenTtlMs: config.operator.access_token_ttl, grantTtlMs: config.operator.login_ttl },
    now,
    blocks,
  );
  const exchange = exchangeFor(config, storage, audit, signer, operators, now);
  const enrollment = new EnrollmentService(
    storage,
    renderer,
    audit,
    {
      publicUrl: config.public_url,
      nodeClients: config.node_clients,
      operatorClients: config.operator_clients,
      codeTtlMs: config.device.code_ttl,
      intervalMs: config.device.interval,
      tokenTtlMs: config.device.token_ttl,
      maxPendingPerIp: config.device.max_pending_per_ip,
      poll: { ...DEFAULT_POLL_POLICY, expiryGraceMs: config.device.expiry_grace },
    },
    now,
    operators,
  );

  const base = {
    logger: deps.logger ?? {
      level: config.log_level,
      redact: REDACTED_LOG_PATHS,
      serializers: {
        // paths only: query strings carry authorization codes (/auth/callback) and user codes
        req: (req: { method: string; url: string; ip?: string; id?: string }) => ({ id: req.id, method: req.method, path: req.url.split('?')[0], ip: req.ip }),
      },
    },
    // one line per answered request instead of two (plugins/access-log.ts)
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 256 * 1024,
    requestTimeout: 30_000, // a whole request, headers and body
    connectionTimeout: 60_000,
    keepAliveTimeout: 65_000,
    return503OnClosing: true,
    // X-Forwarded-For / -Proto only from configured proxies (proxy-addr walks the chain from the right)
    trustProxy: config.trusted_proxies.length > 0 ? config.trusted_proxies : false,
    // a misspelt key in an admin request is an error, not silently dropped
    ajv: { customOptions: { removeAdditional: false } },
    // query strings are never trusted for routing: /device/code?uuid=… is still /device/code
    routerOptions: { ignoreTrailingSlash: true },
    // what Node's parser refuses (431, 400, 408): Connection: close, then a graceful close
    clientErrorHandler,
  };
  // Why the cast: fastify types an instance by its server kind (http or https), while the route
  // plugins below are written once for either.
  const gate = (deps.https ? Fastify({ ...base, https: { key: deps.https.key, cert: deps.https.cert } }) : Fastify(base)) as unknown as FastifyInstance;
  gate.server.headersTimeout = 10_000; // slow-loris: headers must arrive within 10 s
  logger = gate.log;
  gate.addHook('onClose', async () => signer?.close());
  // Talos signing is probed once at start, in the background: /readyz says whether it works
  if (exchange && signer instanceof TalosApiIssuer) signer.start();
  registerErrorHandling(gate);
  registerAccessLog(gate);
  await gate.register(formbody, { bodyLimit: 64 * 1024 });
  await gate.register(rateLimit, {
    global: false, // per route, below
    keyGenerator: (request) => rateLimitKey(request.ip), // an IPv4 address or an IPv6 /64
    errorResponseBuilder: (_request, ctx) =>
      new ApiError('too_many_requests', `too many requests from this address: at most ${ctx.max} a minute; try again in ${ctx.after}`),
  });
  const secureCookies = config.public_url.startsWith('https:');
  await gate.register(cookie, { secret: deps.cookieSecret });
  await gate.register(csrfProtection, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: 'tg_csrf',
    cookieOpts: { path: '/', httpOnly: true, sameSite: 'lax', secure: secureCookies, signed: true },
    // tokens are bound to the session, so one taken from another session is worthless
    csrfOpts: { userInfo: true, hmacKey: deps.cookieSecret },
    getUserInfo: (req) => {
      const c = req.cookies[SESSION_COOKIE];
      return c ? hashSecret(c) : 'anonymous';
    },
  });
  // helmet's headers, worked out once (plugins/security-headers.ts): every answer gets the same ones
  registerSecurityHeaders(gate, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        objectSrc: ["'none'"],
      },
    },
    strictTransportSecurity: secureCookies ? { maxAge: 31_536_000 } : false,
    referrerPolicy: { policy: 'no-referrer' },
  });
  // after cookies are parsed (the web pages' error handler reads the session) and security headers
  // are set, before any route and its own hooks (the admin API's authentication)
  const ipAllowed = registerIpAllowlist(gate, config.ip_allowlist);
  const sessions = new SessionService(storage, { idleMs: config.web.session_idle, maxMs: config.web.session_max }, now);

  // the self-signed mode's CA, for clients to pin (compare its fingerprint with the one printed at start)
  const caPem = deps.https?.caPem;
  if (caPem) gate.get('/ca', async (_request, reply) => reply.type('application/x-pem-file').send(caPem));
  // the pid tells workers apart (workers > 1); it says nothing an attacker can use
  gate.get('/healthz', async () => ({ status: 'ok', pid: process.pid }));
  if (metrics) {
    gate.addHook('onResponse', async (request, reply) => {
      metrics.latency.observe(
        { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      );
    });
    await gate.register(metrics.routes(config.metrics.token));
  }
  /** The checks of /readyz, also behind the talos_gate_ready gauge. */
  const readiness = async (): Promise<Record<string, string>> => {
    const checks: Record<string, string> = {};
    try {
      await storage.transaction(async () => undefined); // takes the write lock: the database is writable
      checks.database = 'ok';
    } catch (e) {
      checks.database = `failed: ${(e as Error).message}`;
    }
    // the signer says whether it can sign: always for a CA file, as the last call to Talos went for the API
    checks[signer?.readinessCheck ?? 'talos_ca'] = exchange && signer ? signer.readiness() : 'not configured';
    const idpReady = exchange ? exchange.verifierReady : oidcLogin?.ready();
    if (idpReady) {
      checks.idp = await Promise.race([
        idpReady.then(() => 'ok'),
        new Promise<string>((resolve) => setTimeout(() => resolve('failed: discovery timed out'), 3000).unref()),
      ]).catch((e: Error) => `failed: ${e.message}`);
    } else {
      checks.idp = 'not configured';
    }
    return checks;
  };
  metrics?.setReadiness(readiness);
  gate.get('/readyz', async (_request, reply) => {
    const checks = await readiness();
    const ready = Object.values(checks).every((v) => v === 'ok' || v === 'not configured');
    return reply.code(ready ? 200 : 503).header('Cache-Control', 'no-store').send({ status: ready ? 'ready' : 'not ready', checks });
  });
  await gate.register(oauthRoutes({ enrollment, operators, gateTokens, config }));
  await gate.register(machineConfigRoutes(enrollment));
  await gate.register(exchangeRoutes(exchange, config.rate_limits.exchange));
  await gate.register(
    adminRoutes({ enrollment, exchange, operators, blocks, admins: config.admins, reports, adminToken: deps.adminToken, sessions, startedAt: now(), now }),
    { prefix: '/api/v1' },
  );
  await gate.register(
    webRoutes({
      enrollment,
      reports,
      sessions,
      oidc: oidcLogin,
      guard: new CodeEntryGuard(storage, now),
      tickets: new DecisionTickets(deps.cookieSecret),
      ipAllowed,
      operators,
      blocks,
      roleRules: { rules: config.rbac.rules, defaults: config.roles },
      expiryGraceMs: config.device.expiry_grace,
      limits: { codeEntry: config.rate_limits.code_entry, signIn: config.rate_limits.sign_in },
      admins: config.admins,
      publicUrl: config.public_url,
      devMode: deps.devMode ?? false,
      now,
    }),
  );
  gate.addHook('onClose', async () => auditSink?.close());
  return { app: gate, enrollment, exchange, renderer, metrics };
}
