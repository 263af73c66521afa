import { X509Certificate } from 'node:crypto';
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { readContext, talosconfigPath } from './talosconfig.js';
import { findLogin } from './token-cache.js';
import { UsageError } from './connection.js';

function span(s: number): string {
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : s < 172_800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86_400)} d`;
}

/** For --json: "12 min", "expired" or "unknown". */
function left(ms: number | null | undefined, now: number): string {
  if (ms === null || ms === undefined) return 'unknown';
  const s = Math.round((ms - now) / 1000);
  return s <= 0 ? 'expired' : span(s);
}

/** For people: "12 min left", "expired 3 min ago". */
function remaining(ms: number | null | undefined, now: number): string {
  if (ms === null || ms === undefined) return 'time left unknown';
  const s = Math.round((ms - now) / 1000);
  return s > 0 ? `${span(s)} left` : `expired ${span(-s)} ago`;
}

export function statusCommand(program: Command): void {
  program
    .command('status')
    .description('show the login of a context: server, certificate subject, roles and time left')
    .option('--context <name>', 'talosconfig context', 'talos-gate')
    .option('--talosconfig <path>', 'talosconfig file (default: $TALOSCONFIG, else ~/.talos/config)')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExit codes: 0 a valid certificate, 1 logged out or expired.')
    .action((o: { context: string; talosconfig?: string; json?: boolean }) => {
      const login = findLogin(o.context);
      const path = resolve(login?.talosconfig ?? talosconfigPath(o.talosconfig));
      const ctx = readContext(path, o.context);
      if (!login && !ctx) throw new UsageError(`no login for context ${o.context}: run talos-gate login`);
      const now = Date.now();
      const cert = ctx?.crt ? new X509Certificate(ctx.crt) : undefined;
      const subject = cert?.subject.split('\n') ?? [];
      const validTo = cert ? Date.parse(cert.validTo) : undefined;
      const info = {
        server: login?.server ?? null,
        context: o.context,
        talosconfig: path,
        current: ctx?.current ?? false,
        login: login?.kind ?? null,
        subject: subject.find((l) => l.startsWith('CN='))?.slice(3) ?? null,
        roles: subject.filter((l) => l.startsWith('O=')).map((l) => l.slice(2)),
        certificate_expires_at: validTo ? new Date(validTo).toISOString() : null,
        certificate_time_left: left(validTo, now),
        token_time_left: login?.kind === 'device' ? left(login.accessTokenExpiresAt, now) : null,
        refresh_available: Boolean(login?.refreshToken),
        endpoints: ctx?.endpoints ?? [],
      };
      if (o.json) process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      else {
        const rows: [string, string][] = [
          ['Server', info.server ?? '(unknown)'],
          ['Context', `${info.context}${info.current ? ' (current)' : ''} in ${info.talosconfig}`],
          ['Login', info.login ?? '(none cached)'],
          ['Subject', info.subject ?? '(no certificate)'],
          ['Roles', info.roles.join(', ') || '(none)'],
          ['Certificate', info.certificate_expires_at ? `${validTo !== undefined && validTo <= now ? 'was valid' : 'valid'} until ${info.certificate_expires_at} (${remaining(validTo, now)})` : '(none)'],
          ...(info.token_time_left ? ([['Gate token', remaining(login?.kind === 'device' ? login.accessTokenExpiresAt : undefined, now)]] as [string, string][]) : []),
          ['Refresh', info.refresh_available ? 'available (talos-gate login --watch renews)' : 'not available: log in again when it expires'],
          ['Endpoints', info.endpoints.join(', ') || '(none)'],
        ];
        const w = Math.max(...rows.map(([k]) => k.length));
        process.stdout.write(`${rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')}\n`);
      }
      if (!validTo || validTo <= now) process.exitCode = 1;
    });
}
