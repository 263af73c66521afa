import { duration, int, list, map, obj, oneOf, optionalStr, str, type Infer } from './schema-kit.js';

// Every key of the gate's config, with its default. config.example.yaml documents the same keys for
// people; keep both in step (test/config checks that the example parses and names every key).

const profile = obj({
  template: str(),
  patches: list(str()),
});

const nodeClient = obj({
  client_id: str({ pattern: /^[\x21-\x7e]{1,128}$/, hint: 'printable ASCII without spaces, at most 128 characters' }),
  client_secret: optionalStr(),
});

export const configSchema = obj({
  listen: str({ default: '127.0.0.1:8443', pattern: /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, hint: 'host:port' }),
  public_url: optionalStr(),
  data_dir: str({ default: './talos-gate-data' }),
  tls: obj({
    mode: oneOf(['self-signed', 'files', 'off'] as const, 'self-signed'),
    cert: optionalStr(),
    key: optionalStr(),
  }),
  admin_token: optionalStr(),
  node_clients: list(nodeClient, [{ client_id: 'talos-node', client_secret: undefined }]),
  device: obj({
    code_ttl: duration({ default: '15m', min: '1m', max: '24h' }),
    interval: duration({ default: '5s', min: '1s', max: '60s' }),
    token_ttl: duration({ default: '4h', min: '5m', max: '7d' }),
    expiry_grace: duration({ default: '30s', max: '5m' }),
    max_pending_per_ip: int({ default: 256, min: 1 }),
  }),
  templates_dir: optionalStr(),
  profiles: map(profile, {
    controlplane: { template: 'controlplane.yaml', patches: ['patches/common.yaml'] },
    worker: { template: 'worker.yaml', patches: ['patches/common.yaml'] },
  }),
  log_level: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info'),
});

export type RawConfig = Infer<typeof configSchema>;
