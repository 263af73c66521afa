import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { GateConfig } from './config/load.js';
import type { DevIdp } from './dev-idp/provider.js';
import { createIssuingCa } from './pki/issuing-ca.js';

// The demo that `talos-gate serve` runs on embedded defaults (no config file): a development IdP
// (oidc-provider, loopback only) with a demo admin, operator and viewer, and a throwaway Talos CA.
// A config file never turns this on.

export const DEMO_USERS = [
  { sub: 'demo-admin', label: 'Ada Admin (admin)', claims: { email: 'admin@demo.test', email_verified: true, name: 'Ada Admin', groups: ['talos-gate-admins', 'talos-admins'] } },
  { sub: 'demo-operator', label: 'Otto Operator (operator)', claims: { email: 'operator@demo.test', email_verified: true, name: 'Otto Operator', groups: ['talos-operators'] } },
  { sub: 'demo-viewer', label: 'Vera Viewer (no access)', claims: { email: 'viewer@demo.test', email_verified: true, name: 'Vera Viewer', groups: [] } },
];

export interface Demo {
  config: GateConfig;
  idp: DevIdp;
}

export async function startDemo(config: GateConfig): Promise<Demo> {
  const caDir = join(config.data_dir, 'demo-talos-ca');
  if (!existsSync(join(caDir, 'issuing-ca.crt'))) createIssuingCa(caDir, { commonName: 'talos-gate DEMO CA (throwaway)', days: 365 });
  // loaded only for the demo: oidc-provider is not part of a production gate
  const { startDevIdp } = await import('./dev-idp/provider.js');
  const idp = await startDevIdp({
    users: DEMO_USERS,
    clients: [
      { client_id: 'talos-gate', redirect_uris: [`${config.public_url}/auth/callback`] },
      { client_id: 'talos-gate-cli', redirect_uris: ['http://127.0.0.1/callback'], application_type: 'native' },
    ],
  });
  return {
    idp,
    config: {
      ...config,
      oidc: {
        ...config.oidc,
        issuer_url: idp.issuer,
        client_id: 'talos-gate',
        client_secret: undefined,
        cli_client_id: 'talos-gate-cli',
        scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
      },
      admins: [{ claim: 'groups', value: 'talos-gate-admins' }],
      rbac: {
        rules: [
          { claim: 'groups', value: 'talos-admins', roles: ['os:admin'] },
          { claim: 'groups', value: 'talos-operators', roles: ['os:operator'] },
        ],
      },
      talos: {
        ...config.talos,
        ca_cert: join(caDir, 'issuing-ca.crt'),
        ca_key: join(caDir, 'issuing-ca.key'),
        endpoints: config.talos.endpoints.length ? config.talos.endpoints : ['127.0.0.1'],
      },
    },
  };
}
