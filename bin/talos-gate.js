#!/usr/bin/env node
// The talos-gate command. Installed from the package (npm install, npm pack) it runs the compiled
// dist/; in a source checkout (after npm ci: npx talos-gate) it runs the TypeScript sources through
// tsx, so no build is needed and a stale dist/ is never what runs.
import { existsSync } from 'node:fs';

const sources = new URL('../cli/main.ts', import.meta.url);
if (existsSync(sources)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(sources.href);
} else {
  await import(new URL('../dist/cli/main.js', import.meta.url).href);
}
