import { BlockList, isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../api-error.js';
import { clientIp } from '../client-ip.js';

// Optional allowlists per endpoint group: the admin API (and metrics) apart from what nodes use.
//
// The decision is made on the route the router matched, never on the text of the request-target.
// The router percent-decodes the path (/%61pi/v1/nodes is /api/v1/nodes), ignores a trailing slash
// (routerOptions.ignoreTrailingSlash) and routes an absolute-form target (GET http://x/metrics
// HTTP/1.1, valid per RFC 9112 §3.2.2, whose path RFC 9110 §7.1 makes the target) on its path; any
// check on the raw text that does not repeat all of that exactly can be walked around. The matched
// route's pattern (request.routeOptions.url, e.g. '/api/v1/nodes/:id', prefix included) is fixed
// when the route is registered and is the same however the request spelt it.
//
// Groups:
// - admin: everything under /api/ (the admin API plugin, prefix /api/v1), /metrics, and the admins'
//   web pages and actions: the dashboard (GET /), POST /nodes/bulk, and the node and audit pages
//   with their actions, revoke among them (server/routes/web-nodes.ts names its routes' group itself).
// - nodes: POST /device/code, POST /token and GET /config (Talos nodes, and the CLI's device login).
// - everything else stays open to every address: /device and /device/decision (any signed-in user
//   enters a code there: operators approve their own CLI logins), /auth/* (sign-in), /static/*,
//   /exchange and /revoke (the CLI), /.well-known/*, /ca, /healthz, /readyz. Those two routes are
//   shared by operators and admins: showing or deciding a machine's request there (an admin action)
//   asks the admin group's list inside the route (IpAllowed), so it is refused from outside it.
// A route may name its group itself with `config: { ipAllowlistGroup: 'admin' }`; that wins.
// Unmatched requests (the 404 handler) get no decision: the answer names only the path asked for.

export type AllowlistGroup = 'admin' | 'nodes';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The ip_allowlist group of this route, when it is not the one its pattern gives (groupOfRoute). */
    ipAllowlistGroup?: AllowlistGroup;
  }
}

const ADMIN_ROUTES = new Set(['/metrics', '/', '/nodes/bulk', '/nodes/:id/revoke']);
const NODE_ROUTES = new Set(['/device/code', '/token', '/config']);

/** The group of a route by its registered pattern (prefix included), or undefined when it is open to all. */
export function groupOfRoute(pattern: string): AllowlistGroup | undefined {
  if (pattern === '/api' || pattern.startsWith('/api/') || ADMIN_ROUTES.has(pattern)) return 'admin';
  if (NODE_ROUTES.has(pattern)) return 'nodes';
  return undefined;
}

const WHAT: Record<AllowlistGroup, string> = { admin: 'the admin API', nodes: 'node enrollment' };

function blockListOf(entries: string[]): BlockList | undefined {
  if (entries.length === 0) return undefined;
  const list = new BlockList();
  for (const e of entries) {
    const [addr, bits] = e.split('/') as [string, string | undefined];
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return list;
}

/**
 * Adds the check as an onRequest hook. Fastify routes before it runs any hook, so in onRequest
 * request.routeOptions already describes the matched route (or the 404 handler, with no url).
 * Register it before the routes' own onRequest hooks (the admin API's authentication), so that an
 * address outside the list learns nothing from 401 versus 403, and costs no token verification.
 */
export function registerIpAllowlist(app: FastifyInstance, allow: { admin: string[]; nodes: string[] }): IpAllowed {
  const lists = { admin: blockListOf(allow.admin), nodes: blockListOf(allow.nodes) };
  const allowed: IpAllowed = (ip, group) => {
    const list = lists[group];
    return !list || list.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4');
  };
  if (!lists.admin && !lists.nodes) return allowed;
  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions; // a getter that builds a new object: read once
    if (route.url === undefined) return; // unmatched: the 404 handler answers
    const group = route.config.ipAllowlistGroup ?? groupOfRoute(route.url);
    if (!group) return;
    if (!allowed(clientIp(request), group)) throw new ApiError('forbidden', `this address may not use ${WHAT[group]}`);
  });
  return allowed;
}

/**
 * Whether an address may use a group: for routes shared by several groups, which decide inside
 * (/device/decision: operators' own CLI logins are open, approving a machine is an admin action).
 */
export type IpAllowed = (ip: string, group: AllowlistGroup) => boolean;
