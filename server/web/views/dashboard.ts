import type { AuditEvent, CertificateRecord } from '../../storage/storage.js';
import { DASHBOARD_TABS, type DashboardTab, type TabPage } from '../dashboard-tabs.js';
import { html, type Html } from '../html.js';
import { auditTable, certsTable } from './activity.js';
import { bulkForm } from './bulk.js';
import { nodesTable, waitingTable } from './node-tables.js';

export interface DashboardView {
  tab: TabPage;
  profiles: string[];
  defaultProfile: string | undefined;
  certs: CertificateRecord[];
  audit: AuditEvent[];
  csrfToken: string;
  now: number;
  /** The waiting tab reloads itself after this many seconds while the admin leaves it alone (static/dashboard.js). */
  refreshSeconds: number;
}

const LABELS: Record<DashboardTab, string> = { waiting: 'Waiting', registered: 'Registered', approved: 'Approved', denied: 'Denied / revoked' };

const EMPTY: Record<DashboardTab, string> = {
  waiting: 'No machine is waiting. This tab refreshes itself.',
  registered: 'No machine is registered and not yet booted. Register machines with talos-gate nodes import.',
  approved: 'No machine is approved.',
  denied: 'No machine is denied or revoked.',
};

/** Bulk decisions where they make sense: approve or deny waiting machines; deny registered ones (before they boot) or approved ones. */
const BULK: Record<DashboardTab, 'approve' | 'deny' | undefined> = { waiting: 'approve', registered: 'deny', approved: 'deny', denied: undefined };

/** A dashboard link that keeps the search, without empty parameters. */
export function tabHref(tab: DashboardTab, q: string, cursor?: string): string {
  const p = new URLSearchParams({ tab });
  if (q) p.set('q', q);
  if (cursor) p.set('cursor', cursor);
  return `/?${p.toString()}`;
}

function tabs(t: TabPage): Html {
  return html`<nav class="tabs" aria-label="Machines by state">${DASHBOARD_TABS.map(
    (id) => html`<a href="${tabHref(id, t.query.q)}" data-tab="${id}"${id === t.query.tab ? html` aria-current="page"` : ''}>${LABELS[id]} <span class="count">${t.counts[id]}</span></a>`,
  )}</nav>`;
}

function search(t: TabPage): Html {
  return html`<form class="search" method="get" action="/" role="search">
<input type="hidden" name="tab" value="${t.query.tab}">
<label for="q" class="visually-hidden">Search</label>
<input type="search" id="q" name="q" value="${t.query.q}" maxlength="128" placeholder="Search: start of a uuid, mac, serial, hostname or source IP" autocomplete="off" spellcheck="false">
<button type="submit">Search</button>${t.query.q ? html` <a href="${tabHref(t.query.tab, '')}">Clear</a>` : ''}
</form>`;
}

function pager(t: TabPage): Html {
  const first = t.query.cursor ? html`<a href="${tabHref(t.query.tab, t.query.q)}">Newest</a>` : '';
  const next = t.nextCursor ? html`<a class="button small" rel="next" href="${tabHref(t.query.tab, t.query.q, t.nextCursor)}">Next page</a>` : '';
  if (!first && !next) return html``;
  return html`<nav class="pager" aria-label="Pages">${first}${next}</nav>`;
}

function table(v: DashboardView): Html {
  const t = v.tab;
  if (t.nodes.length === 0) {
    return html`<div class="empty" data-testid="no-nodes">${t.query.q ? `No machine here starts with “${t.query.q}”.` : t.query.cursor ? 'No more machines.' : EMPTY[t.query.tab]}</div>`;
  }
  if (t.query.tab === 'waiting') return waitingTable(t.nodes, v.now);
  return nodesTable(t.nodes, v.now, v.csrfToken, BULK[t.query.tab] !== undefined, tabHref(t.query.tab, t.query.q, t.query.cursor));
}

export function dashboard(v: DashboardView): Html {
  const t = v.tab;
  const bulk = BULK[t.query.tab];
  const refresh = t.query.tab === 'waiting' ? v.refreshSeconds : 0;
  return html`<div data-refresh-seconds="${refresh}">
<h1>Dashboard</h1>
${tabs(t)}
${search(t)}
${bulk && t.nodes.length > 0 ? bulkForm({ approve: bulk === 'approve', profiles: v.profiles, defaultProfile: v.defaultProfile, csrfToken: v.csrfToken }) : ''}
${table(v)}
${pager(t)}
<h2>Active talosctl certificates</h2>
${certsTable(v.certs, v.now)}
<h2>Recent events</h2>
${auditTable(v.audit, v.now)}
</div>`;
}
