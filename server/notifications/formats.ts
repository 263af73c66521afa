// How a body goes on the wire: json as it is (docs/notifications.md), slack as a Slack incoming
// webhook message (https://api.slack.com/messaging/webhooks: a JSON object with `text`, mrkdwn,
// links written <url|label>, and &, <, > escaped as &amp; &lt; &gt;).
import type { WebhookBody } from './payload.js';
import type { WebhookFormat } from './webhooks.js';

/** Largest body sent; an event is far smaller, so a larger one is a fault, not a thing to send. */
export const MAX_BODY_BYTES = 64 * 1024;

export function render(format: WebhookFormat, body: WebhookBody): string {
  return JSON.stringify(format === 'slack' ? { text: slackText(body) } : body);
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const link = (url: string, label: string) => `<${esc(url)}|${esc(label)}>`;

const HEADLINES: Record<WebhookBody['event'], string> = {
  node_waiting: 'A node is waiting for approval',
  node_approved: 'Node approved',
  node_denied: 'Node denied',
  node_revoked: 'Node revoked',
  config_downloaded: 'A node downloaded its machine config',
  cert_issued: 'Talos client certificate issued',
  auth_failures: 'Burst of refused exchanges',
};

export function slackText(b: WebhookBody): string {
  const lines = [`*${HEADLINES[b.event]}*`];
  if (b.node) {
    const n = b.node;
    const named = [n.hostname && `hostname ${n.hostname}`, n.uuid && `uuid ${n.uuid}`, n.mac && `mac ${n.mac}`, n.serial && `serial ${n.serial}`].filter(Boolean);
    lines.push(esc(`Node ${n.id}${named.length ? ` (${named.join(', ')})` : ''}${n.source_ip ? ` from ${n.source_ip}` : ''}`));
    if (b.user_code) lines.push(`Code \`${esc(b.user_code)}\``);
  }
  if (b.certificate) {
    const c = b.certificate;
    const roles = Array.isArray(c.roles) ? c.roles.join(', ') : '';
    lines.push(esc(`For ${String(c.common_name ?? c.subject)}${roles ? ` (${roles})` : ''}${c.client_ip ? ` from ${c.client_ip}` : ''}, until ${String(c.expires_at)}`));
  }
  if (b.auth_failures) {
    const f = b.auth_failures;
    lines.push(esc(`At least ${f.count} refused in the minute from ${f.window_start}; the last from ${f.last.ip ?? 'an unknown address'}: ${String(f.last.reason ?? 'no reason recorded')}`));
  }
  if (b.actor) lines.push(esc(`By ${b.actor}`));
  lines.push(link(b.confirm_url ?? b.dashboard_url, b.confirm_url ? (b.event === 'node_waiting' ? 'Approve or deny' : 'Open the code page') : 'Open talos-gate'));
  return lines.join('\n');
}
