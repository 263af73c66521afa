import type { AuditEvent, CertificateRecord } from '../../storage/storage.js';
import { html, type Html } from '../html.js';
import { when } from './format.js';

// The dashboard's lower half: the active talosctl certificates and the latest events.

export function certsTable(certs: CertificateRecord[], now: number): Html {
  if (certs.length === 0) return html`<div class="empty">No active talosctl certificate.</div>`;
  return html`<div class="table-wrap"><table data-testid="certs">
<thead><tr><th>User</th><th>Roles</th><th>Issued</th><th>Expires</th><th>Client IP</th><th>Serial</th></tr></thead>
<tbody>${certs.map(
    (c) => html`<tr><td>${c.commonName}</td><td>${c.roles.join(', ')}</td><td>${when(c.issuedAt, now)}</td><td>${when(c.expiresAt, now)}</td><td class="mono">${c.clientIp ?? ''}</td><td class="mono">${c.serial.slice(0, 16)}…</td></tr>`,
  )}</tbody></table></div>`;
}

export function auditTable(events: AuditEvent[], now: number): Html {
  if (events.length === 0) return html`<div class="empty">Nothing has happened yet.</div>`;
  return html`<div class="table-wrap"><table data-testid="audit">
<thead><tr><th>When</th><th>Event</th><th>Who</th><th>Subject</th><th>IP</th></tr></thead>
<tbody>${events.map(
    (e) => html`<tr><td>${when(e.at, now)}</td><td><code>${e.type}</code></td><td>${e.actor ?? ''}</td><td class="mono">${e.subject ?? ''}</td><td class="mono">${e.ip ?? ''}</td></tr>`,
  )}</tbody></table></div>`;
}
