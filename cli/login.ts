import type { Command } from 'commander';
import { resolve } from 'node:path';
import qrcode from 'qrcode-terminal';
import { issueIntoTalosconfig } from './certificate.js';
import { connectionFrom, UsageError, type ConnectionOptions } from './connection.js';
import { deviceLogin, discover } from './gate-api.js';
import { browserLogin } from './idp-login.js';
import { watch } from './renewal.js';
import { talosconfigPath } from './talosconfig.js';
import { saveLogin, type CachedLogin } from './token-cache.js';

interface LoginOptions extends ConnectionOptions {
  device?: boolean;
  context: string;
  talosconfig?: string;
  nodes?: string;
  switch: boolean;
  watch?: boolean;
  callbackPort?: string;
  browser: boolean;
  ttl?: string;
}

const say = (line: string) => process.stderr.write(`${line}\n`);

function qr(text: string): Promise<string> {
  return new Promise((r) => qrcode.generate(text, { small: true }, r));
}

export function loginCommand(program: Command): void {
  program
    .command('login')
    .description('sign in with the company IdP and write a short-lived Talos client certificate into the talosconfig')
    .requiredOption('-s, --server <url>', 'the gate, e.g. https://gate.example.com:8443')
    .option('--server-ca <file>', "PEM of the CA of the gate's certificate (the self-signed mode prints where it is)")
    .option('--insecure-http', 'allow a plain http:// gate (local demos only)')
    .option('--device', 'headless: approve the login on the gate\'s /device page from any browser (prints a code and a QR code)')
    .option('--context <name>', 'talosconfig context to write', 'talos-gate')
    .option('--talosconfig <path>', 'talosconfig file (default: $TALOSCONFIG, else ~/.talos/config)')
    .option('--nodes <list>', 'comma-separated default nodes for the context')
    .option('--no-switch', 'do not make the context the current one')
    .option('--watch', 'stay running and renew the certificate before it expires (Ctrl-C to stop)')
    .option('--callback-port <port>', 'fixed port for the browser login redirect on 127.0.0.1 (default: any free port)')
    .option('--no-browser', 'print the login URL instead of opening a browser')
    .option('--ttl <seconds>', 'ask for a certificate lifetime (the gate caps it)')
    .addHelpText(
      'after',
      `
Examples:
  talos-gate login --server https://gate.example.com:8443
  talos-gate login --server https://gate.example.com:8443 --device --watch
  talos-gate login --server https://127.0.0.1:8443 --server-ca talos-gate-data/tls/ca.crt --nodes 10.0.0.10

Exit codes: 0 logged in (or --watch stopped with Ctrl-C), 1 the IdP or the gate refused, 2 bad usage or gate unreachable.`,
    )
    .action(async (o: LoginOptions) => {
      const given = connectionFrom(o);
      const d = await discover(given);
      // a gate whose signer makes the key (Talos) gets no key from us, now and at every --watch renewal
      const conn = { ...given, clientKeys: d.client_keys !== false };
      const talosconfig = resolve(talosconfigPath(o.talosconfig));
      const nodes = o.nodes ? o.nodes.split(',').map((n) => n.trim()).filter(Boolean) : undefined;
      const ttlSeconds = o.ttl ? Number.parseInt(o.ttl, 10) : undefined;
      if (ttlSeconds !== undefined && (!Number.isInteger(ttlSeconds) || ttlSeconds < 1)) throw new UsageError('--ttl must be a positive number of seconds');
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      process.once('SIGTERM', () => controller.abort());

      let credential: string;
      let login: CachedLogin;
      const base = {
        server: conn.server,
        context: o.context,
        talosconfig,
        serverCaFile: o.serverCa ? resolve(o.serverCa) : undefined,
        insecureHttp: o.insecureHttp ?? false,
        nodes,
      };
      if (o.device) {
        if (!d.operator_client_id) throw new UsageError('this gate has no operator client for device logins (operator_clients)');
        const tokens = await deviceLogin(
          conn,
          d.operator_client_id,
          async (c) => {
            say(`To log in, open ${c.verification_uri} and enter the code ${c.user_code}`);
            if (c.verification_uri_complete) say(`or scan this QR code:\n${await qr(c.verification_uri_complete)}`);
            say(`Waiting for approval (the code expires in ${Math.round(c.expires_in / 60)} min)...`);
          },
          controller.signal,
        );
        credential = tokens.access_token;
        login = {
          ...base,
          kind: 'device',
          issuer: conn.server,
          clientId: d.operator_client_id,
          refreshToken: tokens.refresh_token,
          accessToken: tokens.access_token,
          accessTokenExpiresAt: Date.now() + tokens.expires_in * 1000,
        };
      } else {
        if (!d.idp_issuer || !d.cli_client_id) {
          throw new UsageError('this gate publishes no IdP client for the CLI (oidc.cli_client_id): use --device');
        }
        const tokens = await browserLogin({
          issuer: d.idp_issuer,
          clientId: d.cli_client_id,
          scopes: d.cli_scopes,
          callbackPort: o.callbackPort ? Number.parseInt(o.callbackPort, 10) : undefined,
          openBrowser: o.browser,
          say,
          signal: controller.signal,
        });
        credential = tokens.idToken;
        login = { ...base, kind: 'browser', issuer: d.idp_issuer, clientId: d.cli_client_id, refreshToken: tokens.refreshToken };
      }

      const result = await issueIntoTalosconfig(conn, credential, { talosconfig, context: o.context, nodes, switchContext: o.switch, ttlSeconds });
      login = { ...login, subject: result.subject, roles: result.roles, certExpiresAt: Date.parse(result.expires_at) };
      await saveLogin(login);
      say(`Logged in as ${result.subject} with roles ${result.roles.join(', ')}.`);
      say(`Wrote context "${o.context}" to ${talosconfig}${o.switch ? ' (current)' : ''}; the certificate is valid until ${result.expires_at}.`);
      if (!o.watch) {
        if (!login.refreshToken) say('The IdP gave no refresh token: run login again when the certificate expires.');
        return;
      }
      say('Watching: renewing before expiry. Ctrl-C to stop.');
      await watch(conn, { login, ttlMs: result.ttl_seconds * 1000 }, { log: say, signal: controller.signal, ttlSeconds });
      say('Stopped.');
    });
}
