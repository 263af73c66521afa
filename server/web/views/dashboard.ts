import type { AuditEvent, CertificateRecord } from '../../storage/storage.js';
import type { NodeView } from '../../enrollment/service.js';
import { html, type Html } from '../html.js';
import { asSent, when } from './format.js';

export interface DashboardView {
  /** The newest nodes with a pending request (at most a page), and how many there are in all. */
  pending: NodeView[];
  pendingTotal: number;
  /** The newest decided nodes (at most a page), and how many there are in all. */
  decided: NodeView[];
  decidedTotal: number;
  certs: CertificateRecord[];
  audit: AuditEvent[];
  csrfToken: string;
  now: number;
  flash?: string | undefined;
}

function statusBadge(s: string): Html {
  return html`<span class="badge ${s}">${s}</span>`;
}

function pendingTable(nodes: NodeView[], now: number): Html {
  if (nodes.length === 0) return html`<div class="empty">No machine is waiting. This page refreshes itself.</div>`;
  return html`<div class="table-wrap"><table data-testid="pending-nodes">
<thead><tr><th>Code</th><th>UUID</th><th>MAC</th><th>Serial</th><th>Source IP</th><th>Asked</th><th></th></tr></thead>
<tbody>${nodes.flatMap((n) =>
    n.pending.map(
      (p) => html`<tr>
  <td class="mono nowrap"><strong>${p.userCode}</strong></td>
  <td class="mono">${asSent(n.variables.uuid)}</td>
  <td class="mono">${asSent(n.variables.mac)}</td>
  <td class="mono">${asSent(n.variables.serial)}</td>
  <td class="mono">${p.sourceIp}</td>
  <td>${when(p.requestedAt, now)}</td>
  <td><a class="button small" href="/device?user_code=${encodeURIComponent(p.userCode)}">Review</a></td>
</tr>`,
    ).concat(
      n.pendingCount > n.pending.length
        ? [html`<tr><td colspan="7" class="muted">and ${n.pendingCount - n.pending.length} older codes for ${n.id}</td></tr>`]
        : [],
    ),
  )}</tbody></table></div>`;
}

function nodesTable(nodes: NodeView[], now: number, csrf: string): Html {
  if (nodes.length === 0) return html`<div class="empty">No machine has been approved or denied yet.</div>`;
  return html`<div class="table-wrap"><table data-testid="nodes">
<thead><tr><th>Node</th><th>Status</th><th>Profile</th><th>Hostname</th><th>Decided</th><th>Downloads</th><th>Last download</th><th></th></tr></thead>
<tbody>${nodes.map(
    (n) => html`<tr>
  <td class="mono">${n.id}${n.mac && n.mac !== n.id ? html`<br><span class="muted">${n.mac}</span>` : ''}</td>
  <td>${statusBadge(n.status)}${n.autoApprove ? html` <span class="badge">auto</span>` : ''}</td>
  <td>${n.profile ?? '—'}</td>
  <td class="mono">${n.hostname ?? '—'}</td>
  <td>${when(n.decidedAt, now)}<br><span class="muted">${n.decidedBy ?? ''}</span></td>
  <td>${n.configDownloads}</td>
  <td>${when(n.lastDownloadAt, now)}${n.lastDownloadIp ? html`<br><span class="muted mono">${n.lastDownloadIp}</span>` : ''}</td>
  <td>${n.status === 'approved'
      ? html`<form method="post" action="/nodes/${encodeURIComponent(n.id)}/revoke"><input type="hidden" name="_csrf" value="${csrf}"><button class="small danger" type="submit">Revoke</button></form>`
      : ''}</td>
</tr>`,
  )}</tbody></table></div>`;
}

/** Under a table that shows only the newest of its nodes: how many more there are, and where to see them. */
function more(shown: number, total: number, query: string): Html | string {
  if (total <= shown) return '';
  return html`<p class="muted" data-testid="more-nodes">Showing the newest ${shown} of ${total} machines. List them all with
<code>talos-gate nodes list${query ? ` --status ${query}` : ''}</code> or <code>GET /api/v1/nodes${query ? `?status=${query}` : ''}</code>.</p>`;
}

function certsTable(certs: CertificateRecord[], now: number): Html {
  if (certs.length === 0) return html`<div class="empty">No active talosctl certificate.</div>`;
  return html`<div class="table-wrap"><table data-testid="certs">
<thead><tr><th>User</th><th>Roles</th><th>Issued</th><th>Expires</th><th>Client IP</th><th>Serial</th></tr></thead>
<tbody>${certs.map(
    (c) => html`<tr><td>${c.commonName}</td><td>${c.roles.join(', ')}</td><td>${when(c.issuedAt, now)}</td><td>${when(c.expiresAt, now)}</td><td class="mono">${c.clientIp ?? ''}</td><td class="mono">${c.serial.slice(0, 16)}…</td></tr>`,
  )}</tbody></table></div>`;
}

function auditTable(events: AuditEvent[], now: number): Html {
  if (events.length === 0) return html`<div class="empty">Nothing has happened yet.</div>`;
  return html`<div class="table-wrap"><table data-testid="audit">
<thead><tr><th>When</th><th>Event</th><th>Who</th><th>Subject</th><th>IP</th></tr></thead>
<tbody>${events.map(
    (e) => html`<tr><td>${when(e.at, now)}</td><td><code>${e.type}</code></td><td>${e.actor ?? ''}</td><td class="mono">${e.subject ?? ''}</td><td class="mono">${e.ip ?? ''}</td></tr>`,
  )}</tbody></table></div>`;
}

export function dashboard(v: DashboardView): Html {
  return html`<h1>Dashboard</h1>
${v.flash ? html`<div class="alert ok" role="status">${v.flash}</div>` : ''}
<h2>Waiting for approval (${v.pendingTotal})</h2>
${pendingTable(v.pending, v.now)}
${more(v.pending.length, v.pendingTotal, 'pending')}
<h2>Machines (${v.decidedTotal})</h2>
${nodesTable(v.decided, v.now, v.csrfToken)}
${more(v.decided.length, v.decidedTotal, '')}
<h2>Active talosctl certificates</h2>
${certsTable(v.certs, v.now)}
<h2>Recent events</h2>
${auditTable(v.audit, v.now)}`;
}
