import { AUDIT_TYPES } from '../../audit.js';
import type { AuditEvent, AuditFilter } from '../../storage/storage.js';
import { html, type Html } from '../html.js';
import { when } from './format.js';

export interface AuditPageView {
  events: AuditEvent[];
  filter: AuditFilter;
  /** Where the next (older) page starts, or undefined on the last page. */
  olderBefore: number | undefined;
  /** With a subject filter, the oldest event id this page looked at when it read its whole window. */
  searchedTo?: number | undefined;
  /** This is not the newest page. */
  paged: boolean;
  now: number;
}

/** Characters of an event's detail shown; the admin API has it whole. */
const DETAIL_SHOWN = 300;

/** The audit page's URL for a filter and a page start; empty fields are left out. */
export function auditHref(filter: AuditFilter, before?: number): string {
  const q = new URLSearchParams();
  for (const key of ['type', 'subject', 'actor'] as const) {
    const v = filter[key];
    if (v) q.set(key, v);
  }
  if (before !== undefined) q.set('before', String(before));
  const s = q.toString();
  return s ? `/audit?${s}` : '/audit';
}

function detail(d: Record<string, unknown>): string {
  const s = JSON.stringify(d);
  if (s === '{}') return '';
  return s.length > DETAIL_SHOWN ? `${s.slice(0, DETAIL_SHOWN)}…` : s;
}

export function auditPage(v: AuditPageView): Html {
  const f = v.filter;
  const filtered = Boolean(f.type || f.subject || f.actor);
  const rows = v.events.map(
    (e) => html`<tr>
  <td class="nowrap">${when(e.at, v.now)}</td>
  <td><a href="${auditHref({ ...f, type: e.type })}"><code>${e.type}</code></a></td>
  <td>${e.actor ? html`<a href="${auditHref({ ...f, actor: e.actor })}">${e.actor}</a>` : ''}</td>
  <td class="mono">${e.subject ? html`<a href="${auditHref({ ...f, subject: e.subject })}">${e.subject}</a>` : ''}</td>
  <td class="mono">${e.ip ?? ''}</td>
  <td class="mono detail">${detail(e.detail)}</td>
</tr>`,
  );
  return html`<h1>Audit trail</h1>
<form method="get" action="/audit" class="card filters" data-testid="audit-filters">
  <div class="filter-row">
    <label>Event <select name="type" id="type"><option value="">any</option>${AUDIT_TYPES.map(
      (t) => html`<option value="${t}" ${f.type === t ? 'selected' : ''}>${t}</option>`,
    )}</select></label>
    <label>Subject (node) <input type="text" name="subject" id="subject" value="${f.subject ?? ''}" maxlength="256" spellcheck="false"></label>
    <label>Actor <input type="text" name="actor" id="actor" value="${f.actor ?? ''}" maxlength="256" spellcheck="false"></label>
  </div>
  <div class="actions"><button type="submit">Filter</button>${filtered ? html`<a class="button secondary" href="/audit">Clear</a>` : ''}</div>
</form>
${v.searchedTo !== undefined && v.olderBefore !== undefined
    ? html`<p class="muted" data-testid="audit-window">Searched back to event #${v.searchedTo}; <a href="${auditHref(f, v.olderBefore)}">older events</a> may match too.</p>`
    : ''}
${v.events.length === 0
    ? html`<div class="empty" data-testid="audit-empty">${filtered ? 'No event matches this filter.' : 'Nothing has happened yet.'}</div>`
    : html`<div class="table-wrap"><table data-testid="audit-events">
<thead><tr><th>When</th><th>Event</th><th>Who</th><th>Subject</th><th>IP</th><th>Detail</th></tr></thead>
<tbody>${rows}</tbody></table></div>`}
<p class="actions">${v.paged ? html`<a class="button secondary" href="${auditHref(f)}" data-testid="audit-newest">Newest</a>` : ''}${v.olderBefore !== undefined
    ? html`<a class="button secondary" href="${auditHref(f, v.olderBefore)}" data-testid="audit-older">Older</a>`
    : ''}</p>`;
}
