import { BlockList, isIP } from 'node:net';
import type { FastifyRequest } from 'fastify';

/** The peer's address without port, IPv4-mapped IPv6 written as IPv4. */
export function clientIp(request: FastifyRequest): string {
  return request.ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}

/** The eight 16-bit groups of an IPv6 address (RFC 4291 §2.2 text forms, an embedded IPv4 tail included). */
function ipv6Groups(ip: string): number[] | undefined {
  let text = ip.toLowerCase();
  const groups: number[] = [];
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  let tail: number[] = [];
  if (v4) {
    const b = v4.slice(1).map(Number) as [number, number, number, number];
    tail = [(b[0] << 8) | b[1], (b[2] << 8) | b[3]];
    text = `${text.slice(0, v4.index)}0:0`; // placeholders, replaced below
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const part = (s: string) => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const head = part(halves[0] as string);
  const rest = halves.length === 2 ? part(halves[1] as string) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 0 : missing !== 0) return undefined;
  groups.push(...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...rest);
  if (tail.length) groups.splice(6, 2, ...tail);
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

/**
 * The "address bucket" an address is counted in for per-address limits: an IPv4 address itself, an
 * IPv6 address by its /64. One IPv6 subscriber or host usually holds a whole /64 (RFC 4291 §2.5.4
 * interface identifiers, RFC 8981 temporary addresses, RFC 6177 end-site assignments), so counting
 * exact IPv6 addresses would give one machine 2^64 separate allowances. IPv4-mapped IPv6
 * (::ffff:a.b.c.d, RFC 4291 §2.5.5.2) is the IPv4 address it maps. Anything that is not an address
 * is returned as it is.
 */
export function addressBucket(ip: string): string {
  const bare = ip.replace(/%.*$/, ''); // an RFC 6874 zone id names the interface, not the host
  if (isIP(bare) === 4) return bare;
  if (isIP(bare) !== 6) return ip;
  const g = ipv6Groups(bare);
  if (!g) return ip;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    const [hi, lo] = [g[6] as number, g[7] as number];
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return `${g.slice(0, 4).map((x) => x.toString(16)).join(':')}::/64`;
}

/** The key of the per-client rate limits: the address bucket of the client address fastify found. */
export function rateLimitKey(ip: string): string {
  return addressBucket(ip);
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
