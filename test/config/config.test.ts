import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { ConfigError, loadConfig } from '../../server/config/load.js';
import { configSchema } from '../../server/config/schema.js';
import { packageRoot } from '../../server/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-config-'));
function write(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  assert.fail('expected a ConfigError');
}

test('embedded defaults load without a file', () => {
  const c = loadConfig(undefined, {});
  assert.equal(c.listen, '127.0.0.1:8443');
  assert.equal(c.public_url, 'https://127.0.0.1:8443');
  assert.equal(c.tls.mode, 'self-signed');
  assert.equal(c.device.code_ttl, 15 * 60_000);
  assert.equal(c.device.token_ttl, 4 * 3_600_000);
  assert.deepEqual(c.node_clients, [{ client_id: 'talos-node', client_secret: undefined }]);
  assert.deepEqual(Object.keys(c.profiles).sort(), ['controlplane', 'worker']);
  assert.equal(c.source, 'embedded defaults');
});

test('config.example.yaml parses and documents every key of the schema', () => {
  const example = join(packageRoot, 'config.example.yaml');
  const text = readFileSync(example, 'utf8');
  const c = loadConfig(example, {});
  assert.equal(c.public_url, 'https://gate.example.com:8443');
  const doc = parse(text) as Record<string, unknown>;
  const walk = (fields: Record<string, { fields?: Record<string, unknown> }>, node: Record<string, unknown>, path: string) => {
    for (const [k, f] of Object.entries(fields)) {
      assert.ok(k in node, `config.example.yaml lacks ${path}${k}`);
      if (f.fields) walk(f.fields as Record<string, { fields?: Record<string, unknown> }>, node[k] as Record<string, unknown>, `${path}${k}.`);
    }
  };
  walk(configSchema.fields as Record<string, { fields?: Record<string, unknown> }>, doc, '');
});

test('relative paths resolve against the config file folder', () => {
  const f = write('paths.yaml', 'data_dir: ./data\ntemplates_dir: ../tpl\n');
  const c = loadConfig(f, {});
  assert.equal(c.data_dir, join(dir, 'data'));
  assert.equal(c.templates_dir, resolve(dir, '../tpl'));
});

test('env vars override keys, lists take YAML', () => {
  const f = write('env.yaml', 'admin_token: 3f9c2a7e51d04b8e96a1c7f2e08d5b4a\ndevice:\n  interval: 5s\n');
  const c = loadConfig(f, {
    TALOS_GATE_ADMIN_TOKEN: '0b7e4c19a2f85d63e1c9a07b4f2d8e56',
    TALOS_GATE_DEVICE_INTERVAL: '2s',
    TALOS_GATE_DEVICE_CODE_TTL: '10m',
    TALOS_GATE_NODE_CLIENTS: '[{client_id: a}, {client_id: b, client_secret: s3cret}]',
    TALOS_GATE_TLS_MODE: 'off',
  });
  assert.equal(c.admin_token, '0b7e4c19a2f85d63e1c9a07b4f2d8e56');
  assert.equal(c.device.interval, 2000);
  assert.equal(c.device.code_ttl, 600_000);
  assert.deepEqual(c.node_clients.map((x) => x.client_id), ['a', 'b']);
  assert.equal(c.public_url, 'http://127.0.0.1:8443');
});

test('mistakes name the key and the file', () => {
  const cases: [string, string, RegExp][] = [
    ['unknown.yaml', 'lisen: 1.2.3.4:1\n', /lisen: unknown key/],
    ['nested-unknown.yaml', 'device:\n  intervall: 5s\n', /device\.intervall: unknown key/],
    ['type.yaml', 'device:\n  interval: fast\n', /device\.interval: must be a duration/],
    ['enum.yaml', 'tls:\n  mode: maybe\n', /tls\.mode: must be one of self-signed, files, off/],
    ['list.yaml', 'node_clients: talos-node\n', /node_clients: must be a list/],
    ['item.yaml', 'node_clients:\n  - client_id: 42\n', /node_clients\[0\]\.client_id: must be a string/],
    ['files.yaml', 'tls:\n  mode: files\n', /tls\.cert: is required when tls\.mode is files/],
    ['token.yaml', 'admin_token: short\n', /admin_token: is too short \(at least 24 characters\): make one with `openssl rand -hex 32`/],
    // security review #5: the example's token worked
    ['placeholder.yaml', 'admin_token: change-me-to-a-long-random-string\n', /admin_token: is a placeholder, not a secret: make one with `openssl rand -hex 32`/],
    ['weak.yaml', 'admin_token: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n', /admin_token: is too weak \(about 0 bits, at least 96 needed\)/],
    ['url.yaml', 'public_url: "ftp://x"\n', /public_url: must start with https:\/\/ or http:\/\//],
    ['listen.yaml', 'listen: 8443\n', /listen: must be a string/],
    ['dup.yaml', 'node_clients:\n  - client_id: a\n  - client_id: a\n', /node_clients\[1\]\.client_id: a is listed twice/],
    ['yaml.yaml', 'listen: [\n', /not valid YAML/],
    ['dupkey.yaml', 'listen: a:1\nlisten: b:2\n', /not valid YAML/],
    ['profile.yaml', 'profiles:\n  Bad Name:\n    template: x.yaml\n', /profiles\.Bad Name: profile names/],
  ];
  for (const [name, text, re] of cases) {
    const f = write(name, text);
    const e = configErrorOf(() => loadConfig(f, {}));
    assert.match(e.message, re, name);
    assert.ok(e.message.startsWith(f), `${name}: message names the file: ${e.message}`);
  }
  const missing = configErrorOf(() => loadConfig(join(dir, 'nope.yaml'), {}));
  assert.match(missing.message, /nope\.yaml: .*config file not found/);
  const badEnv = configErrorOf(() => loadConfig(undefined, { TALOS_GATE_DEVICE_INTERVAL: 'soon' }));
  assert.match(badEnv.message, /^environment variable TALOS_GATE_DEVICE_INTERVAL: device\.interval: must be a duration/);
  const unknownEnv = configErrorOf(() => loadConfig(undefined, { TALOS_GATE_ADMINTOKEN: 'x' }));
  assert.match(unknownEnv.message, /TALOS_GATE_ADMINTOKEN: .*unknown setting/);
});

test('an unknown TALOS_GATE_* variable names the setting it probably meant, not every setting', () => {
  const cases: [string, RegExp][] = [
    ['TALOS_GATE_ADMINTOKEN', /^environment: TALOS_GATE_ADMINTOKEN: unknown setting; did you mean TALOS_GATE_ADMIN_TOKEN \(admin_token\)\?$/],
    ['TALOS_GATE_DEVICE_INTERVALL', /did you mean TALOS_GATE_DEVICE_INTERVAL \(device\.interval\)\?$/],
    ['TALOS_GATE_PUBLICURL', /did you mean TALOS_GATE_PUBLIC_URL \(public_url\)\?$/],
    ['TALOS_GATE_OIDC_ISSUER', /did you mean TALOS_GATE_OIDC_ISSUER_URL \(oidc\.issuer_url\)\?$/],
    ['TALOS_GATE_TLS', /did you mean one of TALOS_GATE_TLS_MODE \(tls\.mode\), TALOS_GATE_TLS_CERT \(tls\.cert\), TALOS_GATE_TLS_KEY \(tls\.key\), TALOS_GATE_TLS_EXTRA_SANS \(tls\.extra_sans\)\?$/],
    ['TALOS_GATE_FROBNICATE', /unknown setting: a setting is TALOS_GATE_ \+ a key path of config\.example\.yaml/],
  ];
  for (const [name, re] of cases) {
    const e = configErrorOf(() => loadConfig(undefined, { [name]: 'x' }));
    assert.match(e.message, re, name);
    assert.ok(e.message.length < 250, `${name}: short, not a list of sixty: ${e.message}`);
  }
});

test('listen on every address needs public_url: nodes would be sent to https://0.0.0.0', () => {
  for (const listen of ['0.0.0.0:8443', '[::]:8443']) {
    const e = configErrorOf(() => loadConfig(undefined, { TALOS_GATE_LISTEN: listen }));
    assert.equal(e.message, `embedded defaults: public_url: is required when listen is ${listen} (every address): set the URL nodes and browsers reach the gate at, e.g. https://gate.example.com:8443`);
  }
  const f = write('any.yaml', 'listen: 0.0.0.0:9443\n');
  assert.match(configErrorOf(() => loadConfig(f, {})).message, new RegExp(`^${f}: public_url: is required`));
  const c = loadConfig(f, { TALOS_GATE_PUBLIC_URL: 'https://gate.example.com:9443' });
  assert.equal(c.public_url, 'https://gate.example.com:9443');
  assert.equal(loadConfig(undefined, { TALOS_GATE_LISTEN: '10.0.0.5:8443' }).public_url, 'https://10.0.0.5:8443', 'one address: the default still works');
});
