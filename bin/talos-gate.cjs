#!/usr/bin/env node
'use strict';
// The talos-gate command. Installed from the package (npm install, npm pack) it runs the compiled
// dist/; in a source checkout (after npm ci: npx talos-gate) it runs the TypeScript sources through
// tsx, so no build is needed and a stale dist/ is never what runs.
//
// CommonJS on purpose: it sizes libuv's thread pool (thread-pool.cjs) before any ES module loads,
// because loading one starts the pool and the size is fixed from then on.
const { availableParallelism } = require('node:os');
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');
const { applyThreadPoolSize } = require('./thread-pool.cjs');

applyThreadPoolSize(process.env, availableParallelism());

const sources = join(__dirname, '..', 'cli', 'main.ts');
const compiled = join(__dirname, '..', 'dist', 'cli', 'main.js');

/** tsx is a development dependency: a checkout pruned with --omit=dev runs its dist/. */
function canRunSources() {
  if (!existsSync(sources)) return false;
  try {
    require.resolve('tsx/esm/api');
    return true;
  } catch {
    return false;
  }
}

async function main() {
  if (canRunSources()) {
    const { register } = await import('tsx/esm/api');
    register();
    await import(pathToFileURL(sources).href);
  } else if (existsSync(compiled)) {
    await import(pathToFileURL(compiled).href);
  } else {
    process.stderr.write(`talos-gate: neither ${sources} with tsx (npm ci) nor ${compiled} (npm run build) is here\n`);
    process.exitCode = 1;
  }
}
main().catch((e) => {
  // what an ES module entry point does with an error it throws while loading: print it, exit 1
  process.stderr.write(`${e instanceof Error && e.stack ? e.stack : String(e)}\n`);
  process.exit(1);
});
