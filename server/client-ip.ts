import { BlockList, isIP } from 'node:net';
import type { FastifyRequest } from 'fastify';

/** The peer's address without port, IPv4-mapped IPv6 written as IPv4. */
export function clientIp(request: FastifyRequest): string {
  return request.ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}

/** An IP address or a CIDR block (RFC 4632; IPv6 prefixes RFC 4291 §2.3) with its prefix length. */
export function parseCidr(s: string): { address: string; bits: number; family: 4 | 6 } | undefined {
  const [address, bits, extra] = s.split('/');
  const family = isIP(address ?? '');
  if (!family || extra !== undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= max)) return undefined;
  return { address: address as string, bits: bits === undefined ? max : Number(bits), family: family as 4 | 6 };
}

/** Whether an address lies in any of the blocks (each valid for parseCidr; invalid ones match nothing). */
export function inCidrs(ip: string, cidrs: string[]): boolean {
  const list = new BlockList();
  for (const c of cidrs) {
    const p = parseCidr(c);
    if (p) list.addSubnet(p.address, p.bits, p.family === 4 ? 'ipv4' : 'ipv6');
  }
  const family = isIP(ip);
  return family !== 0 && list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}
