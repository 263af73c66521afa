import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError, loadConfig } from '../../server/config/load.js';

// notifications.webhooks in the config: every mistake stops the start with the key and the file named.

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-webhook-config-'));
let n = 0;
function configWith(webhooks: unknown[]): string {
  const file = join(dir, `c${n++}.yaml`);
  writeFileSync(file, stringify({ notifications: { webhooks } }));
  return file;
}

function problem(webhooks: unknown[]): string {
  const file = configWith(webhooks);
  try {
    loadConfig(file, {});
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    assert.equal(e.source, file);
    return `${e.key}: ${e.problem}`;
  }
  return assert.fail('expected a ConfigError');
}

const good = { url: 'https://hooks.example.com/x', secret: '9f4c1e7a2b8d3f60a5c9e1b7d4f2a86c3e5b9d1f7a2c4e6b8d0f1a3c5e7b9d2f', events: ['node_waiting'] };

test('a good webhook loads, format json by default; http to loopback is allowed', () => {
  const c = loadConfig(configWith([good, { url: 'http://127.0.0.1:9000/hook', format: 'slack', events: ['node_approved', 'auth_failures'] }]), {});
  assert.deepEqual(c.notifications.webhooks[0], { ...good, format: 'json' });
  assert.equal(c.notifications.webhooks[1]?.format, 'slack');
  assert.equal(c.notifications.auth_failure_burst, 10);
  assert.equal(c.notifications.timeout, 10_000);
});

test('mistakes name the key', () => {
  assert.equal(problem([{ ...good, events: ['node_waiting', 'node_exploded'] }]), 'notifications.webhooks[0].events[1]: "node_exploded" is not an event (node_waiting, node_approved, node_denied, node_revoked, config_downloaded, cert_issued, auth_failures)');
  assert.match(problem([{ ...good, events: [] }]), /^notifications\.webhooks\[0\]\.events: list at least one event/);
  assert.equal(problem([{ ...good, url: 'http://hooks.example.com/x' }]), 'notifications.webhooks[0].url: must be https:// (plain http only for a receiver on loopback)');
  assert.equal(problem([{ ...good, url: 'hooks.example.com/secret-path' }]), 'notifications.webhooks[0].url: is not a URL');
  assert.match(problem([{ ...good, secret: 'change-me-please-0123456789' }]), /^notifications\.webhooks\[0\]\.secret: is a placeholder/);
  assert.match(problem([{ ...good, secret: 'short' }]), /^notifications\.webhooks\[0\]\.secret: is too short/);
  assert.match(problem([good, { ...good, events: ['cert_issued'] }]), /^notifications\.webhooks\[1\]\.url: the same URL with format json is listed twice/);
  assert.match(problem([{ ...good, format: 'teams' }]), /^notifications\.webhooks\[0\]\.format: must be one of json, slack/);
  assert.match(problem([{ ...good, events: ['node_waiting', 'node_waiting'] }]), /^notifications\.webhooks\[0\]\.events\[1\]: node_waiting is listed twice/);
});
