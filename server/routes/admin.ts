import { AUDIT_QUERY_PROPERTIES } from './audit-query.js';
import type {} from '@fastify/cookie';
import type {} from '@fastify/csrf-protection';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { secretsEqual } from '../../device/secrets.js';
import { ApiError } from '../api-error.js';
import { NODE_PAGE_MAX, NODE_STATES, type Decision, type EnrollmentService, type NodeState, type Registration } from '../enrollment/service.js';
import { importInventory, IMPORT_MAX_BYTES } from '../inventory/import.js';
import { approveMany, BULK_MAX_ITEMS, denyMany, type BulkResult, type BulkTargets } from '../enrollment/bulk-decisions.js';
import { matchesAny, type ClaimRule } from '../exchange/claims.js';
import { ExchangeError } from '../exchange/errors.js';
import type { ExchangeService } from '../exchange/service.js';
import type { OperatorService } from '../operators/service.js';
import type { SubjectBlocks } from '../access/subject-blocks.js';
import type { GateReports } from '../reports.js';
import type { CertificateRecord, WebSessionRecord } from '../storage/storage.js';
import { actorOf, type SessionService } from '../web/sessions.js';
import { SESSION_COOKIE } from './web.js';
import { nodeJson } from './node-json.js';

const patchesSchema = {
  type: 'array',
  maxItems: 32,
  items: { anyOf: [{ type: 'string', maxLength: 65536 }, { type: 'object' }, { type: 'array' }] },
} as const;

const decisionProperties = {
  profile: { type: 'string', maxLength: 64 },
  hostname: { type: 'string', maxLength: 253 },
  patches: patchesSchema,
} as const;

const cidrsSchema = { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 64 } } as const;

const nodeIdParams = {
  type: 'object',
  properties: { id: { type: 'string', maxLength: 64 } },
  required: ['id'],
} as const;

interface DecisionBody {
  profile?: string;
  hostname?: string;
  patches?: Decision['patches'];
}

function decisionOf(body: DecisionBody | undefined): Decision {
  return { profile: body?.profile, hostname: body?.hostname, patches: body?.patches };
}

/**
 * The admin API: JSON, for the admin token or a signed-in admin's session.
 */
declare module 'fastify' {
  interface FastifyRequest {
    /** Who the audit trail names for this admin request. */
    actor: string;
  }
}

export interface AdminDeps {
  enrollment: EnrollmentService;
  blocks: SubjectBlocks;
  exchange: ExchangeService | undefined;
  operators: OperatorService;
  admins: ClaimRule[];
  reports: GateReports;
  adminToken: string;
  sessions: SessionService;
  startedAt: number;
  now: () => number;
}

export function adminRoutes({ enrollment, exchange, operators, blocks, admins, reports, adminToken, sessions, startedAt, now }: AdminDeps) {
  return async (app: FastifyInstance) => {
    /**
     * The admin token; the gate access token of an admin logged in with `talos-gate login --device`;
     * or the web session of a signed-in admin (then state-changing calls also need the page's CSRF
     * token in an x-csrf-token header). The actor is kept for the audit trail.
     */
    const authenticate = async (request: FastifyRequest, reply: FastifyReply) => {
      const who = await callerOf(request, reply);
      // the same checks for every credential that speaks for an IdP subject (security review #3):
      // a blocked subject has no admin API, whichever way it signs in, and so cannot unblock itself
      if (who.sub !== undefined && (await blocks.isBlocked(who.sub))) {
        if (who.session) await sessions.destroy(who.session);
        throw new ApiError('forbidden', `${who.actor} is blocked`);
      }
      if (!who.isAdmin) throw new ApiError('forbidden', `${who.actor} is not an admin`);
      request.actor = who.actor;
    };

    /** Who a request speaks for, by its credential; throws 401 when it has none that is valid. */
    const callerOf = async (request: FastifyRequest, reply: FastifyReply): Promise<{ actor: string; sub?: string; isAdmin: boolean; session?: WebSessionRecord }> => {
      const auth = request.headers.authorization;
      if (auth !== undefined) {
        const token = /^Bearer /i.test(auth) ? auth.slice(7).trim() : '';
        if (token && secretsEqual(token, adminToken)) return { actor: 'admin-token', isAdmin: true };
        if (token && operators.isGateToken(token)) {
          const who = await operators.identify(token).catch((e: unknown) => {
            if (e instanceof ExchangeError) throw new ApiError(e.kind === 'forbidden' ? 'forbidden' : 'unauthorized', e.reason);
            throw e;
          });
          return { actor: who.email ?? who.sub, sub: who.sub, isAdmin: matchesAny(who.claims, admins) };
        }
        if (token && exchange) {
          // an ID token from the IdP (the CLI after a browser login)
          const claims = await exchange.verifyIdToken(token).catch(() => undefined);
          if (claims) {
            const sub = String(claims.sub);
            return { actor: typeof claims.email === 'string' ? claims.email : sub, sub, isAdmin: matchesAny(claims, admins) };
          }
        }
        throw new ApiError('unauthorized', 'a valid admin token is required');
      }
      const session = await sessions.get(request.cookies[SESSION_COOKIE]);
      if (!session?.sub) throw new ApiError('unauthorized', 'an admin token (Authorization: Bearer) or a signed-in admin session is required');
      if (session.isAdmin && request.method !== 'GET' && request.method !== 'HEAD') {
        await new Promise<void>((resolve, reject) => app.csrfProtection(request, reply, (err?: Error) => (err ? reject(new ApiError('forbidden', 'a valid x-csrf-token header is required')) : resolve())));
      }
      return { actor: actorOf(session), sub: session.sub, isAdmin: session.isAdmin, session };
    };
    app.decorateRequest('actor', '');
    app.addHook('onRequest', authenticate);

    app.get<{ Querystring: { status?: NodeState; q?: string; limit?: number; cursor?: string } }>(
      '/nodes',
      {
        schema: {
          querystring: {
            type: 'object',
            properties: {
              status: { type: 'string', enum: [...NODE_STATES] },
              q: { type: 'string', maxLength: 128 },
              limit: { type: 'integer', minimum: 1, maximum: NODE_PAGE_MAX },
              cursor: { type: 'string', maxLength: 256 },
            },
            additionalProperties: false,
          },
        },
      },
      async (request) => {
        const { status, q, limit, cursor } = request.query;
        const page = await enrollment.listNodes({ state: status, q }, { limit, cursor });
        return { nodes: page.nodes.map(nodeJson), next_cursor: page.nextCursor };
      },
    );

    app.post<{ Body: DecisionBody & { uuid?: string; mac?: string; serial?: string; auto_approve?: boolean; auto_approve_cidrs?: string[] } }>(
      '/nodes',
      {
        schema: {
          body: {
            type: 'object',
            properties: {
              ...decisionProperties,
              uuid: { type: 'string', maxLength: 64 },
              mac: { type: 'string', maxLength: 64 },
              serial: { type: 'string', maxLength: 128 },
              auto_approve: { type: 'boolean' },
              auto_approve_cidrs: cidrsSchema,
            },
            required: ['profile'],
            additionalProperties: false,
          },
        },
      },
      async (request, reply) => {
        const b = request.body;
        const reg: Registration = { ...decisionOf(b), uuid: b.uuid, mac: b.mac, serial: b.serial, autoApprove: b.auto_approve, autoApproveCidrs: b.auto_approve_cidrs };
        return reply.code(201).send(nodeJson(await enrollment.register(reg, request.actor)));
      },
    );

    // inventory import: the body as text, parsed by server/inventory/ (CSV or JSON lines)
    app.addContentTypeParser(['text/csv', 'application/x-ndjson'], { parseAs: 'string', bodyLimit: IMPORT_MAX_BYTES }, (_request, body, done) => done(null, body));
    app.post<{ Querystring: { dry_run?: boolean }; Body: string }>(
      '/nodes/import',
      {
        bodyLimit: IMPORT_MAX_BYTES,
        schema: { querystring: { type: 'object', properties: { dry_run: { type: 'boolean' } }, additionalProperties: false } },
      },
      async (request) => {
        const type = String(request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
        if (typeof request.body !== 'string' || (type !== 'text/csv' && type !== 'application/x-ndjson')) {
          throw new ApiError('invalid_request', 'send the inventory as text/csv or application/x-ndjson');
        }
        const dryRun = request.query.dry_run === true;
        const r = await importInventory(enrollment, request.body, type === 'text/csv' ? 'csv' : 'ndjson', request.actor, { dryRun });
        return { dry_run: dryRun, rows: r.rows, created: r.created, updated: r.updated, unchanged: r.unchanged };
      },
    );

    // bulk decisions: one answer per item, in the order given (server/enrollment/bulk-decisions.ts)
    const targetsSchema = {
      user_codes: { type: 'array', minItems: 1, maxItems: BULK_MAX_ITEMS, items: { type: 'string', maxLength: 32 } },
      node_ids: { type: 'array', minItems: 1, maxItems: BULK_MAX_ITEMS, items: { type: 'string', maxLength: 64 } },
    } as const;
    const oneTargetList = { oneOf: [{ required: ['user_codes'] }, { required: ['node_ids'] }] } as const;
    type TargetBody = { user_codes?: string[]; node_ids?: string[] };
    const targetsOf = (b: TargetBody): BulkTargets => (b.user_codes !== undefined ? { userCodes: b.user_codes } : { nodeIds: b.node_ids ?? [] });
    app.post<{ Body: TargetBody & { profile?: string; hostname_template?: string; patches?: Decision['patches'] } }>(
      '/nodes/approve',
      {
        schema: {
          body: {
            type: 'object',
            properties: { ...targetsSchema, profile: decisionProperties.profile, hostname_template: { type: 'string', maxLength: 253 }, patches: patchesSchema },
            ...oneTargetList,
            additionalProperties: false,
          },
        },
      },
      async (request) => {
        const b = request.body;
        const results = await approveMany(enrollment, targetsOf(b), { profile: b.profile, hostnameTemplate: b.hostname_template, patches: b.patches }, request.actor);
        return { results: results.map(bulkResultJson) };
      },
    );
    app.post<{ Body: TargetBody }>(
      '/nodes/deny',
      { schema: { body: { type: 'object', properties: targetsSchema, ...oneTargetList, additionalProperties: false } } },
      async (request) => ({ results: (await denyMany(enrollment, targetsOf(request.body), request.actor)).map(bulkResultJson) }),
    );

    // re-arms the one-shot auto-approval of a node (its first approval used it up)
    app.post<{ Params: { id: string }; Body: { auto_approve_cidrs?: string[] } | undefined }>(
      '/nodes/:id/auto-approve',
      {
        schema: { params: nodeIdParams, body: { type: 'object', properties: { auto_approve_cidrs: cidrsSchema }, additionalProperties: false } },
        // a bare POST (no body) re-arms with the node's current CIDRs
        preValidation: async (request) => {
          request.body ??= {};
        },
      },
      async (request) => nodeJson(await enrollment.armAutoApprove(request.params.id, request.body?.auto_approve_cidrs, request.actor)),
    );

    app.get<{ Params: { id: string } }>('/nodes/:id', { schema: { params: nodeIdParams } }, async (request) =>
      nodeJson(await enrollment.getNode(request.params.id)),
    );

    app.delete<{ Params: { id: string } }>('/nodes/:id', { schema: { params: nodeIdParams } }, async (request, reply) => {
      await enrollment.forgetNode(request.params.id, request.actor);
      return reply.code(204).send();
    });

    app.get<{ Params: { id: string } }>('/nodes/:id/config', { schema: { params: nodeIdParams } }, async (request, reply) =>
      reply.type('application/yaml; charset=utf-8').send(await enrollment.nodeConfig(request.params.id)),
    );

    const decisionBody = { type: 'object', properties: decisionProperties, additionalProperties: false } as const;
    app.post<{ Params: { id: string }; Body: DecisionBody | undefined }>(
      '/nodes/:id/approve',
      { schema: { params: nodeIdParams, body: decisionBody } },
      async (request) => nodeJson(await enrollment.approveNode(request.params.id, decisionOf(request.body), request.actor)),
    );
    app.post<{ Params: { id: string } }>('/nodes/:id/deny', { schema: { params: nodeIdParams } }, async (request) =>
      nodeJson(await enrollment.denyNode(request.params.id, request.actor)),
    );
    app.post<{ Params: { id: string } }>('/nodes/:id/revoke', { schema: { params: nodeIdParams } }, async (request) =>
      nodeJson(await enrollment.revokeNode(request.params.id, request.actor)),
    );
    // stores what the templates render now for an approved node (a config is rendered once, at approval)
    app.post<{ Params: { id: string } }>('/nodes/:id/rerender', { schema: { params: nodeIdParams } }, async (request) => {
      const { node, changed } = await enrollment.rerenderNode(request.params.id, request.actor);
      return { ...nodeJson(node), changed };
    });

    const userCodeBody = {
      type: 'object',
      properties: { ...decisionProperties, user_code: { type: 'string', maxLength: 32 } },
      required: ['user_code'],
      additionalProperties: false,
    } as const;
    app.post<{ Body: DecisionBody & { user_code: string } }>('/device/approve', { schema: { body: userCodeBody } }, async (request) =>
      nodeJson(await enrollment.approveByUserCode(request.body.user_code, decisionOf(request.body), request.actor)),
    );
    app.post<{ Body: { user_code: string } }>(
      '/device/deny',
      { schema: { body: { type: 'object', properties: { user_code: { type: 'string', maxLength: 32 } }, required: ['user_code'], additionalProperties: false } } },
      async (request) => nodeJson(await enrollment.denyByUserCode(request.body.user_code, request.actor)),
    );

    app.get<{ Querystring: { limit?: number; before?: number; type?: string; subject?: string; actor?: string } }>(
      '/audit',
      {
        schema: {
          querystring: {
            type: 'object',
            properties: {
              limit: { type: 'integer', minimum: 1, maximum: 1000 },
              ...AUDIT_QUERY_PROPERTIES,
            },
            additionalProperties: false,
          },
        },
      },
      async (request) => {
        const { type, subject, actor } = request.query;
        const { events, nextBefore } = await reports.auditPage({ limit: request.query.limit ?? 100, before: request.query.before }, { type, subject, actor });
        // with a subject, a page may hold fewer events and still have older ones (reports.ts auditPage)
        return { events: events.map((e) => ({ ...e, at: new Date(e.at).toISOString() })), next_before: nextBefore };
      },
    );

    app.get<{ Querystring: { active?: boolean; subject?: string; limit?: number; before?: number; total?: boolean } }>(
      '/certs',
      {
        schema: {
          querystring: {
            type: 'object',
            properties: {
              active: { type: 'boolean' },
              subject: { type: 'string', maxLength: 512 },
              limit: { type: 'integer', minimum: 1, maximum: 1000 },
              before: { type: 'integer', minimum: 1 },
              total: { type: 'boolean' },
            },
            additionalProperties: false,
          },
        },
      },
      async (request) => {
        const q = request.query;
        const limit = q.limit ?? 100;
        const { certs, total } = await reports.certificates({ active: q.active, subject: q.subject }, { limit, before: q.before }, q.total === true);
        const last = certs[certs.length - 1];
        return {
          certs: certs.map(certJson),
          ...(total !== undefined ? { total } : {}),
          next_before: certs.length === limit && last ? last.id : null,
        };
      },
    );

    app.get('/stats', async () => {
      const t = now();
      const s = await reports.stats();
      return {
        started_at: new Date(startedAt).toISOString(),
        uptime_seconds: Math.floor((t - startedAt) / 1000),
        total_certs_issued: s.totalCertsIssued,
        active_certs: s.activeCerts,
        auth_successes: s.authSuccesses,
        auth_failures: s.authFailures,
        cert_errors: s.certErrors,
        nodes: s.nodes,
        blocked_subjects: s.blockedSubjects,
      };
    });

    const subParams = { type: 'object', properties: { sub: { type: 'string', minLength: 1, maxLength: 512 } }, required: ['sub'] } as const;
    app.post<{ Params: { sub: string }; Body: { reason?: string } | undefined }>(
      '/subjects/:sub/block',
      { schema: { params: subParams, body: { type: 'object', properties: { reason: { type: 'string', maxLength: 512 } }, additionalProperties: false } } },
      async (request) => {
        const r = await blocks.block(request.params.sub, request.actor, request.body?.reason);
        return { subject: request.params.sub, blocked: true, changed: r.changed, web_sessions_ended: r.webSessions, operator_logins_revoked: r.operatorLogins };
      },
    );
    app.post<{ Params: { sub: string } }>('/subjects/:sub/unblock', { schema: { params: subParams } }, async (request) => {
      const removed = await blocks.unblock(request.params.sub, request.actor);
      return { subject: request.params.sub, blocked: false, changed: removed };
    });
    app.get('/subjects/blocked', async () => ({
      subjects: (await blocks.list()).map((b) => ({
        subject: b.subject,
        blocked_at: new Date(b.blockedAt).toISOString(),
        blocked_by: b.blockedBy,
        reason: b.reason,
      })),
    }));
  };
}

/** One item of a bulk decision on the wire: the target as given, then the node or the error (RFC 6749 shape). */
function bulkResultJson(r: BulkResult) {
  const target = 'userCode' in r ? { user_code: r.userCode } : { node_id: r.nodeId };
  if (r.status === 'error') return { ...target, status: r.status, error: r.error, error_description: r.description };
  return { ...target, status: r.status, node: nodeJson(r.node) };
}

function certJson(c: CertificateRecord) {
  return {
    id: c.id,
    serial: c.serial,
    fingerprint: c.fingerprint,
    subject: c.subject,
    email: c.email,
    common_name: c.commonName,
    issuer: c.issuer,
    roles: c.roles,
    issued_at: new Date(c.issuedAt).toISOString(),
    expires_at: new Date(c.expiresAt).toISOString(),
    client_ip: c.clientIp,
    source: c.source,
  };
}
