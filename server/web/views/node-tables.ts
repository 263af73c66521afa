import type { NodeView } from '../../enrollment/service.js';
import { html, type Html } from '../html.js';
import { BULK_FORM_ID } from './bulk.js';
import { asSent, when } from './format.js';

// The node tables of the dashboard's tabs. Each row links to the node's page; a ticked checkbox
// belongs to the bulk form (its `form` attribute), so rows can keep their own small forms (Revoke)
// without nesting forms, which HTML does not allow.

function nodeLink(n: NodeView): Html {
  return html`<a class="mono" href="/nodes/${encodeURIComponent(n.id)}">${n.id}</a>`;
}

function badge(state: string): Html {
  return html`<span class="badge ${state}">${state}</span>`;
}

function tick(name: 'user_code' | 'node_id', value: string): Html {
  return html`<td class="pick"><input type="checkbox" name="${name}" value="${value}" form="${BULK_FORM_ID}" aria-label="Select ${value}"></td>`;
}

const selectAll = html`<th class="pick"><input type="checkbox" data-select-all aria-label="Select all on this page"></th>`;

/** Waiting machines: one row per code on a console, ticked by its code (the code tells two machines claiming one uuid apart). */
export function waitingTable(nodes: NodeView[], now: number): Html {
  return html`<div class="table-wrap"><table data-testid="pending-nodes">
<thead><tr>${selectAll}<th>Code</th><th>Node</th><th>MAC</th><th>Serial</th><th>Source IP</th><th>Asked</th><th></th></tr></thead>
<tbody>${nodes.map((n) => {
    const facts = html`<td>${nodeLink(n)}</td><td class="mono">${asSent(n.variables.mac)}</td><td class="mono">${asSent(n.variables.serial)}</td>`;
    if (n.pending.length === 0) {
      return html`<tr><td class="pick"></td><td class="muted">expired</td>${facts}<td class="mono">${n.sourceIp ?? ''}</td><td>${when(n.requestedAt, now)}</td><td class="muted">asks again at its next boot</td></tr>`;
    }
    return [
      ...n.pending.map(
        (p) => html`<tr>${tick('user_code', p.userCode)}<td class="mono nowrap"><strong>${p.userCode}</strong></td>${facts}<td class="mono">${p.sourceIp}</td><td>${when(p.requestedAt, now)}</td><td><a class="button small" href="/device?user_code=${encodeURIComponent(p.userCode)}">Review</a></td></tr>`,
      ),
      n.pendingCount > n.pending.length ? html`<tr><td></td><td colspan="7" class="muted">and ${n.pendingCount - n.pending.length} older codes for ${n.id}</td></tr>` : '',
    ];
  })}</tbody></table></div>`;
}

/**
 * Registered, approved, denied or revoked machines; `pickable`: with checkboxes for the bulk form;
 * `here`: the page's own path, where a Revoke returns to.
 */
export function nodesTable(nodes: NodeView[], now: number, csrf: string, pickable: boolean, here: string): Html {
  return html`<div class="table-wrap"><table data-testid="nodes">
<thead><tr>${pickable ? selectAll : ''}<th>Node</th><th>Status</th><th>Profile</th><th>Hostname</th><th>Decided</th><th>Downloads</th><th>Last download</th><th></th></tr></thead>
<tbody>${nodes.map(
    (n) => html`<tr>${pickable ? tick('node_id', n.id) : ''}
<td>${nodeLink(n)}${n.mac && n.mac !== n.id ? html`<br><span class="muted mono">${n.mac}</span>` : ''}</td>
<td>${badge(n.state)}${n.autoApprove ? html` <span class="badge">auto</span>` : ''}</td>
<td>${n.profile ?? '—'}</td>
<td class="mono">${n.hostname ?? '—'}</td>
<td>${when(n.decidedAt, now)}<br><span class="muted">${n.decidedBy ?? ''}</span></td>
<td>${n.configDownloads}</td>
<td>${when(n.lastDownloadAt, now)}${n.lastDownloadIp ? html`<br><span class="muted mono">${n.lastDownloadIp}</span>` : ''}</td>
<td>${n.status === 'approved'
      ? html`<form method="post" action="/nodes/${encodeURIComponent(n.id)}/revoke"><input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="return_to" value="${here}"><button class="small danger" type="submit">Revoke</button></form>`
      : ''}</td></tr>`,
  )}</tbody></table></div>`;
}
