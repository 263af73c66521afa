import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { bundledTemplatesDir } from '../paths.js';
import { parseDatabaseUrl } from '../storage/postgres/pool.js';
import { ConfigError, FieldError, type Field } from './schema-kit.js';
import { configSchema, TALOS_ROLES, type RawConfig } from './schema.js';
import { weakSecretReason } from './secret-strength.js';
import { WEBHOOK_EVENT_NAMES, isWebhookEvent } from '../notifications/events.js';
import { checkSystemSecrets, readSystemSecretFile, SecretConfigProblem } from '../secrets/system-secret.js';

export { ConfigError } from './schema-kit.js';

export const ENV_PREFIX = 'TALOS_GATE_';

/** The config after defaults, env overrides and path resolution: what the rest of the gate reads. */
export type GateConfig = Omit<RawConfig, 'public_url' | 'templates_dir'> & {
  public_url: string;
  templates_dir: string;
  /** Where the config came from, for messages: the file path or "embedded defaults". */
  source: string;
};

/**
 * Loads the config file (or the embedded defaults when `file` is undefined), applies
 * TALOS_GATE_* environment overrides, checks every key and resolves relative paths against
 * the file's folder. Throws ConfigError naming the key and the file (or env var).
 */
export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): GateConfig {
  const source = file ? resolve(file) : 'embedded defaults';
  const raw = file ? readConfigFile(source) : {};
  const overridden = applyEnv(raw, env);
  let checked: RawConfig;
  try {
    checked = configSchema.check(overridden.value, '');
  } catch (e) {
    if (e instanceof FieldError) {
      const envName = overridden.fromEnv.get(topKeyOf(e.key, overridden.fromEnv));
      throw new ConfigError(envName ? `environment variable ${envName}` : source, e.key, e.problem);
    }
    throw e;
  }
  const base = file ? dirname(source) : process.cwd();
  return resolveConfig(checked, source, base, env);
}

function readConfigFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new ConfigError(path, '', 'config file not found');
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(path, 'utf8'), { uniqueKeys: true });
  } catch (e) {
    const where = e instanceof YAMLParseError && e.linePos ? ` at line ${e.linePos[0].line}` : '';
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    throw new ConfigError(path, '', `not valid YAML${where}: ${msg}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(path, '', 'must be a YAML map of keys');
  return doc as Record<string, unknown>;
}

interface Overridden {
  value: Record<string, unknown>;
  /** config key path -> env var that set it */
  fromEnv: Map<string, string>;
}

function envNameOf(path: string[]): string {
  return ENV_PREFIX + path.join('_').toUpperCase();
}

/** Every key path an env var may set: leaves, lists and maps (the last two take a YAML value). */
function settablePaths(field: Field<unknown>, path: string[], out: Map<string, { path: string[]; field: Field<unknown> }>): void {
  if (field.kind === 'object' && field.fields) {
    for (const [k, f] of Object.entries(field.fields)) settablePaths(f, [...path, k], out);
    return;
  }
  out.set(envNameOf(path), { path, field });
}

function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Overridden {
  const known = new Map<string, { path: string[]; field: Field<unknown> }>();
  settablePaths(configSchema as Field<unknown>, [], known);
  const value = structuredClone(raw);
  const fromEnv = new Map<string, string>();
  for (const [name, text] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || text === undefined) continue;
    const target = known.get(name);
    if (!target) {
      const near = closest(name, [...known.keys()]).map((k) => `${k} (${known.get(k)?.path.join('.')})`);
      throw new ConfigError(
        'environment',
        name,
        near.length === 1
          ? `unknown setting; did you mean ${near[0]}?`
          : near.length > 1
            ? `unknown setting; did you mean one of ${near.join(', ')}?`
            : 'unknown setting: a setting is TALOS_GATE_ + a key path of config.example.yaml in upper case, levels joined by _',
      );
    }
    let parsed: unknown = text;
    if (!target.field.envVerbatim) {
      try {
        parsed = parseYaml(text);
      } catch {
        throw new ConfigError(`environment variable ${name}`, target.path.join('.'), 'not a valid YAML value');
      }
    }
    setPath(value, target.path, parsed, name);
    fromEnv.set(target.path.join('.'), name);
  }
  return { value, fromEnv };
}

/** Levenshtein distance, for suggesting the setting a misspelt variable meant. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] as number;
}

/**
 * What a misspelt variable probably meant: the nearest known name when near enough to be a typo (at
 * most a third of the key differs), else the settings of the section it names or begins.
 */
export function closest(name: string, known: string[]): string[] {
  const key = name.slice(ENV_PREFIX.length);
  let best: { name: string; d: number } | undefined;
  for (const k of known) {
    const d = editDistance(key, k.slice(ENV_PREFIX.length));
    if (!best || d < best.d) best = { name: k, d };
  }
  if (best && best.d <= Math.max(2, Math.floor(key.length / 3))) return [best.name];
  // a key path cut short: TALOS_GATE_OIDC_ISSUER for TALOS_GATE_OIDC_ISSUER_URL, TALOS_GATE_TLS for its keys
  return known.filter((k) => k.startsWith(`${name}_`)).slice(0, 8);
}

function setPath(root: Record<string, unknown>, path: string[], v: unknown, envName: string): void {
  let node = root;
  for (const k of path.slice(0, -1)) {
    const next = node[k];
    if (next === undefined || next === null) node[k] = {};
    else if (typeof next !== 'object' || Array.isArray(next)) {
      throw new ConfigError(`environment variable ${envName}`, path.join('.'), `${k} is not a map in the config file`);
    }
    node = node[k] as Record<string, unknown>;
  }
  node[path[path.length - 1] as string] = v;
}

/** The env-set key that covers a failing key path, e.g. "node_clients" for "node_clients[0].client_id". */
function topKeyOf(key: string, fromEnv: Map<string, string>): string {
  for (const k of fromEnv.keys()) if (key === k || key.startsWith(`${k}.`) || key.startsWith(`${k}[`)) return k;
  return key;
}

function resolveConfig(c: RawConfig, source: string, base: string, env: NodeJS.ProcessEnv): GateConfig {
  const fail = (key: string, problem: string): never => {
    throw new ConfigError(source, key, problem);
  };
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));

  const scheme = c.tls.mode === 'off' ? 'http' : 'https';
  const listenHost = c.listen.slice(0, c.listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  if (c.public_url === undefined && (listenHost === '0.0.0.0' || listenHost === '::' || listenHost === '')) {
    // the URL shown to nodes and browsers would be https://0.0.0.0:…, which reaches nothing
    fail('public_url', `is required when listen is ${c.listen} (every address): set the URL nodes and browsers reach the gate at, e.g. https://gate.example.com:${c.listen.slice(c.listen.lastIndexOf(':') + 1)}`);
  }
  const publicUrl = (c.public_url ?? `${scheme}://${c.listen}`).replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(publicUrl);
  } catch {
    return fail('public_url', `${JSON.stringify(c.public_url)} is not a URL`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') fail('public_url', 'must start with https:// or http://');
  if (parsed.search || parsed.hash) fail('public_url', 'must not have a query string or fragment');

  if (c.database.url !== undefined) {
    try {
      parseDatabaseUrl(c.database.url);
    } catch (e) {
      // the message never repeats the URL: it may hold a password
      const from = env[`${ENV_PREFIX}DATABASE_URL`] !== undefined ? `environment variable ${ENV_PREFIX}DATABASE_URL` : source;
      throw new ConfigError(from, 'database.url', (e as Error).message);
    }
  }

  const port = Number(c.listen.slice(c.listen.lastIndexOf(':') + 1));
  if (port > 65535) fail('listen', `port ${port} is out of range`);

  if (c.tls.mode === 'files') {
    if (!c.tls.cert) fail('tls.cert', 'is required when tls.mode is files');
    if (!c.tls.key) fail('tls.key', 'is required when tls.mode is files');
  }
  c.tls.extra_sans.forEach((n, i) => {
    if (!isIP(n) && !/^(\*\.)?[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/.test(n)) {
      fail(`tls.extra_sans[${i}]`, `${JSON.stringify(n)} is not a DNS name or IP address`);
    }
  });
  const tls = {
    extra_sans: c.tls.extra_sans,
    mode: c.tls.mode,
    cert: c.tls.cert === undefined ? undefined : abs(c.tls.cert),
    key: c.tls.key === undefined ? undefined : abs(c.tls.key),
  };
  for (const k of ['cert', 'key'] as const) {
    const p = tls[k];
    if (c.tls.mode === 'files' && p && !existsSync(p)) fail(`tls.${k}`, `file ${p} not found`);
  }

  // security review #5: the example's token worked; a placeholder or a guessable token never starts
  const tokenProblem = c.admin_token === undefined ? undefined : weakSecretReason(c.admin_token);
  if (tokenProblem) fail('admin_token', `${tokenProblem}, or leave admin_token unset and the gate makes one in data_dir/admin-token`);

  const secrets = resolveSecrets(c.secrets, abs, (key, problem) => {
    const name = key.startsWith('secrets.system_file') ? 'SECRETS_SYSTEM_FILE' : 'SECRETS_SYSTEM';
    const from = env[`${ENV_PREFIX}${name}`] !== undefined ? `environment variable ${ENV_PREFIX}${name}` : source;
    throw new ConfigError(from, key, problem);
  });

  const ids = new Set<string>();
  c.node_clients.forEach((nc, i) => {
    if (ids.has(nc.client_id)) fail(`node_clients[${i}].client_id`, `${nc.client_id} is listed twice`);
    ids.add(nc.client_id);
  });

  if (Object.keys(c.profiles).length === 0) fail('profiles', 'at least one profile is needed');
  const defaults = Object.entries(c.profiles).filter(([, p]) => p.default).map(([name]) => name);
  if (defaults.length > 1) fail(`profiles.${defaults[1] as string}.default`, `only one profile may be the default (${defaults.join(' and ')} both say default: true)`);
  for (const name of Object.keys(c.profiles)) {
    if (!/^[a-z0-9][a-z0-9_.-]{0,62}$/.test(name)) {
      fail(`profiles.${name}`, 'profile names are lower-case letters, digits, ".", "_" and "-"');
    }
  }

  const checkRoles = (roles: string[], key: string) =>
    roles.forEach((r, i) => {
      if (!(TALOS_ROLES as readonly string[]).includes(r)) fail(`${key}[${i}]`, `${JSON.stringify(r)} is not a Talos role (${TALOS_ROLES.join(', ')})`);
    });
  checkRoles(c.roles, 'roles');
  c.rbac.rules.forEach((rule, i) => checkRoles(rule.roles, `rbac.rules[${i}].roles`));

  if (c.oidc.issuer_url !== undefined) {
    let issuer: URL | undefined;
    try {
      issuer = new URL(c.oidc.issuer_url);
    } catch {
      fail('oidc.issuer_url', `${JSON.stringify(c.oidc.issuer_url)} is not a URL`);
    }
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(issuer?.hostname ?? '');
    if (issuer?.protocol !== 'https:' && !(issuer?.protocol === 'http:' && loopback)) {
      fail('oidc.issuer_url', 'must be https:// (plain http only for an IdP on loopback)');
    }
    if (!c.oidc.client_id) fail('oidc.client_id', 'is required when oidc.issuer_url is set');
  }

  // talos.signer talos-api: Talos signs with its own CA, so no CA file belongs on the gate; a key
  // left in the config would be the very secret this mode keeps off the gate host
  if (c.talos.signer === 'talos-api') {
    for (const k of ['ca_cert', 'ca_key', 'issuing_ca_cert', 'issuing_ca_key'] as const) {
      if (c.talos[k] !== undefined) {
        fail(`talos.${k}`, 'is not used with talos.signer: talos-api (Talos signs with its own CA, which never leaves the cluster); remove it, or set talos.signer: ca to sign with CA files');
      }
    }
  } else if (c.talos.api.endpoints.length > 0 || c.talos.api.talosconfig !== undefined || c.talos.api.context !== undefined) {
    fail('talos.api', 'is only used with talos.signer: talos-api; set talos.signer: talos-api, or remove talos.api');
  }
  const talosconfig = c.talos.signer === 'talos-api' ? (c.talos.api.talosconfig ?? (env.TALOSCONFIG || undefined)) : undefined;
  if (c.talos.signer === 'talos-api') {
    if (talosconfig === undefined) {
      fail('talos.api.talosconfig', 'is required with talos.signer: talos-api (or set $TALOSCONFIG; a Talos ServiceAccount mounts it at /var/run/secrets/talos.dev/config)');
    }
    c.talos.api.endpoints.forEach((e, i) => {
      if (!/^(\[[0-9a-fA-F:.]+\](:\d{1,5})?|[0-9a-fA-F:]*:[0-9a-fA-F:.]+|[A-Za-z0-9.-]+(:\d{1,5})?)$/.test(e.trim())) {
        fail(`talos.api.endpoints[${i}]`, `${JSON.stringify(e)} is not host, host:port or an IP address`);
      }
    });
  }
  const talos = {
    ...c.talos,
    api: { ...c.talos.api, talosconfig: talosconfig === undefined ? undefined : abs(talosconfig) },
    ca_cert: c.talos.ca_cert === undefined ? undefined : abs(c.talos.ca_cert),
    ca_key: c.talos.ca_key === undefined ? undefined : abs(c.talos.ca_key),
    issuing_ca_cert: c.talos.issuing_ca_cert === undefined ? undefined : abs(c.talos.issuing_ca_cert),
    issuing_ca_key: c.talos.issuing_ca_key === undefined ? undefined : abs(c.talos.issuing_ca_key),
  };
  if ((talos.issuing_ca_cert === undefined) !== (talos.issuing_ca_key === undefined)) {
    fail(talos.issuing_ca_cert === undefined ? 'talos.issuing_ca_cert' : 'talos.issuing_ca_key', 'issuing_ca_cert and issuing_ca_key go together');
  }
  if (talos.ca_cert !== undefined && talos.ca_key === undefined && talos.issuing_ca_cert === undefined) {
    fail('talos.ca_key', 'is required unless a dedicated issuing CA (issuing_ca_cert/issuing_ca_key) signs the certificates');
  }
  for (const k of ['ca_cert', 'ca_key', 'issuing_ca_cert', 'issuing_ca_key'] as const) {
    const p = talos[k];
    if (p !== undefined && !existsSync(p)) fail(`talos.${k}`, `file ${p} not found`);
  }
  if (talos.api.talosconfig !== undefined && !existsSync(talos.api.talosconfig)) {
    fail('talos.api.talosconfig', `file ${talos.api.talosconfig} not found`);
  }
  const checkCidrs = (list: string[], key: string) =>
    list.forEach((p, i) => {
      const [addr, bits, extra] = p.split('/');
      const family = isIP(addr ?? '');
      const maxBits = family === 4 ? 32 : 128;
      const bitsOk = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= maxBits);
      if (!family || !bitsOk || extra !== undefined) fail(`${key}[${i}]`, `${JSON.stringify(p)} is not an IP address or CIDR`);
    });
  checkCidrs(c.trusted_proxies, 'trusted_proxies');
  checkCidrs(c.ip_allowlist.admin, 'ip_allowlist.admin');
  checkCidrs(c.ip_allowlist.nodes, 'ip_allowlist.nodes');
  checkWebhooks(c.notifications.webhooks, fail);
  if (c.talos.max_cert_ttl < c.talos.cert_ttl) fail('talos.max_cert_ttl', 'must not be shorter than talos.cert_ttl');

  return {
    ...c,
    talos,
    secrets,
    audit_log: c.audit_log === 'stdout' || c.audit_log === 'off' ? c.audit_log : abs(c.audit_log),
    tls,
    public_url: publicUrl,
    data_dir: abs(c.data_dir),
    templates_dir: c.templates_dir === undefined ? bundledTemplatesDir : abs(c.templates_dir),
    source,
  };
}

/**
 * notifications.webhooks: each url https:// (plain http only to a receiver on loopback, as
 * oidc.issuer_url: an event tells who enrolls what, and a Slack URL is itself a credential), a
 * secret as strong as the admin token, known events, and no webhook listed twice.
 */
function checkWebhooks(webhooks: RawConfig['notifications']['webhooks'], fail: (key: string, problem: string) => never): void {
  const seen = new Set<string>();
  webhooks.forEach((w, i) => {
    const key = `notifications.webhooks[${i}]`;
    let url: URL | undefined;
    try {
      url = new URL(w.url);
    } catch {
      // the URL is not repeated: a Slack webhook URL is a secret
      fail(`${key}.url`, 'is not a URL');
    }
    if (!url) return;
    const loopback = url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(url.hostname);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) fail(`${key}.url`, 'must be https:// (plain http only for a receiver on loopback)');
    if (url.hash) fail(`${key}.url`, 'must not have a fragment');
    if (w.secret !== undefined) {
      const problem = weakSecretReason(w.secret);
      if (problem) fail(`${key}.secret`, problem);
    }
    if (w.events.length === 0) fail(`${key}.events`, `list at least one event (${WEBHOOK_EVENT_NAMES.join(', ')})`);
    const events = new Set<string>();
    w.events.forEach((e, j) => {
      if (!isWebhookEvent(e)) fail(`${key}.events[${j}]`, `${JSON.stringify(e)} is not an event (${WEBHOOK_EVENT_NAMES.join(', ')})`);
      if (events.has(e)) fail(`${key}.events[${j}]`, `${e} is listed twice`);
      events.add(e);
    });
    const id = `${w.format} ${url.href}`;
    if (seen.has(id)) fail(`${key}.url`, `the same URL with format ${w.format} is listed twice: list the events of both in one entry`);
    seen.add(id);
  });
}

/**
 * secrets.system or secrets.system_file (not both), each secret checked; the file read now, so a
 * missing or too open file stops the start. An empty list is left for prepareGate to judge: the demo
 * makes its own secret, a real gate refuses to start (server/secrets/system-secret.ts).
 */
function resolveSecrets(
  raw: RawConfig['secrets'],
  abs: (p: string) => string,
  fail: (key: string, problem: string) => never,
): { system: string[]; system_file: string | undefined } {
  try {
    if (raw.system.length > 0 && raw.system_file !== undefined) {
      fail('secrets.system_file', 'give the system secrets either in secrets.system or in secrets.system_file, not both');
    }
    if (raw.system_file !== undefined) {
      const file = abs(raw.system_file);
      return { system: readSystemSecretFile(file), system_file: file };
    }
    checkSystemSecrets(raw.system, (i) => `secrets.system[${i}]`);
    return { system: raw.system, system_file: undefined };
  } catch (e) {
    if (e instanceof SecretConfigProblem) fail(e.key, e.problem);
    throw e;
  }
}
