import type { Command } from 'commander';
import { connectionFrom } from './connection.js';
import { revokeGateToken } from './gate-api.js';
import { removeContext } from './talosconfig.js';
import { findLogin, forgetLogin } from './token-cache.js';
import { UsageError } from './connection.js';

export function logoutCommand(program: Command): void {
  program
    .command('logout')
    .description('revoke the login at the gate, forget cached tokens and remove the talosconfig context')
    .option('--context <name>', 'talosconfig context', 'talos-gate')
    .option('--keep-context', 'keep the context in the talosconfig (its certificate expires by itself)')
    .action(async (o: { context: string; keepContext?: boolean }) => {
      const login = findLogin(o.context);
      if (!login) throw new UsageError(`no login for context ${o.context}`);
      if (login.kind === 'device' && login.refreshToken) {
        const conn = connectionFrom({ server: login.server, serverCa: login.serverCaFile, insecureHttp: login.insecureHttp ?? false });
        await revokeGateToken(conn, login.clientId, login.refreshToken).catch((e: Error) =>
          process.stderr.write(`warning: the gate could not revoke the login (${e.message}); forgetting it here anyway\n`),
        );
      }
      await forgetLogin(login.server, login.context);
      if (!o.keepContext) await removeContext(login.talosconfig, login.context);
      process.stderr.write(`Logged out of ${login.server} (context ${login.context}).\n`);
    });
}
