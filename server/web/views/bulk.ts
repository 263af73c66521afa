import type { BulkResult } from '../../enrollment/bulk-decisions.js';
import { HOSTNAME_VARIABLES } from '../../enrollment/hostname-template.js';
import { html, type Html } from '../html.js';

// Bulk decisions on the dashboard: the form above a tab's table (the rows' checkboxes join it by
// its id), and the page of per-machine results it leads to.

export const BULK_FORM_ID = 'bulk';

export interface BulkControls {
  /** Approve offered (the waiting tab): the profile is chosen once, for every ticked machine. */
  approve: boolean;
  profiles: string[];
  /** The profile marked default: true; without one the select starts on no profile. */
  defaultProfile: string | undefined;
  csrfToken: string;
}

export function bulkForm(v: BulkControls): Html {
  const profile = v.defaultProfile ?? '';
  const approveFields = v.approve
    ? html`<div class="bulk-fields">
<div><label for="bulk-profile">Profile</label>
<select id="bulk-profile" name="profile" required>${profile === '' ? html`<option value="" selected disabled>Choose a profile</option>` : ''}${v.profiles.map((p) => html`<option value="${p}" ${p === profile ? 'selected' : ''}>${p}</option>`)}</select></div>
<div><label for="bulk-hostname">Hostname template <span class="muted">(optional)</span></label>
<input type="text" id="bulk-hostname" name="hostname_template" maxlength="253" placeholder="worker-{{mac_suffix}}" autocomplete="off" spellcheck="false">
<p class="hint">Variables: ${Object.keys(HOSTNAME_VARIABLES).map((k, i) => html`${i ? ', ' : ''}<code>{{${k}}}</code>`)}. Empty: each machine gets its usual name.</p></div>
</div>`
    : '';
  return html`<form id="${BULK_FORM_ID}" class="card bulk" method="post" action="/nodes/bulk">
<input type="hidden" name="_csrf" value="${v.csrfToken}">
<p class="hint">Tick machines below, then decide for all of them at once.</p>
${approveFields}
<div class="actions">${v.approve ? html`<button class="approve" type="submit" name="decision" value="approve">Approve selected</button>` : ''}
<button class="deny" type="submit" name="decision" value="deny" formnovalidate>Deny selected</button></div>
</form>`;
}

function target(r: BulkResult): string {
  return 'userCode' in r ? r.userCode : r.nodeId;
}

export function bulkDone(v: { decision: 'approve' | 'deny'; results: BulkResult[] }): Html {
  const done = v.results.filter((r) => r.status !== 'error').length;
  const failed = v.results.length - done;
  const verb = v.decision === 'approve' ? 'approved' : 'denied';
  return html`<h1>${v.decision === 'approve' ? 'Bulk approval' : 'Bulk denial'}</h1>
<div class="alert ${failed ? 'error' : 'ok'}" role="status" data-testid="bulk-summary">${done} of ${v.results.length} machines ${verb}${failed ? html`; ${failed} not (see below)` : ''}.</div>
<div class="table-wrap"><table data-testid="bulk-results">
<thead><tr><th>Selected</th><th>Result</th><th>Node</th><th>Profile</th><th>Hostname</th></tr></thead>
<tbody>${v.results.map((r) =>
    r.status === 'error'
      ? html`<tr><td class="mono">${target(r)}</td><td><span class="badge denied">error</span> ${r.description}</td><td></td><td></td><td></td></tr>`
      : html`<tr><td class="mono">${target(r)}</td><td><span class="badge ${r.status}">${r.status}</span></td><td><a class="mono" href="/nodes/${encodeURIComponent(r.node.id)}">${r.node.id}</a></td><td>${r.node.profile ?? '—'}</td><td class="mono">${r.node.hostname ?? '—'}</td></tr>`,
  )}</tbody></table></div>
<p class="actions"><a class="button" href="/?tab=waiting">Back to the dashboard</a></p>`;
}
