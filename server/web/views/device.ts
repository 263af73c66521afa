import type { DeviceRequestRecord, NodeRecord } from '../../storage/storage.js';
import { formatUserCode } from '../../../device/user-code.js';
import { html, type Html } from '../html.js';
import { asSent, when } from './format.js';

export interface EntryView {
  prefill: string;
  error?: string | undefined;
  lockedUntil?: number | undefined;
  csrfToken: string;
  now: number;
}

export function codeEntry(v: EntryView): Html {
  const locked = v.lockedUntil !== undefined;
  return html`<div class="card narrow">
  <h1>Enter the code</h1>
  <p class="muted">Type the code shown on the machine's console (or scan its QR code).</p>
  ${v.error ? html`<div class="alert error" role="alert">${v.error}</div>` : ''}
  ${locked ? html`<div class="alert error" role="alert">Too many wrong codes. Code entry is closed until ${when(v.lockedUntil, v.now)}.</div>` : ''}
  <form method="post" action="/device">
    <input type="hidden" name="_csrf" value="${v.csrfToken}">
    <label for="user_code">Code</label>
    <input class="code-input" type="text" id="user_code" name="user_code" value="${v.prefill}" autocomplete="off" autocapitalize="characters" spellcheck="false" maxlength="20" placeholder="XXXX-XXXX" ${locked ? 'disabled' : ''} required>
    <div class="actions"><button type="submit" ${locked ? 'disabled' : ''}>Continue</button></div>
  </form>
</div>`;
}

export interface ConfirmNodeView {
  request: DeviceRequestRecord;
  node: NodeRecord;
  profiles: string[];
  /** The profile marked default: true; without one the select starts on no profile. */
  defaultProfile?: string | undefined;
  defaultHostname: string;
  csrfToken: string;
  /** Proves the decision comes from the session that looked this request up (decision-tickets.ts). */
  ticket: string;
  now: number;
  error?: string | undefined;
  form?: { profile?: string; hostname?: string; patch?: string } | undefined;
}

export function confirmNode(v: ConfirmNodeView): Html {
  const vars = v.request.variables;
  const profile = v.form?.profile ?? v.node.profile ?? v.defaultProfile ?? '';
  const previously = v.node.decidedAt !== null && v.node.status !== 'pending' ? html`<p class="hint">This machine was ${v.node.status} before (${when(v.node.decidedAt, v.now)} by ${v.node.decidedBy ?? 'unknown'}).</p>` : '';
  return html`<div class="card narrow">
  <h1>Approve this machine?</h1>
  <p>Check that the code below is the one on the machine's console.</p>
  <div class="usercode" data-testid="user-code">${formatUserCode(v.request.userCode)}</div>
  ${v.error ? html`<div class="alert error" role="alert">${v.error}</div>` : ''}
  <dl class="facts" data-testid="node-facts">
    <dt>UUID</dt><dd class="mono" data-fact="uuid">${asSent(vars.uuid)}</dd>
    <dt>MAC</dt><dd class="mono" data-fact="mac">${asSent(vars.mac)}</dd>
    <dt>Serial</dt><dd class="mono" data-fact="serial">${asSent(vars.serial)}</dd>
    <dt>Hostname</dt><dd class="mono" data-fact="hostname">${asSent(vars.hostname)}</dd>
    <dt>Source IP</dt><dd class="mono" data-fact="source_ip">${v.request.sourceIp}</dd>
    <dt>Asked</dt><dd data-fact="requested">${when(v.request.createdAt, v.now)}</dd>
    <dt>Code expires</dt><dd>${when(v.request.expiresAt, v.now)}</dd>
    <dt>Client</dt><dd class="mono">${v.request.clientId}</dd>
  </dl>
  ${previously}
  <form method="post" action="/device/decision">
    <input type="hidden" name="_csrf" value="${v.csrfToken}">
    <input type="hidden" name="user_code" value="${formatUserCode(v.request.userCode)}">
    <input type="hidden" name="ticket" value="${v.ticket}">
    <label for="profile">Profile</label>
    <select id="profile" name="profile" required>${profile === '' ? html`<option value="" selected disabled>Choose a profile</option>` : ''}${v.profiles.map((p) => html`<option value="${p}" ${p === profile ? 'selected' : ''}>${p}</option>`)}</select>
    <label for="hostname">Hostname</label>
    <input type="text" id="hostname" name="hostname" value="${v.form?.hostname ?? v.node.hostname ?? v.defaultHostname}" autocomplete="off" spellcheck="false">
    <label for="patch">Extra patch (optional)</label>
    <textarea id="patch" name="patch" spellcheck="false" placeholder="machine:&#10;  install:&#10;    disk: /dev/nvme0n1">${v.form?.patch ?? ''}</textarea>
    <p class="hint">A strategic merge patch or an RFC 6902 JSON patch in YAML, applied after the profile's patches.</p>
    <div class="actions">
      <button class="approve" type="submit" name="decision" value="approve">Approve</button>
      <button class="deny" type="submit" name="decision" value="deny" formnovalidate>Deny</button>
    </div>
  </form>
</div>`;
}

export function decisionDone(v: { approved: boolean; node: Pick<NodeRecord, 'id' | 'profile' | 'hostname'>; userCode: string }): Html {
  return html`<div class="card narrow">
  <h1>${v.approved ? 'Approved' : 'Denied'}</h1>
  <div class="alert ${v.approved ? 'ok' : 'error'}" role="status">
    ${v.approved
      ? html`Machine <span class="mono">${v.node.id}</span> (code ${v.userCode}) will download its <strong>${v.node.profile}</strong> config as <span class="mono">${v.node.hostname}</span> at its next poll.`
      : html`Machine <span class="mono">${v.node.id}</span> (code ${v.userCode}) was denied. It will not get a config.`}
  </div>
  <div class="actions"><a class="button" href="/device">Enter another code</a><a class="button" href="/">Dashboard</a></div>
</div>`;
}

export function confirmOperator(v: { request: DeviceRequestRecord; user: string; roles: string[]; csrfToken: string; ticket: string; now: number }): Html {
  return html`<div class="card narrow">
  <h1>Log in the talos-gate CLI?</h1>
  <p><strong>talos-gate CLI login from <span class="mono" data-fact="source_ip">${v.request.sourceIp}</span>, requested ${when(v.request.createdAt, v.now)}.</strong></p>
  <p>Check that the code below is the one your terminal shows. Approve only a login you started yourself.</p>
  <div class="usercode" data-testid="user-code">${formatUserCode(v.request.userCode)}</div>
  <dl class="facts">
    <dt>Signed in as</dt><dd>${v.user}</dd>
    <dt>Talos roles</dt><dd data-fact="roles">${v.roles.length ? v.roles.join(', ') : html`<span class="badge denied">none: talosctl will be refused</span>`}</dd>
    <dt>Code expires</dt><dd>${when(v.request.expiresAt, v.now)}</dd>
  </dl>
  <form method="post" action="/device/decision">
    <input type="hidden" name="_csrf" value="${v.csrfToken}">
    <input type="hidden" name="user_code" value="${formatUserCode(v.request.userCode)}">
    <input type="hidden" name="ticket" value="${v.ticket}">
    <div class="actions">
      <button class="approve" type="submit" name="decision" value="approve">Approve login</button>
      <button class="deny" type="submit" name="decision" value="deny">Deny</button>
    </div>
  </form>
</div>`;
}

export function operatorDone(v: { approved: boolean; user: string }): Html {
  return html`<div class="card narrow">
  <h1>${v.approved ? 'Logged in' : 'Refused'}</h1>
  <div class="alert ${v.approved ? 'ok' : 'error'}" role="status">${v.approved
    ? html`The talos-gate CLI is now logged in as <strong>${v.user}</strong>. You can close this page.`
    : 'The CLI login was refused.'}</div>
</div>`;
}
