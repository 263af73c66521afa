import { html, type Html } from '../html.js';

export function notAllowed(who: string): Html {
  return html`<div class="card narrow">
  <h1>Not allowed</h1>
  <div class="alert error" role="alert">You are signed in as <strong>${who}</strong>, who may not approve machines or see this page.</div>
  <p class="muted">Ask an administrator to add you to the group that talos-gate's <code>admins</code> rules name.</p>
</div>`;
}

export function problem(title: string, message: string): Html {
  return html`<div class="card narrow"><h1>${title}</h1><div class="alert error" role="alert">${message}</div><p><a href="/">Back to the start</a></p></div>`;
}

export function signedOut(): Html {
  return html`<div class="card narrow"><h1>Signed out</h1><p>You have been signed out of talos-gate.</p><div class="actions"><a class="button" href="/auth/login">Sign in again</a></div></div>`;
}
