import { formatUserCode } from '../../../device/user-code.js';
import type { NodeReview, NodeView } from '../../enrollment/service.js';
import { diffLines } from '../../machine-config/line-diff.js';
import type { DeviceRequestRecord } from '../../storage/storage.js';
import { html, type Html } from '../html.js';
import { configDiff } from './config-diff.js';
import { asSent, when } from './format.js';

/** What an admin can do to a node from its page; each is posted, confirmed, then done. */
export type NodeAction = 'rerender' | 'deny' | 'revoke' | 'forget';

export const NODE_ACTIONS: readonly NodeAction[] = ['rerender', 'deny', 'revoke', 'forget'];

interface ActionText {
  button: string;
  /** The confirm page's question and what it tells of the consequences. */
  question: string;
  consequence: string;
  /** The page's note once done. */
  done: string;
  danger: boolean;
}

const ACTION_TEXT: Record<NodeAction, ActionText> = {
  rerender: {
    button: 'Re-render',
    question: 'Re-render the config of node',
    consequence: 'The config the templates render now replaces the stored one; the node gets it at its next download (its next boot).',
    done: 'Re-rendered: the node gets the config the templates render now.',
    danger: false,
  },
  deny: {
    button: 'Deny',
    question: 'Deny node',
    consequence: 'Its pending requests are refused and its access tokens revoked; it is refused at every boot until it is forgotten or approved again.',
    done: 'Denied.',
    danger: true,
  },
  revoke: {
    button: 'Revoke',
    question: 'Revoke node',
    consequence: 'Its access tokens are revoked and it can no longer download its config; its next boot asks for approval again.',
    done: 'Revoked.',
    danger: true,
  },
  forget: {
    button: 'Forget',
    question: 'Forget node',
    consequence: 'The node, its requests and its tokens are deleted (the audit trail keeps what happened). Its next boot starts afresh as a new machine waiting for approval.',
    done: 'Forgotten.',
    danger: true,
  },
};

/** The actions that make sense for a node in its state (the service refuses the others all the same). */
export function actionsFor(n: Pick<NodeView, 'status'>): NodeAction[] {
  return NODE_ACTIONS.filter((a) => (a === 'rerender' || a === 'revoke' ? n.status === 'approved' : a === 'deny' ? n.status !== 'denied' : true));
}

export function nodeHref(id: string, suffix = ''): string {
  return `/nodes/${encodeURIComponent(id)}${suffix}`;
}

/** The note a node page shows after an action (?done=…), or undefined for anything else. */
export function doneNote(v: unknown): string | undefined {
  return typeof v === 'string' && (NODE_ACTIONS as readonly string[]).includes(v) ? ACTION_TEXT[v as NodeAction].done : undefined;
}

function actionForm(id: string, action: NodeAction, csrf: string, confirm: boolean, returnTo?: string): Html {
  const t = ACTION_TEXT[action];
  return html`<form method="post" action="${nodeHref(id, `/${action}`)}">
  <input type="hidden" name="_csrf" value="${csrf}">
  ${confirm ? html`<input type="hidden" name="confirm" value="1">` : ''}
  ${returnTo !== undefined ? html`<input type="hidden" name="return_to" value="${returnTo}">` : ''}
  <button type="submit" class="${t.danger ? 'danger' : ''}" data-action="${action}">${confirm ? `Yes, ${t.button.toLowerCase()}` : t.button}</button>
</form>`;
}

const lines = (n: number) => `${n} line${n === 1 ? '' : 's'}`;

function badge(s: string): Html {
  return html`<span class="badge ${s}">${s}</span>`;
}

function requestsTable(r: NodeReview, now: number): Html {
  if (r.requests.length === 0) return html`<div class="empty">It never asked: it was registered from inventory.</div>`;
  const row = (q: DeviceRequestRecord) => html`<tr>
  <td>${when(q.createdAt, now)}</td>
  <td class="mono nowrap">${q.status === 'pending' && q.expiresAt >= now
    ? html`<a href="/device?user_code=${encodeURIComponent(formatUserCode(q.userCode))}">${formatUserCode(q.userCode)}</a>`
    : formatUserCode(q.userCode)}</td>
  <td>${badge(q.status === 'pending' && q.expiresAt < now ? 'expired' : q.status)}</td>
  <td class="mono">${q.sourceIp}</td>
  <td>${q.decidedAt === null ? '—' : when(q.decidedAt, now)}<br><span class="muted">${q.decidedBy ?? ''}</span></td>
</tr>`;
  return html`<div class="table-wrap"><table data-testid="requests">
<thead><tr><th>Asked</th><th>Code</th><th>Status</th><th>Source IP</th><th>Decided</th></tr></thead>
<tbody>${r.requests.map(row)}</tbody></table></div>
${r.requestCount > r.requests.length ? html`<p class="muted">The newest ${r.requests.length} of ${r.requestCount} requests.</p>` : ''}`;
}

function configSection(r: NodeReview): Html {
  const id = r.node.id;
  if (r.config === null) return html`<div class="empty" data-testid="no-config">No config yet: it is rendered when the node is approved.</div>`;
  const now = r.renderedNow;
  let comparison: Html;
  if (now === null) comparison = html``;
  else if ('error' in now) {
    comparison = html`<div class="alert error" role="alert" data-testid="render-error">The templates do not render for this node now: ${now.error}</div>`;
  } else {
    const d = diffLines(r.config, now.config);
    comparison =
      d.hunks.length === 0
        ? html`<div class="alert ok" role="status" data-testid="config-current">The stored config is what the templates render now.</div>`
        : html`<div class="alert info" role="status" data-testid="config-changed">The templates render this node's config differently now: ${lines(d.removed)} removed, ${d.added} added. Re-render stores the new one.</div>
${configDiff(d)}`;
  }
  return html`${comparison}
<p><a class="button small" href="${nodeHref(id, '/config')}" download>Download the config (YAML)</a></p>
<pre class="config" data-testid="config">${r.config}</pre>`;
}

export interface NodePageView {
  review: NodeReview;
  csrfToken: string;
  now: number;
  flash?: string | undefined;
}

export function nodePage(v: NodePageView): Html {
  const { node: n } = v.review;
  const vars = n.variables;
  const actions = actionsFor(n);
  const others = Object.entries(vars).filter(([k]) => !['uuid', 'mac', 'serial', 'hostname'].includes(k));
  return html`<h1>Node <span class="mono">${n.id}</span> ${badge(n.state)}</h1>
${v.flash ? html`<div class="alert ok" role="status" data-testid="flash">${v.flash}</div>` : ''}
<div class="card">
<h2>What it sent</h2>
<dl class="facts" data-testid="node-sent">
  <dt>UUID</dt><dd class="mono" data-fact="uuid">${asSent(vars.uuid)}</dd>
  <dt>MAC</dt><dd class="mono" data-fact="mac">${asSent(vars.mac)}</dd>
  <dt>Serial</dt><dd class="mono" data-fact="serial">${asSent(vars.serial)}</dd>
  <dt>Hostname</dt><dd class="mono" data-fact="hostname">${asSent(vars.hostname)}</dd>
  <dt>Source IP</dt><dd class="mono" data-fact="source_ip">${n.sourceIp ?? '—'}</dd>
  <dt>Last asked</dt><dd>${when(n.requestedAt, v.now)}</dd>
  <dt>Known since</dt><dd>${when(n.createdAt, v.now)}</dd>
  ${others.map(([k, val]) => html`<dt class="mono">${k}</dt><dd class="mono" data-var="${k}">${asSent(val)}</dd>`)}
</dl>
</div>
<div class="card">
<h2>Decision</h2>
<dl class="facts" data-testid="node-decision">
  <dt>Status</dt><dd data-fact="status">${n.status}</dd>
  <dt>Profile</dt><dd data-fact="profile">${n.profile ?? '—'}</dd>
  <dt>Hostname</dt><dd class="mono" data-fact="decided_hostname">${n.hostname ?? '—'}</dd>
  <dt>Patches</dt><dd>${n.patches.length}</dd>
  <dt>Decided</dt><dd data-fact="decided">${when(n.decidedAt, v.now)}${n.decidedBy ? html` by <strong>${n.decidedBy}</strong>` : ''}</dd>
  <dt>Auto-approve</dt><dd>${n.autoApprove ? `armed${n.autoApproveCidrs.length ? ` from ${n.autoApproveCidrs.join(', ')}` : ''}` : 'no'}</dd>
  <dt>Downloads</dt><dd data-fact="downloads">${n.configDownloads}</dd>
  <dt>Last download</dt><dd>${when(n.lastDownloadAt, v.now)}${n.lastDownloadIp ? html` from <span class="mono">${n.lastDownloadIp}</span>` : ''}</dd>
</dl>
<div class="actions" data-testid="node-actions">${actions.map((a) => actionForm(n.id, a, v.csrfToken, false))}</div>
</div>
<h2>Machine config</h2>
${configSection(v.review)}
<h2>Device requests</h2>
${requestsTable(v.review, v.now)}
<p><a href="/audit?subject=${encodeURIComponent(n.id)}">Audit events of this node</a></p>`;
}

/** The second step of an action: what it does, and a form that does it. Works without JavaScript. */
/** returnTo: where to go once done (the dashboard page the action was pressed on); else the node page. */
export function confirmAction(v: { node: NodeView; action: NodeAction; csrfToken: string; returnTo?: string | undefined }): Html {
  const t = ACTION_TEXT[v.action];
  return html`<div class="card narrow">
  <h1>${t.question} <span class="mono">${v.node.id}</span>?</h1>
  <p>${t.consequence}</p>
  <dl class="facts"><dt>Status</dt><dd>${v.node.status}</dd><dt>Profile</dt><dd>${v.node.profile ?? '—'}</dd><dt>Hostname</dt><dd class="mono">${v.node.hostname ?? '—'}</dd></dl>
  <div class="actions">${actionForm(v.node.id, v.action, v.csrfToken, true, v.returnTo)}<a class="button secondary" href="${v.returnTo ?? nodeHref(v.node.id)}">Cancel</a></div>
</div>`;
}

export function nodeForgotten(id: string): Html {
  return html`<div class="card narrow"><h1>Forgotten</h1><div class="alert ok" role="status">Node <span class="mono">${id}</span> is forgotten: its next boot starts afresh.</div>
<p><a href="/">Back to the dashboard</a> · <a href="/audit?subject=${encodeURIComponent(id)}">its audit events</a></p></div>`;
}
