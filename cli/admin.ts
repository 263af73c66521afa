import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { connectionFrom, UsageError } from './connection.js';
import { adminCall, GateApiError, type GateConnection } from './gate-api.js';
import { request } from './http.js';
import { freshCredential } from './renewal.js';
import { findLogin, saveLogin } from './token-cache.js';

// Admin commands over the admin API: with --admin-token / TALOS_GATE_ADMIN_TOKEN, or as the
// logged-in admin (the cached login of --context). Tables for people, --json for scripts.

interface AdminOptions {
  server?: string;
  serverCa?: string;
  insecureHttp?: boolean;
  adminToken?: string;
  context: string;
  json?: boolean;
}

type Row = Record<string, unknown>;

async function credentials(o: AdminOptions): Promise<{ conn: GateConnection; token: string }> {
  const login = findLogin(o.context);
  const server = o.server ?? login?.server;
  const conn = connectionFrom({
    server,
    serverCa: o.serverCa ?? (login && login.server === server ? login.serverCaFile : undefined),
    insecureHttp: o.insecureHttp ?? login?.insecureHttp ?? false,
  });
  const token = o.adminToken ?? process.env.TALOS_GATE_ADMIN_TOKEN;
  if (token) return { conn, token };
  if (!login || login.server !== conn.server) {
    throw new UsageError('no admin token: pass --admin-token (or TALOS_GATE_ADMIN_TOKEN), or run talos-gate login first');
  }
  if (login.kind === 'device' && login.accessToken && (login.accessTokenExpiresAt ?? 0) > Date.now() + 30_000) {
    return { conn, token: login.accessToken };
  }
  const fresh = await freshCredential(conn, login);
  await saveLogin(fresh.login);
  return { conn, token: fresh.credential };
}

/** An admin API call whose answer is text (a node's YAML config), not JSON. */
async function adminText(conn: GateConnection, token: string, path: string): Promise<string> {
  const res = await request(`${conn.server}/api/v1${path}`, { headers: { authorization: `Bearer ${token}` }, ca: conn.ca });
  if (res.status >= 200 && res.status <= 299) return res.body;
  let body: { error?: string; error_description?: string } = {};
  try {
    body = JSON.parse(res.body) as typeof body;
  } catch {
    // not JSON: the status says it
  }
  throw new GateApiError(res.status, body.error ?? '', body.error_description ?? res.body.slice(0, 200));
}

function table(rows: Row[], columns: [string, string][]): string {
  const cells = rows.map((r) => columns.map(([key]) => {
    const v = r[key];
    return v === null || v === undefined ? '-' : Array.isArray(v) ? v.join(',') : String(v);
  }));
  const widths = columns.map(([, title], i) => Math.max(title.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i] as number)).join('  ').trimEnd();
  return `${[line(columns.map(([, t]) => t)), ...(cells.length ? cells.map(line) : ['(none)'])].join('\n')}\n`;
}

function out(o: AdminOptions, data: unknown, human: () => string): void {
  process.stdout.write(o.json ? `${JSON.stringify(data, null, 2)}\n` : human());
}

function withCommon(cmd: Command): Command {
  return cmd
    .option('-s, --server <url>', 'the gate (default: the server of the cached login)')
    .option('--server-ca <file>', "PEM of the CA of the gate's certificate")
    .option('--insecure-http', 'allow a plain http:// gate')
    .option('--admin-token <token>', 'admin token (default: $TALOS_GATE_ADMIN_TOKEN, else the logged-in admin)')
    .option('--context <name>', 'the login to act as when no admin token is given', 'talos-gate')
    .option('--json', 'machine-readable output');
}

const NODE_COLUMNS: [string, string][] = [
  ['id', 'NODE'],
  ['state', 'STATUS'],
  ['profile', 'PROFILE'],
  ['hostname', 'HOSTNAME'],
  ['source_ip', 'SOURCE IP'],
  ['config_downloads', 'DOWNLOADS'],
  ['decided_by', 'DECIDED BY'],
];

function nodeRows(nodes: Row[]): Row[] {
  return nodes.map((n) => ({ ...n, id: n.id, pending_codes: (n.pending as Row[]).map((p) => p.user_code) }));
}

/** Pages of GET /api/v1/nodes, following next_cursor until the last page or `limit` nodes. */
async function listAllNodes(conn: GateConnection, token: string, status: string | undefined, limit: number, search?: string): Promise<Row[]> {
  const list: Row[] = [];
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams({
      ...(status ? { status } : {}),
      ...(search ? { q: search } : {}),
      limit: String(Math.min(1000, limit - list.length)),
      ...(cursor ? { cursor } : {}),
    });
    const page: { nodes: Row[]; next_cursor: string | null } = await adminCall(conn, token, 'GET', `/nodes?${q.toString()}`);
    list.push(...page.nodes);
    cursor = page.next_cursor;
  } while (cursor !== null && list.length < limit);
  return list;
}

function readPatches(files: string[] | undefined): string[] | undefined {
  return files?.map((f) => {
    try {
      return readFileSync(f, 'utf8');
    } catch (e) {
      throw new UsageError(`--patch ${f}: ${(e as Error).message}`);
    }
  });
}

/** What --match may look at, as a node's JSON has it (serial and hostname also from what the node sent). */
const MATCH_KEYS = ['id', 'uuid', 'mac', 'serial', 'hostname', 'source_ip'] as const;

interface BulkOptions {
  code?: string;
  allPending?: boolean;
  match?: string[];
}

type Target = { kind: 'code' | 'id'; value: string };

/** A user code as people type it: XXXX-XXXX or 8 letters of the code alphabet (device/user-code.ts); anything else is a machine id. */
function targetOf(arg: string): Target {
  return /^[BCDFGHJKLMNPQRSTVWXZ]{4}-?[BCDFGHJKLMNPQRSTVWXZ]{4}$/i.test(arg.trim()) ? { kind: 'code', value: arg.trim() } : { kind: 'id', value: arg };
}

/** The targets the arguments name: one (the single-node endpoints), several, or every pending one. */
function pickTargets(args: string[], o: BulkOptions): { single?: Target; targets: Target[]; allPending: boolean; count: number } {
  const targets = [...args.map(targetOf), ...(o.code ? [{ kind: 'code' as const, value: o.code }] : [])];
  if (o.allPending) {
    if (targets.length > 0) throw new UsageError('--all-pending takes no codes or ids');
    return { targets: [], allPending: true, count: Infinity };
  }
  if (o.match) throw new UsageError('--match needs --all-pending');
  if (targets.length === 0) throw new UsageError('give user codes or machine ids, or --all-pending');
  return { ...(targets.length === 1 ? { single: targets[0] as Target } : {}), targets, allPending: false, count: targets.length };
}

/** A shell-style glob (* any run, ? one character), whole string, ignoring case. */
function globRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

function matchers(specs: string[] | undefined): ((n: Row) => boolean)[] {
  return (specs ?? []).map((spec) => {
    const eq = spec.indexOf('=');
    const key = spec.slice(0, eq);
    if (eq < 1 || !(MATCH_KEYS as readonly string[]).includes(key)) throw new UsageError(`--match ${spec}: expected KEY=GLOB with KEY one of ${MATCH_KEYS.join(', ')}`);
    const re = globRegExp(spec.slice(eq + 1));
    return (n: Row) => {
      const vars = (n.variables ?? {}) as Record<string, string>;
      const v = key === 'serial' ? vars.serial : key === 'hostname' ? (n.hostname ?? vars.hostname) : n[key];
      return typeof v === 'string' && re.test(v);
    };
  });
}

/** The targets as the bulk endpoints take them; --all-pending lists the waiting machines (every page) first. */
async function resolveTargets(conn: GateConnection, token: string, picked: ReturnType<typeof pickTargets>, o: BulkOptions): Promise<Target[]> {
  if (!picked.allPending) return picked.targets;
  const tests = matchers(o.match);
  const pending = await listAllNodes(conn, token, 'pending', Infinity);
  const chosen = pending.filter((n) => tests.every((t) => t(n)));
  if (chosen.length === 0) throw new UsageError(pending.length === 0 ? 'no machine is waiting' : `none of the ${pending.length} waiting machines matches`);
  return chosen.map((n) => {
    // by code when it has exactly one: a node with several waiting requests is decided by its code
    const codes = (n.pending as Row[]).map((p) => String(p.user_code));
    return codes.length === 1 ? { kind: 'code' as const, value: codes[0] as string } : { kind: 'id' as const, value: String(n.id) };
  });
}

type BulkItem = { user_code?: string; node_id?: string; status: string; error?: string; error_description?: string; node?: Row };

/** POST /nodes/approve or /nodes/deny, by codes and by ids, 1,000 at a time. */
async function bulk(conn: GateConnection, token: string, verb: 'approve' | 'deny', targets: Target[], body: Row): Promise<BulkItem[]> {
  const results: BulkItem[] = [];
  for (const kind of ['code', 'id'] as const) {
    const values = targets.filter((t) => t.kind === kind).map((t) => t.value);
    for (let i = 0; i < values.length; i += 1000) {
      const list = values.slice(i, i + 1000);
      const r = await adminCall<{ results: BulkItem[] }>(conn, token, 'POST', `/nodes/${verb}`, { ...body, [kind === 'code' ? 'user_codes' : 'node_ids']: list });
      results.push(...r.results);
    }
  }
  return results;
}

/** One line per item; exit code 1 when any item was refused. */
function reportBulk(o: AdminOptions, results: BulkItem[]): void {
  out(o, results, () =>
    table(
      results.map((r) => ({
        target: r.user_code ?? r.node_id,
        status: r.status,
        node: r.node?.id,
        detail: r.status === 'error' ? `${r.error ?? ''}: ${r.error_description ?? ''}` : `${String(r.node?.profile ?? '')} ${String(r.node?.hostname ?? '')}`.trim(),
      })),
      [
        ['target', 'TARGET'],
        ['status', 'RESULT'],
        ['node', 'NODE'],
        ['detail', 'DETAIL'],
      ],
    ),
  );
  if (results.some((r) => r.status === 'error')) process.exitCode = 1;
}

export function adminCommands(program: Command): void {
  const nodes = program.command('nodes').description('machines enrolled through the gate (admin)');
  withCommon(
    nodes
      .command('list')
      .description('list machines, newest first')
      .option('--status <status>', 'registered, pending, approved, denied or revoked')
      .option('-q, --search <prefix>', 'only machines whose uuid, mac, serial, hostname or source IP starts with this')
      .option('--limit <n>', 'at most this many (default: all)'),
  ).action(async (o: AdminOptions & { status?: string; search?: string; limit?: string }) => {
    const limit = o.limit === undefined ? Infinity : Number(o.limit);
    if (!(limit >= 1 && (Number.isSafeInteger(limit) || limit === Infinity))) throw new UsageError('--limit must be a whole number of at least 1');
    const { conn, token } = await credentials(o);
    const list = await listAllNodes(conn, token, o.status, limit, o.search);
    out(o, list, () => table(nodeRows(list), [...NODE_COLUMNS, ['pending_codes', 'PENDING CODE']]));
  });
  withCommon(
    nodes
      .command('show')
      .description('one machine, with what it sent; --config: its rendered machine config')
      .argument('<id>', 'uuid or mac')
      .option('--config', 'print the machine config rendered at approval (YAML, as the node downloads it)'),
  ).action(async (id: string, o: AdminOptions & { config?: boolean }) => {
    const { conn, token } = await credentials(o);
    if (o.config) {
      const config = await adminText(conn, token, `/nodes/${encodeURIComponent(id)}/config`);
      out(o, { id, config }, () => config);
      return;
    }
    const n = await adminCall<Row>(conn, token, 'GET', `/nodes/${encodeURIComponent(id)}`);
    out(o, n, () => `${Object.entries(n).map(([k, v]) => `${k.padEnd(18)} ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`).join('\n')}\n`);
  });
  withCommon(
    nodes
      .command('approve')
      .description('approve machines by the codes on their consoles or by id; --all-pending: every waiting one (with --match, those that match)')
      .argument('[targets...]', 'user codes (XXXX-XXXX) or machine ids (uuid or mac)')
      .option('--code <user_code>', 'the code on the console')
      .option('--all-pending', 'every machine waiting for a decision')
      .option('--match <key=glob...>', `with --all-pending: only machines whose ${MATCH_KEYS.join(', ')} matches (* and ?; all --match must)`)
      .option('--profile <name>', "profile to render the config from (default: the node's registered one, else the config's default profile)")
      .option('--hostname <name>', 'hostname for the machine (one machine)')
      .option('--hostname-template <template>', 'hostname per machine, e.g. worker-{{mac_suffix}} (mac_suffix, uuid_prefix, serial, index)')
      .option('--patch <file...>', 'extra patch files (strategic merge or RFC 6902, YAML)'),
  ).action(async (targets: string[], o: AdminOptions & BulkOptions & { profile?: string; hostname?: string; hostnameTemplate?: string; patch?: string[] }) => {
    const picked = pickTargets(targets, o);
    if (o.hostname && picked.count !== 1) throw new UsageError('--hostname names one machine; use --hostname-template for several');
    const { conn, token } = await credentials(o);
    const body = {
      ...(o.profile ? { profile: o.profile } : {}),
      ...(o.patch ? { patches: readPatches(o.patch) } : {}),
    };
    if (picked.single && !o.hostnameTemplate) {
      const one = { ...body, ...(o.hostname ? { hostname: o.hostname } : {}) };
      const n = picked.single.kind === 'code'
        ? await adminCall<Row>(conn, token, 'POST', '/device/approve', { user_code: picked.single.value, ...one })
        : await adminCall<Row>(conn, token, 'POST', `/nodes/${encodeURIComponent(picked.single.value)}/approve`, one);
      out(o, n, () => `approved ${String(n.id)} as ${String(n.profile)} (${String(n.hostname)})\n`);
      return;
    }
    const results = await bulk(conn, token, 'approve', await resolveTargets(conn, token, picked, o), { ...body, ...(o.hostnameTemplate ? { hostname_template: o.hostnameTemplate } : {}) });
    reportBulk(o, results);
  });
  withCommon(
    nodes
      .command('deny')
      .description('deny machines by code or by id; --all-pending: every waiting one (with --match, those that match)')
      .argument('[targets...]', 'user codes (XXXX-XXXX) or machine ids (uuid or mac)')
      .option('--code <user_code>', 'the code on the console')
      .option('--all-pending', 'every machine waiting for a decision')
      .option('--match <key=glob...>', `with --all-pending: only machines whose ${MATCH_KEYS.join(', ')} matches`),
  ).action(async (targets: string[], o: AdminOptions & BulkOptions) => {
    const picked = pickTargets(targets, o);
    const { conn, token } = await credentials(o);
    if (picked.single) {
      const n = picked.single.kind === 'code'
        ? await adminCall<Row>(conn, token, 'POST', '/device/deny', { user_code: picked.single.value })
        : await adminCall<Row>(conn, token, 'POST', `/nodes/${encodeURIComponent(picked.single.value)}/deny`);
      out(o, n, () => `denied ${String(n.id)}\n`);
      return;
    }
    reportBulk(o, await bulk(conn, token, 'deny', await resolveTargets(conn, token, picked, o), {}));
  });
  withCommon(
    nodes
      .command('import')
      .description('register machines from an inventory file: CSV with a header (uuid,mac,serial,profile,hostname,auto_approve) or JSON lines (.jsonl, .ndjson); all rows or none')
      .argument('<file>', 'the inventory')
      .option('--dry-run', 'check the file and say what would change, without changing anything'),
  ).action(async (file: string, o: AdminOptions & { dryRun?: boolean }) => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new UsageError(`${file}: ${(e as Error).message}`);
    }
    const type = /\.(jsonl|ndjson)$/i.test(file) ? 'application/x-ndjson' : 'text/csv';
    const { conn, token } = await credentials(o);
    const res = await request(`${conn.server}/api/v1/nodes/import${o.dryRun ? '?dry_run=true' : ''}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': type },
      body: text,
      ca: conn.ca,
    });
    let body: Row = {};
    try {
      body = JSON.parse(res.body) as Row;
    } catch {
      // not JSON: the status says it
    }
    if (res.status !== 200) {
      const problems = Array.isArray(body.errors) ? (body.errors as { line: number; error: string }[]) : [];
      if (problems.length > 0 && !o.json) for (const p of problems) process.stderr.write(`${file}:${p.line}: ${p.error}\n`);
      if (o.json && problems.length > 0) process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
      throw new GateApiError(res.status, String(body.error ?? ''), String(body.error_description ?? res.body.slice(0, 200)));
    }
    out(o, body, () => `${o.dryRun ? 'would import' : 'imported'} ${String(body.rows)} rows: ${String(body.created)} new, ${String(body.updated)} updated, ${String(body.unchanged)} unchanged${o.dryRun ? ' (dry run: nothing changed)' : ''}\n`);
  });
  withCommon(nodes.command('revoke').description("revoke an approved machine's access to its config").argument('<id>', 'uuid or mac')).action(
    async (id: string, o: AdminOptions) => {
      const { conn, token } = await credentials(o);
      const n = await adminCall<Row>(conn, token, 'POST', `/nodes/${encodeURIComponent(id)}/revoke`);
      out(o, n, () => `revoked ${String(n.id)}\n`);
    },
  );
  withCommon(nodes.command('forget').description('forget a machine (undoes a denial; its next boot asks afresh)').argument('<id>', 'uuid or mac')).action(
    async (id: string, o: AdminOptions) => {
      const { conn, token } = await credentials(o);
      await adminCall<unknown>(conn, token, 'DELETE', `/nodes/${encodeURIComponent(id)}`);
      out(o, { id, forgotten: true }, () => `forgot ${id}\n`);
    },
  );
  withCommon(
    nodes
      .command('add')
      .description('pre-register a machine from inventory')
      .option('--uuid <uuid>', 'SMBIOS uuid')
      .option('--mac <mac>', 'MAC address')
      .requiredOption('--profile <name>', 'profile')
      .option('--hostname <name>', 'hostname')
      .option('--patch <file...>', 'patch files')
      .option('--auto-approve', 'approve it without a click when it boots'),
  ).action(async (o: AdminOptions & { uuid?: string; mac?: string; profile: string; hostname?: string; patch?: string[]; autoApprove?: boolean }) => {
    if (!o.uuid && !o.mac) throw new UsageError('give --uuid or --mac');
    const { conn, token } = await credentials(o);
    const n = await adminCall<Row>(conn, token, 'POST', '/nodes', {
      ...(o.uuid ? { uuid: o.uuid } : {}),
      ...(o.mac ? { mac: o.mac } : {}),
      profile: o.profile,
      ...(o.hostname ? { hostname: o.hostname } : {}),
      ...(o.patch ? { patches: readPatches(o.patch) } : {}),
      auto_approve: o.autoApprove ?? false,
    });
    out(o, n, () => `registered ${String(n.id)} (${n.auto_approve ? 'auto-approve' : 'approval needed'})\n`);
  });

  const certs = program.command('certs').description('talosctl certificates the gate issued (admin)');
  withCommon(certs.command('list').description('issued certificates, newest first').option('--active', 'only unexpired').option('--subject <sub>', 'one subject')).action(
    async (o: AdminOptions & { active?: boolean; subject?: string }) => {
      const { conn, token } = await credentials(o);
      const q = new URLSearchParams({ ...(o.active ? { active: 'true' } : {}), ...(o.subject ? { subject: o.subject } : {}) }).toString();
      const r = await adminCall<{ certs: Row[]; total: number }>(conn, token, 'GET', `/certs${q ? `?${q}` : ''}`);
      out(o, r, () =>
        table(r.certs, [
          ['common_name', 'USER'],
          ['roles', 'ROLES'],
          ['issued_at', 'ISSUED'],
          ['expires_at', 'EXPIRES'],
          ['client_ip', 'CLIENT IP'],
          ['serial', 'SERIAL'],
        ]),
      );
    },
  );

  withCommon(program.command('stats').description('counts: certificates, sign-ins, machines (admin)')).action(async (o: AdminOptions) => {
    const { conn, token } = await credentials(o);
    const s = await adminCall<Row>(conn, token, 'GET', '/stats');
    out(o, s, () => `${Object.entries(s).map(([k, v]) => `${k.padEnd(20)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('\n')}\n`);
  });

  withCommon(program.command('audit').description('recent audit events (admin)').option('--limit <n>', 'how many', '50')).action(async (o: AdminOptions & { limit: string }) => {
    const { conn, token } = await credentials(o);
    const r = await adminCall<{ events: Row[] }>(conn, token, 'GET', `/audit?limit=${encodeURIComponent(o.limit)}`);
    out(o, r.events, () =>
      table(r.events, [
        ['at', 'WHEN'],
        ['type', 'EVENT'],
        ['actor', 'WHO'],
        ['subject', 'SUBJECT'],
        ['ip', 'IP'],
      ]),
    );
  });

  withCommon(program.command('block').description('refuse a subject (IdP sub) new certificates at once (admin)').argument('<subject>', 'the IdP sub').option('--reason <text>', 'why, for the audit trail')).action(
    async (subject: string, o: AdminOptions & { reason?: string }) => {
      const { conn, token } = await credentials(o);
      const r = await adminCall<Row>(conn, token, 'POST', `/subjects/${encodeURIComponent(subject)}/block`, o.reason ? { reason: o.reason } : {});
      out(o, r, () => `blocked ${subject}${r.changed ? '' : ' (already blocked)'}\n`);
    },
  );
  withCommon(program.command('unblock').description('lift a block (admin)').argument('<subject>', 'the IdP sub')).action(async (subject: string, o: AdminOptions) => {
    const { conn, token } = await credentials(o);
    const r = await adminCall<Row>(conn, token, 'POST', `/subjects/${encodeURIComponent(subject)}/unblock`);
    out(o, r, () => `unblocked ${subject}${r.changed ? '' : ' (was not blocked)'}\n`);
  });
}
