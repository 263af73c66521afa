import { readFileSync } from 'node:fs';
import type { GateConnection } from './gate-api.js';

/** A usage mistake: exit code 2 with the message. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface ConnectionOptions {
  server?: string;
  serverCa?: string;
  insecureHttp?: boolean;
}

/** --server, --server-ca, --insecure-http as a connection; plain http only when asked for. */
export function connectionFrom(o: ConnectionOptions): GateConnection {
  if (!o.server) throw new UsageError('--server is required (e.g. --server https://gate.example.com:8443)');
  let url: URL;
  try {
    url = new URL(o.server);
  } catch {
    throw new UsageError(`--server ${o.server} is not a URL`);
  }
  if (url.protocol === 'http:' && !o.insecureHttp) throw new UsageError('--server is plain http: add --insecure-http if you really mean it (local demos only)');
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--server must start with https://');
  let ca: string | undefined;
  if (o.serverCa) {
    try {
      ca = readFileSync(o.serverCa, 'utf8');
    } catch (e) {
      throw new UsageError(`--server-ca ${o.serverCa}: ${(e as Error).message}`);
    }
  }
  return { server: url.origin, ca };
}
