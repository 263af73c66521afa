import { BlockList, isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../api-error.js';
import { clientIp } from '../client-ip.js';

// Optional allowlists per endpoint group: the admin API (and metrics) apart from what nodes use.

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

const GROUPS: { name: 'admin' | 'nodes'; matches: (path: string) => boolean; what: string }[] = [
  { name: 'admin', matches: (p) => p.startsWith('/api/') || p === '/metrics', what: 'the admin API' },
  { name: 'nodes', matches: (p) => p === '/device/code' || p === '/token' || p === '/config', what: 'node enrollment' },
];

export function registerIpAllowlist(app: FastifyInstance, allow: { admin: string[]; nodes: string[] }): void {
  const lists = { admin: blockListOf(allow.admin), nodes: blockListOf(allow.nodes) };
  if (!lists.admin && !lists.nodes) return;
  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0] as string;
    const group = GROUPS.find((g) => g.matches(path));
    const list = group && lists[group.name];
    if (!group || !list) return;
    const ip = clientIp(request);
    if (!list.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4')) throw new ApiError('forbidden', `this address may not use ${group.what}`);
  });
}
