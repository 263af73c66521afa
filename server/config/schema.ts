import { anyScalar, bool, duration, int, list, map, obj, oneOf, optionalStr, secretList, str, type Infer } from './schema-kit.js';

// Every key of the gate's config, with its default. config.example.yaml documents the same keys for
// people; keep both in step (test/config checks that the example parses and names every key).

const profile = obj({
  template: str(),
  patches: list(str()),
  // A Talos secrets bundle (`talosctl gen secrets`), in the templates folder, mode 0600: its CA keys
  // and tokens are merged into the template at render time (server/machine-config/secrets-bundle.ts).
  secrets_bundle: optionalStr(),
  // The profile an approval without one gets (at most one profile says so); without it, every
  // approval names its profile, and the web page preselects none (issue 13: Approve made a control plane).
  default: bool(false),
});

const nodeClient = obj({
  client_id: str({ pattern: /^[\x21-\x7e]{1,128}$/, hint: 'printable ASCII without spaces, at most 128 characters' }),
  client_secret: optionalStr(),
});

// Talos' built-in roles (siderolabs/talos pkg/machinery/role).
export const TALOS_ROLES = ['os:admin', 'os:operator', 'os:reader', 'os:etcd:backup', 'os:impersonator'] as const;

const roleList = list(str());

const claimPath = str({ pattern: /^[^.\s]+(\.[^.\s]+)*$/, hint: 'a claim name or dotted path such as realm_access.roles' });

const rbacRule = obj({ claim: claimPath, value: str(), roles: roleList });

export const configSchema = obj({
  listen: str({ default: '127.0.0.1:8443', pattern: /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, hint: 'host:port' }),
  // Connections waiting to be accepted (listen(2) backlog; the kernel caps it at net.core.somaxconn).
  // Node's 511 overflows when a rack powers on at once, and every dropped SYN costs that node 1-3 s.
  listen_backlog: int({ default: 4096, min: 1, max: 65535 }),
  public_url: optionalStr(),
  data_dir: str({ default: './talos-gate-data' }),
  database: obj({
    // unset: SQLite in data_dir; postgres://…: PostgreSQL (server/storage/postgres/pool.ts reads it)
    url: optionalStr(),
    pool_size: int({ default: 10, min: 1, max: 1000 }),
  }),
  tls: obj({
    mode: oneOf(['self-signed', 'files', 'off'] as const, 'self-signed'),
    cert: optionalStr(),
    key: optionalStr(),
    // More names (DNS or IP) for the self-signed certificate, besides public_url's host and listen.
    extra_sans: list(str()),
  }),
  admin_token: optionalStr(),
  // The system secrets that seal what the database keeps of cluster secrets (machine configs,
  // patches, IdP refresh tokens; server/secrets/). The first seals, every one opens: to rotate, put a
  // new one first, run `talos-gate db reencrypt`, then drop the old. Or secrets.system_file: a file
  // (mode 0600) with one secret a line, in the same order. Required, except for the demo.
  secrets: obj({
    system: secretList(),
    system_file: optionalStr(),
  }),
  node_clients: list(nodeClient, [{ client_id: 'talos-node', client_secret: undefined }]),
  // Clients of `talos-gate login --device` (public: no secret).
  operator_clients: list(obj({ client_id: str({ pattern: /^[\x21-\x7e]{1,128}$/, hint: 'printable ASCII without spaces' }) }), [
    { client_id: 'talos-gate-cli' },
  ]),
  operator: obj({
    access_token_ttl: duration({ default: '10m', min: '1m', max: '1h' }),
    login_ttl: duration({ default: '30d', min: '1h', max: '365d' }),
  }),
  device: obj({
    code_ttl: duration({ default: '15m', min: '1m', max: '24h' }),
    interval: duration({ default: '5s', min: '1s', max: '60s' }),
    token_ttl: duration({ default: '4h', min: '5m', max: '7d' }),
    expiry_grace: duration({ default: '30s', max: '5m' }),
    max_pending_per_ip: int({ default: 256, min: 1 }),
    // Nodes nobody decided on or registered are deleted this long after they last asked.
    pending_retention: duration({ default: '24h', min: '5m', max: '365d' }),
  }),
  templates_dir: optionalStr(),
  profiles: map(profile, {
    controlplane: { template: 'controlplane.yaml', patches: ['patches/common.yaml'], secrets_bundle: undefined, default: false },
    worker: { template: 'worker.yaml', patches: ['patches/common.yaml'], secrets_bundle: undefined, default: false },
  }),
  oidc: obj({
    issuer_url: optionalStr(),
    client_id: optionalStr(),
    client_secret: optionalStr(),
    // The CLI's own (public) client at the IdP, for `talos-gate login` in a browser.
    cli_client_id: optionalStr(),
    scopes: list(str(), ['openid', 'email', 'profile', 'groups']),
    extra_audiences: list(str()),
    clock_skew: duration({ default: '30s', max: '10m' }),
    required_claims: map(anyScalar()),
    jwks_refresh_interval: duration({ default: '30s', min: '1s', max: '1h' }),
  }),
  // Who may approve nodes on the web page (and use the admin API with their session).
  admins: list(obj({ claim: claimPath, value: str() })),
  web: obj({
    session_idle: duration({ default: '30m', min: '1m', max: '7d' }),
    session_max: duration({ default: '12h', min: '5m', max: '30d' }),
  }),
  roles: roleList,
  rbac: obj({
    rules: list(rbacRule),
  }),
  talos: obj({
    ca_cert: optionalStr(),
    ca_key: optionalStr(),
    issuing_ca_cert: optionalStr(),
    issuing_ca_key: optionalStr(),
    cert_ttl: duration({ default: '5m', min: '10s', max: '7d' }),
    max_cert_ttl: duration({ default: '1h', min: '30s', max: '30d' }),
    subject_claim: str({ default: 'email' }),
    endpoints: list(str()),
    // Who signs client certificates: the gate with a CA file (ca_cert/ca_key or issuing_ca_*), or
    // Talos itself through its API (GenerateClientConfiguration), so no CA key is ever on the gate.
    signer: oneOf(['ca', 'talos-api'] as const, 'ca'),
    api: obj({
      // Control-plane nodes' apid (port 50000 unless given); empty: the talosconfig context's endpoints.
      endpoints: list(str()),
      // The gate's own talosconfig (os:admin); default $TALOSCONFIG, as a Talos ServiceAccount mounts it.
      talosconfig: optionalStr(),
      // Its context; default the talosconfig's current context.
      context: optionalStr(),
      // Deadline of one call to one endpoint; endpoints are tried in turn.
      timeout: duration({ default: '3s', min: '100ms', max: '30s' }),
    }),
  }),
  audit_log: str({ default: 'stdout' }),
  retention: obj({
    certs: duration({ default: '90d', min: '1h' }),
    audit: duration({ default: '365d', min: '1h' }),
  }),
  metrics: obj({
    enabled: bool(true),
    // When set, GET /metrics needs Authorization: Bearer <token>.
    token: optionalStr(),
  }),
  // Requests per minute per client IP (per worker). /token is high because a whole rack behind one
  // NAT address polls it; nodes that poll too fast get slow_down there anyway.
  rate_limits: obj({
    device_code: int({ default: 600, min: 1 }),
    token: int({ default: 30_000, min: 1 }),
    exchange: int({ default: 300, min: 1 }),
    code_entry: int({ default: 30, min: 1 }),
    sign_in: int({ default: 60, min: 1 }),
  }),
  // Who may reach an endpoint group at all (IPs or CIDRs; empty: everyone).
  ip_allowlist: obj({
    admin: list(str()),
    nodes: list(str()),
  }),
  // Reverse proxies (IPs or CIDRs) whose X-Forwarded-For/-Proto are believed, walking from the right.
  trusted_proxies: list(str()),
  // Webhooks told of enrollment and exchange events (docs/notifications.md). load.ts checks url,
  // secret and events; the webhooks' events are delivered from an outbox in the database.
  notifications: obj({
    webhooks: list(
      obj({
        url: str(),
        // HMAC-SHA256 key of X-Talos-Gate-Signature; unset: deliveries are not signed
        secret: optionalStr(),
        format: oneOf(['json', 'slack'] as const, 'json'),
        events: list(str()),
      }),
    ),
    // auth_failure rows within one minute that make one auth_failures event
    auth_failure_burst: int({ default: 10, min: 1, max: 1_000_000 }),
    // Deadline of one delivery (connect, send, answer)
    timeout: duration({ default: '10s', min: '1s', max: '60s' }),
  }),
  // HTTP server processes sharing the port and the SQLite file (node:cluster); 1 = no cluster.
  workers: int({ default: 1, min: 1, max: 64 }),
  log_level: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info'),
});

export type RawConfig = Infer<typeof configSchema>;
