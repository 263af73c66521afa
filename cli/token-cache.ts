import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { withFileLock, writeFileAtomic } from './files.js';

// What a login leaves for renewals and `status`: per server and context, in
// $XDG_CONFIG_HOME/talos-gate/tokens.json (0600, folder 0700).

export interface CachedLogin {
  kind: 'browser' | 'device';
  server: string;
  context: string;
  talosconfig: string;
  /** The IdP (browser logins) or the gate (device logins) that the refresh token belongs to. */
  issuer: string;
  clientId: string;
  refreshToken: string | null;
  /** Gate access token (device logins), for admin commands. */
  accessToken?: string | null;
  accessTokenExpiresAt?: number | null;
  serverCaFile?: string | undefined;
  insecureHttp?: boolean;
  nodes?: string[] | undefined;
  subject?: string;
  roles?: string[];
  certExpiresAt?: number;
  tokenExpiresAt?: number | null;
}

export function cacheFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'talos-gate', 'tokens.json');
}

const keyOf = (server: string, context: string) => `${server}#${context}`;

function readAll(file: string): Record<string, CachedLogin> {
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, CachedLogin>;
  } catch {
    return {};
  }
}

export function loadLogin(server: string, context: string, file = cacheFile()): CachedLogin | undefined {
  return readAll(file)[keyOf(server, context)];
}

/** The login for a context whatever its server (for commands given only --context). */
export function findLogin(context: string, file = cacheFile()): CachedLogin | undefined {
  return Object.values(readAll(file)).find((l) => l.context === context);
}

export async function saveLogin(login: CachedLogin, file = cacheFile()): Promise<void> {
  await withFileLock(file, () => {
    const all = readAll(file);
    all[keyOf(login.server, login.context)] = login;
    writeFileAtomic(file, `${JSON.stringify(all, null, 2)}\n`);
  });
}

export async function forgetLogin(server: string, context: string, file = cacheFile()): Promise<boolean> {
  if (!existsSync(file)) return false;
  return withFileLock(file, () => {
    const all = readAll(file);
    const had = keyOf(server, context) in all;
    delete all[keyOf(server, context)];
    writeFileAtomic(file, `${JSON.stringify(all, null, 2)}\n`);
    return had;
  });
}
