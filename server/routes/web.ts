import type {} from '@fastify/cookie';
import type {} from '@fastify/csrf-protection';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OAuthError } from '../../device/errors.js';
import { normalizeUserCode } from '../../device/user-code.js';
import { ApiError } from '../api-error.js';
import { clientIp } from '../client-ip.js';
import { defaultHostname, type EnrollmentService } from '../enrollment/service.js';
import { matchesAny, type ClaimRule } from '../exchange/claims.js';
import { mapRoles, type RoleRule } from '../exchange/roles.js';
import type { SubjectBlocks } from '../access/subject-blocks.js';
import type { IpAllowed } from '../plugins/ip-allowlist.js';
import type { OperatorService } from '../operators/service.js';
import { perMinute } from '../plugins/rate-limits.js';
import { DATABASE_RETRY_AFTER_SECONDS } from '../plugins/errors.js';
import type { GateReports } from '../reports.js';
import { StorageUnavailableError, type WebSessionRecord } from '../storage/storage.js';
import type { CodeEntryGuard } from '../web/code-entry-guard.js';
import type { DecisionTickets } from '../web/decision-tickets.js';
import type { Html } from '../web/html.js';
import type { OidcLogin } from '../web/oidc-login.js';
import { actorOf, type SessionService } from '../web/sessions.js';
import { approveMany, denyMany } from '../enrollment/bulk-decisions.js';
import { parseBulkForm, type BulkFormBody } from '../web/bulk-form.js';
import { DASHBOARD_TABS, loadTab, type DashboardTab } from '../web/dashboard-tabs.js';
import { bulkDone } from '../web/views/bulk.js';
import { dashboard } from '../web/views/dashboard.js';
import { webNodeRoutes } from './web-nodes.js';
import { DASHBOARD_JS } from '../web/views/dashboard-script.js';
import { safeReturnTo } from '../web/return-to.js';
import { codeEntry, confirmNode, confirmOperator, decisionDone, operatorDone } from '../web/views/device.js';
import { page } from '../web/views/layout.js';
import { notAllowed, problem, signedOut } from '../web/views/messages.js';
import { APP_CSS } from '../web/views/styles.js';

export const SESSION_COOKIE = 'tg_session';

/** The waiting tab reloads itself this often while the admin leaves it alone (web/views/dashboard-script.ts). */
const DASHBOARD_REFRESH_SECONDS = 15;

export interface WebDeps {
  enrollment: EnrollmentService;
  reports: GateReports;
  sessions: SessionService;
  oidc: OidcLogin | undefined;
  guard: CodeEntryGuard;
  tickets: DecisionTickets;
  /** ip_allowlist: machines' requests are shown and decided only from the admin group's addresses. */
  ipAllowed: IpAllowed;
  operators: OperatorService;
  blocks: SubjectBlocks;
  /** To show operators the roles a CLI login will get. */
  roleRules: { rules: RoleRule[]; defaults: string[] };
  expiryGraceMs: number;
  /** Requests per minute per client IP. */
  limits: { codeEntry: number; signIn: number };
  admins: ClaimRule[];
  publicUrl: string;
  devMode: boolean;
  now: () => number;
}

interface Ctx {
  session: WebSessionRecord | undefined;
}

/** The web page: OIDC sign-in, code entry and confirmation, the admins' dashboard. HTML only. */
export function webRoutes(d: WebDeps) {
  const secure = d.publicUrl.startsWith('https:');
  const cookieOpts = { path: '/', httpOnly: true, sameSite: 'lax' as const, secure };

  return async (app: FastifyInstance) => {
    // A blocked subject's sessions end when it is blocked; a session read here is checked again all the
    // same (security review #3), so no page ever acts for a blocked subject.
    const ctxOf = async (request: FastifyRequest): Promise<Ctx> => {
      const session = await d.sessions.get(request.cookies[SESSION_COOKIE]);
      if (session?.sub && (await d.blocks.isBlocked(session.sub))) {
        await d.sessions.destroy(session);
        return { session: undefined };
      }
      return { session };
    };
    const ensureSession = async (request: FastifyRequest, reply: FastifyReply): Promise<WebSessionRecord> => {
      const existing = await d.sessions.get(request.cookies[SESSION_COOKIE]);
      if (existing) return existing;
      const { cookie, session } = await d.sessions.create();
      reply.setCookie(SESSION_COOKIE, cookie, cookieOpts);
      request.cookies[SESSION_COOKIE] = cookie;
      return session;
    };
    // One token per response: the first call also sets the secret cookie, and a second call in the
    // same response would set another secret that the first token does not match.
    const tokens = new WeakMap<FastifyReply, string>();
    const csrf = (reply: FastifyReply, session: WebSessionRecord | undefined) => {
      let token = tokens.get(reply);
      if (token === undefined) {
        token = reply.generateCsrf({ userInfo: session?.idHash ?? 'anonymous' });
        tokens.set(reply, token);
      }
      return token;
    };
    const viewerOf = (s: WebSessionRecord | undefined) => (s?.sub ? { name: s.email ?? s.name ?? s.sub, isAdmin: s.isAdmin } : undefined);
    const send = (reply: FastifyReply, status: number, title: string, body: Html, session: WebSessionRecord | undefined, scripts?: string[]) =>
      reply
        .code(status)
        .header('Cache-Control', 'no-store')
        .type('text/html; charset=utf-8')
        .send(page({ title, body, viewer: viewerOf(session), csrfToken: csrf(reply, session), devMode: d.devMode, scripts }).value);
    /** Signed in, or sent to sign in and back here. */
    const requireUser = (request: FastifyRequest, reply: FastifyReply, ctx: Ctx): WebSessionRecord | undefined => {
      if (ctx.session?.sub) return ctx.session;
      reply.redirect(`/auth/login?return_to=${encodeURIComponent(request.url)}`, 303);
      return undefined;
    };
    const requireAdmin = (request: FastifyRequest, reply: FastifyReply, ctx: Ctx): WebSessionRecord | undefined => {
      const s = requireUser(request, reply, ctx);
      if (!s) return undefined;
      if (!s.isAdmin) {
        send(reply, 403, 'Not allowed', notAllowed(actorOf(s)), s);
        return undefined;
      }
      return s;
    };

    app.setErrorHandler(async (err: FastifyError, request, reply) => {
      // before the session is looked up: it lives in the database that cannot be reached
      if (err instanceof StorageUnavailableError) {
        request.log.warn({ reason: err.reason }, 'database unavailable');
        reply.header('Retry-After', String(DATABASE_RETRY_AFTER_SECONDS));
        return send(reply, 503, 'Unavailable', problem('The gate cannot reach its database', 'Try again in a moment.'), undefined);
      }
      const session = await d.sessions.get(request.cookies[SESSION_COOKIE]);
      if (err.code === 'FST_CSRF_INVALID_TOKEN' || err.code === 'FST_CSRF_MISSING_SECRET') {
        return send(reply, 403, 'Refused', problem('Refused', 'This form expired or did not come from this site. Reload the page and try again.'), session);
      }
      if (err instanceof ApiError || err instanceof OAuthError) return send(reply, err.status, 'Problem', problem('Problem', err.description), session);
      if ((err.statusCode ?? 500) < 500) return send(reply, err.statusCode ?? 400, 'Bad request', problem('Bad request', err.message.slice(0, 200)), session);
      request.log.error({ err }, 'web request failed');
      return send(reply, 500, 'Error', problem('Something went wrong', 'talos-gate could not handle this request; its log says why.'), session);
    });

    app.get('/static/app.css', async (_request, reply) =>
      reply.type('text/css; charset=utf-8').header('Cache-Control', 'public, max-age=3600').send(APP_CSS),
    );
    app.get('/static/dashboard.js', async (_request, reply) =>
      reply.type('text/javascript; charset=utf-8').header('Cache-Control', 'public, max-age=3600').send(DASHBOARD_JS),
    );

    // --- sign-in ---------------------------------------------------------------------------

    app.get<{ Querystring: { return_to?: string } }>('/auth/login', perMinute(d.limits.signIn), async (request, reply) => {
      if (!d.oidc) return send(reply, 503, 'Sign-in unavailable', problem('Sign-in is not configured', 'Set oidc.issuer_url and oidc.client_id in the gate config.'), undefined);
      const session = await ensureSession(request, reply);
      const start = await d.oidc.start().catch((e: Error) => {
        request.log.warn({ err: e }, 'IdP discovery failed');
        return undefined;
      });
      if (!start) return send(reply, 503, 'Sign-in unavailable', problem('The identity provider cannot be reached', 'Try again in a moment.'), session);
      await d.sessions.startLogin(session, {
        state: start.state,
        nonce: start.nonce,
        codeVerifier: start.codeVerifier,
        returnTo: safeReturnTo(request.query.return_to),
        startedAt: d.now(),
      });
      return reply.redirect(start.url, 303);
    });

    app.get<{ Querystring: Record<string, string | undefined> }>('/auth/callback', async (request, reply) => {
      const ctx = await ctxOf(request);
      const pending = ctx.session?.login;
      if (!d.oidc || !ctx.session || !pending) {
        return send(reply, 400, 'Sign-in failed', problem('Sign-in failed', 'This sign-in was not started here or has expired. Start again.'), ctx.session);
      }
      if (request.query.error) {
        return send(reply, 400, 'Sign-in failed', problem('Sign-in failed', `The identity provider said: ${request.query.error_description ?? request.query.error}`), ctx.session);
      }
      let claims: Record<string, unknown>;
      let idpRefreshToken: string | null;
      try {
        ({ claims, refreshToken: idpRefreshToken } = await d.oidc.finish(new URL(request.url, d.publicUrl), pending));
      } catch (e) {
        request.log.warn({ err: e }, 'sign-in callback refused');
        return send(reply, 400, 'Sign-in failed', problem('Sign-in failed', 'The answer from the identity provider could not be verified. Start again.'), ctx.session);
      }
      if (await d.blocks.isBlocked(String(claims.sub))) {
        await d.sessions.destroy(ctx.session);
        reply.clearCookie(SESSION_COOKIE, cookieOpts);
        return send(reply, 403, 'Blocked', problem('This account is blocked', 'An admin of this gate blocked your account. Ask them why.'), undefined);
      }
      const user = {
        sub: String(claims.sub),
        email: typeof claims.email === 'string' ? claims.email : null,
        name: typeof claims.name === 'string' ? claims.name : null,
        claims,
        isAdmin: matchesAny(claims, d.admins),
        idpRefreshToken,
      };
      // a new session id at sign-in, so an id planted before it is worth nothing after
      await d.sessions.destroy(ctx.session);
      const { cookie, session } = await d.sessions.create();
      await d.sessions.completeLogin(session, user);
      reply.setCookie(SESSION_COOKIE, cookie, cookieOpts);
      return reply.redirect(pending.returnTo, 303);
    });

    app.post('/auth/logout', { preHandler: app.csrfProtection }, async (request, reply) => {
      const ctx = await ctxOf(request);
      if (ctx.session) await d.sessions.destroy(ctx.session);
      reply.clearCookie(SESSION_COOKIE, cookieOpts);
      return send(reply, 200, 'Signed out', signedOut(), undefined);
    });

    // --- dashboard -------------------------------------------------------------------------

    // tabs by node state, a search and stable "next page" cursors, as GET /api/v1/nodes has them
    app.get<{ Querystring: { tab?: DashboardTab; q?: string; cursor?: string } }>(
      '/',
      {
        schema: {
          querystring: {
            type: 'object',
            properties: {
              tab: { type: 'string', enum: [...DASHBOARD_TABS] },
              q: { type: 'string', maxLength: 128 },
              cursor: { type: 'string', maxLength: 256 },
            },
          },
        },
      },
      async (request, reply) => {
        const ctx = await ctxOf(request);
        const s = requireAdmin(request, reply, ctx);
        if (!s) return reply;
        const { tab = 'waiting', q = '', cursor } = request.query;
        const recent = await d.reports.dashboard();
        const body = dashboard({
          tab: await loadTab(d.enrollment, { tab, q: q.trim(), cursor: cursor || undefined }),
          profiles: d.enrollment.profileNames(),
          defaultProfile: d.enrollment.defaultProfile(),
          certs: recent.certs,
          audit: recent.audit,
          csrfToken: csrf(reply, s),
          now: d.now(),
          refreshSeconds: DASHBOARD_REFRESH_SECONDS,
        });
        return send(reply, 200, 'Dashboard', body, s, ['/static/dashboard.js']);
      },
    );

    // the dashboard's checkboxes: one decision for many machines, by the bulk service the admin API
    // uses; ip_allowlist.admin guards it before it runs (plugins/ip-allowlist.ts)
    app.post<{ Body: BulkFormBody }>('/nodes/bulk', { preHandler: app.csrfProtection }, async (request, reply) => {
      const ctx = await ctxOf(request);
      const s = requireAdmin(request, reply, ctx);
      if (!s) return reply;
      const form = parseBulkForm(request.body);
      const results =
        form.decision === 'approve'
          ? await approveMany(d.enrollment, form.targets, form.approval, actorOf(s))
          : await denyMany(d.enrollment, form.targets, actorOf(s));
      return send(reply, 200, form.decision === 'approve' ? 'Bulk approval' : 'Bulk denial', bulkDone({ decision: form.decision, results }), s);
    });

    // the node page, its actions (revoke among them, with the dashboard's return_to) and the audit
    // page: server/routes/web-nodes.ts
    await app.register(webNodeRoutes(d, { admin: async (request, reply) => requireAdmin(request, reply, await ctxOf(request)), send, csrf }));

    // --- device verification (RFC 8628 §3.3) ---------------------------------------------------

    /** The pending request behind a typed code, or undefined for a code that is not one. */
    const findPending = async (typed: string) => {
      try {
        return normalizeUserCode(typed) === undefined ? undefined : await d.enrollment.findPendingByUserCode(typed);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        return undefined;
      }
    };
    /** RFC 8628 §5.1: guesses are limited; the page that says so while entry is closed. */
    const lockedOut = async (request: FastifyRequest, reply: FastifyReply, s: WebSessionRecord, typed: string) => {
      const locked = await d.guard.lockedUntil(s.idHash, clientIp(request));
      if (locked === undefined) return undefined;
      return send(reply, 429, 'Enter the code', codeEntry({ prefill: typed, lockedUntil: locked, csrfToken: csrf(reply, s), now: d.now() }), s);
    };
    /** A wrong code counts against the session and the address, and says so. */
    const wrongCode = async (request: FastifyRequest, reply: FastifyReply, s: WebSessionRecord, typed: string, error: string) => {
      const ip = clientIp(request);
      await d.guard.recordFailure(s.idHash, ip);
      const lockedUntil = await d.guard.lockedUntil(s.idHash, ip);
      return send(reply, 400, 'Enter the code', codeEntry({ prefill: typed, error, lockedUntil, csrfToken: csrf(reply, s), now: d.now() }), s);
    };

    const addressNotAllowed = (reply: FastifyReply, s: WebSessionRecord) =>
      send(reply, 403, 'Not allowed', problem('Not from this address', 'Machines are approved only from the addresses in ip_allowlist.admin.'), s);

    const lookup = async (request: FastifyRequest, reply: FastifyReply, s: WebSessionRecord, typed: string) => {
      const now = d.now();
      const closed = await lockedOut(request, reply, s, typed);
      if (closed) return closed;
      const found = await findPending(typed);
      if (!found) return await wrongCode(request, reply, s, typed, 'That code is not valid, has expired, or was already used. Check the console and try again.');
      if (!found.node) {
        const roles = mapRoles(s.claims ?? {}, d.roleRules.rules, d.roleRules.defaults);
        const ticket = d.tickets.issue(s.idHash, found.request.id);
        return send(reply, 200, 'Log in talos-gate CLI?', confirmOperator({ request: found.request, user: actorOf(s), roles, csrfToken: csrf(reply, s), ticket, now }), s);
      }
      if (!s.isAdmin) return send(reply, 403, 'Not allowed', notAllowed(actorOf(s)), s);
      if (!d.ipAllowed(clientIp(request), 'admin')) return addressNotAllowed(reply, s);
      return send(
        reply,
        200,
        'Approve this machine?',
        confirmNode({
          request: found.request,
          node: found.node,
          profiles: d.enrollment.profileNames(),
          defaultProfile: d.enrollment.defaultProfile(),
          defaultHostname: defaultHostname(found.node),
          csrfToken: csrf(reply, s),
          ticket: d.tickets.issue(s.idHash, found.request.id),
          now,
        }),
        s,
      );
    };

    // Any signed-in user may enter a code: operators approve their own CLI logins; machines need an admin.
    app.get<{ Querystring: { user_code?: string } }>('/device', perMinute(d.limits.codeEntry), async (request, reply) => {
      const ctx = await ctxOf(request);
      const s = requireUser(request, reply, ctx);
      if (!s) return reply;
      const typed = typeof request.query.user_code === 'string' ? request.query.user_code.slice(0, 32) : '';
      if (!typed) return send(reply, 200, 'Enter the code', codeEntry({ prefill: '', csrfToken: csrf(reply, s), now: d.now() }), s);
      return await lookup(request, reply, s, typed);
    });

    app.post<{ Body: { user_code?: string } }>('/device', { preHandler: app.csrfProtection, ...perMinute(d.limits.codeEntry) }, async (request, reply) => {
      const ctx = await ctxOf(request);
      const s = requireUser(request, reply, ctx);
      if (!s) return reply;
      return await lookup(request, reply, s, String(request.body?.user_code ?? '').slice(0, 32));
    });

    app.post<{ Body: { user_code?: string; ticket?: string; decision?: string; profile?: string; hostname?: string; patch?: string } }>(
      '/device/decision',
      { preHandler: app.csrfProtection, ...perMinute(d.limits.codeEntry) },
      async (request, reply) => {
        const ctx = await ctxOf(request);
        const s = requireUser(request, reply, ctx);
        if (!s) return reply;
        const b = request.body ?? {};
        const userCode = String(b.user_code ?? '').slice(0, 32);
        const actor = actorOf(s);
        // the same lockout as code entry, and only for a request this session looked up (security
        // review #6): any other code, existing or not, gets the one answer a wrong code gets
        const closed = await lockedOut(request, reply, s, '');
        if (closed) return closed;
        const found = await findPending(userCode);
        if (!found || !d.tickets.verify(b.ticket, s.idHash, found.request.id)) {
          return await wrongCode(request, reply, s, '', 'That code is not valid here, has expired, or was already decided. Enter the code from the console again.');
        }
        if (!found.node) {
          // a CLI login: the signed-in user decides for themselves
          if (b.decision === 'approve') await d.operators.approve(found.request, s, d.expiryGraceMs);
          else await d.operators.deny(found.request, actor);
          return send(reply, 200, b.decision === 'approve' ? 'Logged in' : 'Refused', operatorDone({ approved: b.decision === 'approve', user: actor }), s);
        }
        if (!s.isAdmin) return send(reply, 403, 'Not allowed', notAllowed(actor), s);
        if (!d.ipAllowed(clientIp(request), 'admin')) return addressNotAllowed(reply, s);
        const node = found.node;
        if (b.decision === 'deny') {
          const node = await d.enrollment.denyByUserCode(userCode, actor);
          return send(reply, 200, 'Denied', decisionDone({ approved: false, node, userCode }), s);
        }
        if (b.decision !== 'approve') throw new ApiError('invalid_request', 'choose Approve or Deny');
        const patch = String(b.patch ?? '').trim();
        try {
          const approved = await d.enrollment.approveByUserCode(
            userCode,
            { profile: b.profile, hostname: b.hostname?.trim() || undefined, patches: patch ? [...node.patches, patch] : undefined },
            actor,
          );
          return send(reply, 200, 'Approved', decisionDone({ approved: true, node: approved, userCode }), s);
        } catch (e) {
          if (!(e instanceof ApiError) || (e.error !== 'invalid_config' && e.error !== 'invalid_request')) throw e;
          return send(
            reply,
            e.status,
            'Approve this machine?',
            confirmNode({
              request: found.request,
              node,
              profiles: d.enrollment.profileNames(),
          defaultProfile: d.enrollment.defaultProfile(),
              defaultHostname: defaultHostname(node),
              csrfToken: csrf(reply, s),
              ticket: b.ticket ?? '',
              now: d.now(),
              error: e.description,
              form: { profile: b.profile, hostname: b.hostname, patch },
            }),
            s,
          );
        }
      },
    );
  };
}
