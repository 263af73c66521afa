import type { FastifyRequest } from 'fastify';

/** The peer's address without port, IPv4-mapped IPv6 written as IPv4. */
export function clientIp(request: FastifyRequest): string {
  return request.ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}
