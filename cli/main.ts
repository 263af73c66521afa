#!/usr/bin/env node
import { Command } from 'commander';
import { ConfigError } from '../server/config/load.js';
import { RenderError } from '../server/machine-config/render.js';
import { CaError } from '../server/pki/ca.js';
import { caCommand } from './ca.js';
import { serveCommand } from './serve.js';
import { simulateNodeCommand } from './simulate-node.js';

const program = new Command('talos-gate')
  .description('single sign-on in front of Talos Linux: node enrollment and talosctl certificates')
  .showHelpAfterError();

serveCommand(program);
simulateNodeCommand(program);
caCommand(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof ConfigError || e instanceof RenderError || e instanceof CaError) {
    process.stderr.write(`talos-gate: config error: ${e.message}\n`);
    process.exit(2);
  }
  const code = (e as { code?: string }).code;
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`talos-gate: ${code === 'ECONNREFUSED' || code === 'ENOTFOUND' ? `cannot reach the gate: ${msg}` : msg}\n`);
  process.exit(code === 'ECONNREFUSED' || code === 'ENOTFOUND' ? 2 : 1);
});
