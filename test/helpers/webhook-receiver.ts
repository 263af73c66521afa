import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

// A webhook receiver on a real port: records every POST with its headers and exact body bytes, and
// answers as told (2xx, an error status, or never). stop() and start() again take it down and bring
// it back on the same port, for a receiver that is away for a while.

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

export type ReceiverMode = { status: number } | 'hang';

export class WebhookReceiver {
  readonly received: Received[] = [];
  mode: ReceiverMode = { status: 204 };
  private server: Server | undefined;
  private port = 0;
  private readonly hanging = new Set<import('node:http').ServerResponse>();
  private waiters: (() => void)[] = [];

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const mode = this.mode;
        // a hanging receiver records nothing: it never took the event
        if (mode === 'hang') {
          this.hanging.add(res);
          return;
        }
        if (mode.status >= 200 && mode.status < 300) {
          this.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
          for (const w of this.waiters.splice(0)) w();
        }
        res.writeHead(mode.status).end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Resolves once `count` events were received, or rejects after timeoutMs. */
  async waitFor(count: number, timeoutMs = 20_000): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`received ${this.received.length} webhook calls, expected ${count}: ${this.received.map((r) => r.body).join('\n')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.received.slice(0, count);
  }
}
