import { html, type Html } from '../html.js';

export interface Viewer {
  name: string;
  isAdmin: boolean;
}

export interface PageOptions {
  title: string;
  body: Html;
  viewer?: Viewer | undefined;
  csrfToken?: string | undefined;
  devMode: boolean;
  /** Scripts of the page, each a path under /static/ (the CSP allows no inline script). */
  scripts?: string[] | undefined;
}

export function page(o: PageOptions): Html {
  const nav = o.viewer
    ? html`<nav class="main">
        ${o.viewer.isAdmin ? html`<a href="/">Dashboard</a>` : ''}
        ${o.viewer.isAdmin ? html`<a href="/audit">Audit</a>` : ''}
        <a href="/device">Enter a code</a>
        <span class="who">${o.viewer.name}${o.viewer.isAdmin ? ' · admin' : ''}</span>
        <form method="post" action="/auth/logout"><input type="hidden" name="_csrf" value="${o.csrfToken ?? ''}"><button class="link" type="submit">Sign out</button></form>
      </nav>`
    : html`<nav class="main"><a href="/auth/login">Sign in</a></nav>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${o.title} · talos-gate</title>
<link rel="stylesheet" href="/static/app.css">
${(o.scripts ?? []).map((src) => html`<script src="${src}" defer></script>`)}
</head>
<body>
${o.devMode ? html`<div class="dev-banner" role="alert">DEVELOPMENT MODE: embedded test IdP and a throwaway Talos CA. Never use this for real clusters.</div>` : ''}
<header class="top"><a class="brand" href="/">talos<span>-gate</span></a>${nav}</header>
<main>${o.body}</main>
</body>
</html>`;
}
