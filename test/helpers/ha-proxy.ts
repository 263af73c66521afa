import { connect, createServer, type Server, type Socket } from 'node:net';
import { freePort } from './gate.js';

// A TCP load balancer for the tests, as HAProxy in `mode tcp` with `balance roundrobin`, `retries`
// and `option redispatch` does it: each new connection goes to the next target, and a target that
// refuses the connection (an instance killed) is skipped for the next, so a client sees a dead
// instance only when the connection it had open dies with it. cut() makes it refuse everything and
// ends what is open (a database restart, when the one target is PostgreSQL); restore() undoes that.

export interface Target {
  host: string;
  port: number;
}

export interface TcpProxy {
  port: number;
  /** Connections handed to each target so far, by index in targets. */
  readonly handed: number[];
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targets: Target[]): Promise<TcpProxy> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  const handed = targets.map(() => 0);
  let next = 0;
  let server: Server | undefined;
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };

  /** Connects to the first target from `i` on that accepts, trying each once. */
  const dial = (client: Socket, i: number, tries: number) => {
    if (tries === 0 || client.destroyed) return void client.destroy();
    const t = targets[i] as Target;
    const upstream = connect(t.port, t.host);
    upstream.once('connect', () => {
      handed[i] = (handed[i] ?? 0) + 1;
      track(upstream);
      client.pipe(upstream).pipe(client);
      client.resume();
    });
    upstream.once('error', (e: NodeJS.ErrnoException) => {
      upstream.destroy();
      if (!upstream.connecting && upstream.bytesRead + upstream.bytesWritten > 0) return void client.destroy();
      if (e.code === 'ECONNREFUSED') dial(client, (i + 1) % targets.length, tries - 1);
      else client.destroy();
    });
  };

  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer({ pauseOnConnect: true }, (client) => {
        track(client);
        dial(client, next++ % targets.length, targets.length);
      });
      server.listen(port, '127.0.0.1', resolve);
    });
  const cut = async () => {
    await new Promise<void>((resolve) => {
      if (!server) return resolve();
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
    server = undefined;
  };
  await listen();
  return { port, handed, cut, restore: listen, close: cut };
}
