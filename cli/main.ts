#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../server/config/load.js';
import { RenderError } from '../server/machine-config/render.js';
import { packageRoot } from '../server/paths.js';
import { CaError } from '../server/pki/ca.js';
import { adminCommands } from './admin.js';
import { caCommand } from './ca.js';
import { dbCommand } from './db.js';
import { UsageError } from './connection.js';
import { GateApiError } from './gate-api.js';
import { healthcheckCommand } from './healthcheck.js';
import { WrongSchemeError } from './http.js';
import { loginCommand } from './login.js';
import { logoutCommand } from './logout.js';
import { LoginEndedError } from './renewal.js';
import { statusCommand } from './status.js';
import { serveCommand } from './serve.js';
import { simulateNodeCommand } from './simulate-node.js';

// `talos-gate … | head`: once the reader has gone, stop quietly instead of printing an EPIPE stack.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(Number(process.exitCode ?? 0));
    throw e;
  });
}

const { version } = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };

const program = new Command('talos-gate')
  .description('single sign-on in front of Talos Linux: node enrollment and talosctl certificates')
  .version(version, '-V, --version', 'print the version')
  .showHelpAfterError()
  // commander's own refusals (unknown flag, missing argument or required option) throw instead of
  // exiting 1, so they exit 2 like every usage error; set before the commands, which inherit it
  .exitOverride();

serveCommand(program);
loginCommand(program);
statusCommand(program);
logoutCommand(program);
adminCommands(program);
simulateNodeCommand(program);
caCommand(program);
healthcheckCommand(program);
dbCommand(program);

program.addHelpText(
  'after',
  `
Exit codes: 0 success; 1 refused (by the gate, the IdP, or a login that ended); 2 bad usage, config
error, or the gate cannot be reached; 3 not found.`,
);

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof CommanderError) {
    // commander printed the message (and the help) already; --help and --version are exit code 0
    process.exit(e.exitCode === 0 ? 0 : 2);
  }
  if (e instanceof WrongSchemeError) {
    process.stderr.write(`talos-gate: cannot reach the gate: ${e.message}\n`);
    process.exit(2);
  }
  if (e instanceof ConfigError || e instanceof RenderError || e instanceof CaError) {
    process.stderr.write(`talos-gate: config error: ${e.message}\n`);
    process.exit(2);
  }
  if (e instanceof UsageError) {
    process.stderr.write(`talos-gate: ${e.message}\n`);
    process.exit(2);
  }
  if (e instanceof GateApiError) {
    process.stderr.write(`talos-gate: the gate refused: ${e.message}\n`);
    process.exit(e.status === 404 ? 3 : 1);
  }
  if (e instanceof LoginEndedError) {
    process.stderr.write(`talos-gate: ${e.message}\n`);
    process.exit(1);
  }
  const code = (e as { code?: string }).code ?? (e as { cause?: { code?: string } }).cause?.code;
  const msg = e instanceof Error ? e.message : String(e);
  const unreachable = ['ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'].includes(code ?? '');
  process.stderr.write(`talos-gate: ${unreachable ? `cannot reach the gate: ${msg}${/CERT|SIGNATURE/.test(code ?? '') ? ' (pass --server-ca with its CA)' : ''}` : msg}\n`);
  process.exit(unreachable ? 2 : 1);
});
