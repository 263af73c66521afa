import type {} from '@fastify/csrf-protection';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EnrollmentService } from '../enrollment/service.js';
import type { GateReports } from '../reports.js';
import type { AuditFilter, WebSessionRecord } from '../storage/storage.js';
import type { Html } from '../web/html.js';
import { actorOf } from '../web/sessions.js';
import { auditPage } from '../web/views/audit-page.js';
import { problem } from '../web/views/messages.js';
import { safeReturnTo } from '../web/return-to.js';
import { AUDIT_QUERY_PROPERTIES } from './audit-query.js';
import { confirmAction, doneNote, nodeForgotten, nodeHref, nodePage, NODE_ACTIONS, type NodeAction } from '../web/views/node-page.js';

/** What web.ts lends its sub-pages: its sign-in and admin checks, its page sender and its CSRF token. */
export interface WebPageKit {
  /** The signed-in admin; otherwise undefined, once the reply is a redirect to sign-in or a 403 page. */
  admin(request: FastifyRequest, reply: FastifyReply): Promise<WebSessionRecord | undefined>;
  send(reply: FastifyReply, status: number, title: string, body: Html, session: WebSessionRecord | undefined): FastifyReply;
  csrf(reply: FastifyReply, session: WebSessionRecord | undefined): string;
}

export interface WebNodeDeps {
  enrollment: EnrollmentService;
  reports: GateReports;
  now: () => number;
}

/** Every page and action here is an admins' one: ip_allowlist.admin applies (plugins/ip-allowlist.ts). */
const ADMIN_GROUP = { ipAllowlistGroup: 'admin' } as const;

/** Audit events per page of the audit page. */
const AUDIT_PAGE = 50;

/**
 * A node id as the gate makes them (a uuid or mac, lower-case, enrollment/service.ts NODE_ID and
 * MAC), in any case: anything else is no node, answered 404 without a lookup.
 */
const NODE_ID_PARAM = /^[0-9a-zA-Z._:-]{1,64}$/;

/** A filter value from the query: a form's empty field is no filter. */
function filterValue(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/**
 * The admins' node page (`/nodes/:id`: what a node sent, its requests, downloads, its config and how
 * the templates would render it now, and its actions) and the audit page (`/audit`). HTML only;
 * every action is a POST with the page's CSRF token, confirmed on a second page before it is done,
 * and done by the same service call as the admin API's, so it is audited alike.
 */
export function webNodeRoutes(d: WebNodeDeps, kit: WebPageKit) {
  return async (app: FastifyInstance) => {
    const notFound = (reply: FastifyReply, s: WebSessionRecord, id: string) =>
      kit.send(reply, 404, 'Not found', problem('No such node', NODE_ID_PARAM.test(id) ? `This gate knows no node ${id}.` : 'This is not a node id this gate makes.'), s);

    app.get<{ Params: { id: string }; Querystring: { done?: string } }>('/nodes/:id', { config: ADMIN_GROUP }, async (request, reply) => {
      const s = await kit.admin(request, reply);
      if (!s) return reply;
      const { id } = request.params;
      if (!NODE_ID_PARAM.test(id)) return notFound(reply, s, id);
      const review = await d.enrollment.reviewNode(id);
      return kit.send(reply, 200, `Node ${review.node.id}`, nodePage({ review, csrfToken: kit.csrf(reply, s), now: d.now(), flash: doneNote(request.query.done) }), s);
    });

    // the config as a file, for an admin to read or keep (the machines' own download is /config)
    app.get<{ Params: { id: string } }>('/nodes/:id/config', { config: ADMIN_GROUP }, async (request, reply) => {
      const s = await kit.admin(request, reply);
      if (!s) return reply;
      const { id } = request.params;
      if (!NODE_ID_PARAM.test(id)) return notFound(reply, s, id);
      const config = await d.enrollment.nodeConfig(id);
      // the id is of [0-9a-z._:-]: a file name without quotes or path separators once ":" is "-"
      return reply
        .header('Cache-Control', 'no-store')
        .header('Content-Disposition', `attachment; filename="${id.toLowerCase().replace(/:/g, '-')}.yaml"`)
        .type('application/yaml; charset=utf-8')
        .send(config);
    });

    const act = async (action: NodeAction, id: string, actor: string): Promise<void> => {
      if (action === 'rerender') await d.enrollment.rerenderNode(id, actor);
      else if (action === 'deny') await d.enrollment.denyNode(id, actor);
      else if (action === 'revoke') await d.enrollment.revokeNode(id, actor);
      else await d.enrollment.forgetNode(id, actor);
    };

    for (const action of NODE_ACTIONS) {
      app.post<{ Params: { id: string }; Body: { confirm?: string; return_to?: string } | undefined }>(
        `/nodes/:id/${action}`,
        { preHandler: app.csrfProtection, config: ADMIN_GROUP },
        async (request, reply) => {
          const s = await kit.admin(request, reply);
          if (!s) return reply;
          const { id } = request.params;
          if (!NODE_ID_PARAM.test(id)) return notFound(reply, s, id);
          if (request.body?.confirm !== '1') {
            // the first step changes nothing: it asks, with a form that says yes
            const node = await d.enrollment.getNode(id);
            const returnTo = request.body?.return_to === undefined ? undefined : safeReturnTo(request.body.return_to);
            return kit.send(reply, 200, 'Confirm', confirmAction({ node, action, csrfToken: kit.csrf(reply, s), returnTo }), s);
          }
          await act(action, id, actorOf(s));
          // pressed on the dashboard: back to its tab and page (a local path only)
          if (request.body.return_to !== undefined) return reply.redirect(safeReturnTo(request.body.return_to), 303);
          if (action === 'forget') return kit.send(reply, 200, 'Forgotten', nodeForgotten(id.toLowerCase()), s);
          return reply.redirect(`${nodeHref(id.toLowerCase())}?done=${action}`, 303);
        },
      );
    }

    app.get<{ Querystring: { type?: string; subject?: string; actor?: string; before?: number } }>(
      '/audit',
      {
        config: ADMIN_GROUP,
        schema: {
          querystring: {
            type: 'object',
            properties: AUDIT_QUERY_PROPERTIES,
          },
        },
      },
      async (request, reply) => {
        const s = await kit.admin(request, reply);
        if (!s) return reply;
        const q = request.query;
        const filter: AuditFilter = { type: filterValue(q.type), subject: filterValue(q.subject), actor: filterValue(q.actor) };
        const { events, nextBefore, searchedTo } = await d.reports.auditPage({ limit: AUDIT_PAGE, before: q.before }, filter);
        const body = auditPage({ events, filter, olderBefore: nextBefore ?? undefined, searchedTo, paged: q.before !== undefined, now: d.now() });
        return kit.send(reply, 200, 'Audit trail', body, s);
      },
    );
  };
}
