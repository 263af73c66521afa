import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { withFileLock, writeFileAtomic } from './files.js';

// The talosconfig as talosctl reads it: `context` (current) and `contexts.NAME` with endpoints,
// nodes and base64 PEM ca/crt/key. The gate's context is merged in; every other context and every
// field the gate does not know stays as it was.

export interface ContextCredentials {
  endpoints: string[];
  nodes?: string[] | undefined;
  caPem: string;
  certPem: string;
  keyPem: string;
}

export function talosconfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.TALOSCONFIG ?? join(homedir(), '.talos', 'config');
}

type Doc = Record<string, unknown> & { contexts?: Record<string, Record<string, unknown>> };

function readDoc(path: string): Doc {
  if (!existsSync(path)) return {};
  const text = readFileSync(path, 'utf8');
  const doc = parse(text) as unknown;
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`${path} is not a talosconfig (expected a YAML map)`);
  return doc as Doc;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Writes the context (atomically, under a lock); makes it current unless switchContext is false. */
export async function writeContext(path: string, name: string, creds: ContextCredentials, switchContext: boolean): Promise<void> {
  await withFileLock(path, () => {
    const doc = readDoc(path);
    const contexts = { ...(doc.contexts ?? {}) };
    const old = contexts[name] ?? {};
    contexts[name] = {
      ...old,
      endpoints: creds.endpoints.length ? creds.endpoints : (old.endpoints ?? []),
      ...(creds.nodes ? { nodes: creds.nodes } : {}),
      ca: b64(creds.caPem),
      crt: b64(creds.certPem),
      key: b64(creds.keyPem),
    };
    const next: Doc = { ...doc, contexts };
    if (switchContext || !doc.context) next.context = name;
    writeFileAtomic(path, stringify(next, { lineWidth: 0 }));
  });
}

/** Removes the context; when it was current, the current context becomes another one (or none). */
export async function removeContext(path: string, name: string): Promise<boolean> {
  if (!existsSync(path)) return false;
  return withFileLock(path, () => {
    const doc = readDoc(path);
    if (!doc.contexts || !(name in doc.contexts)) return false;
    const contexts = { ...doc.contexts };
    delete contexts[name];
    const next: Doc = { ...doc, contexts };
    if (doc.context === name) {
      const other = Object.keys(contexts)[0];
      if (other) next.context = other;
      else delete next.context;
    }
    writeFileAtomic(path, stringify(next, { lineWidth: 0 }));
    return true;
  });
}

export function readContext(path: string, name: string): { crt?: string; ca?: string; endpoints?: string[]; current: boolean } | undefined {
  const doc = readDoc(path);
  const ctx = doc.contexts?.[name];
  if (!ctx) return undefined;
  const unb64 = (v: unknown) => (typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : undefined);
  return {
    ...(unb64(ctx.crt) ? { crt: unb64(ctx.crt) } : {}),
    ...(unb64(ctx.ca) ? { ca: unb64(ctx.ca) } : {}),
    ...(Array.isArray(ctx.endpoints) ? { endpoints: ctx.endpoints as string[] } : {}),
    current: doc.context === name,
  };
}
