import { OAuthError } from './errors.js';
import { checkText, singleValues } from './form.js';

/** The variables Talos can send (talos.config.oauth.extra_variable), as in its metal URL expansion. */
export const NODE_VARIABLES = ['uuid', 'mac', 'serial', 'hostname', 'code'] as const;

export interface DeviceAuthorizationRequest {
  clientId: string;
  scope: string | null;
  audience: string | null;
  /** Exactly what came for each known variable, including empty strings and literal "${hostname}". */
  variables: Record<string, string>;
  /** The node's identity: its uuid, else its mac, lower-case. */
  nodeId: string;
  uuid: string | null;
  mac: string | null;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5,19}$/;
const NODE_ID = /^[0-9a-z._:-]{1,64}$/;

/** A value Talos could not fill: empty, or the placeholder left as it was. */
export function isUnfilled(v: string | undefined): boolean {
  return v === undefined || v === '' || /^\$\{[a-z]+\}$/.test(v);
}

/** Parses POST /device/code (RFC 8628 §3.1) as Talos sends it. Query strings are not read. */
export function parseDeviceAuthorizationRequest(body: unknown): DeviceAuthorizationRequest {
  const form = singleValues(body);
  const clientId = form.get('client_id');
  if (!clientId) throw new OAuthError('invalid_request', 'client_id is required');
  checkText('client_id', clientId, 128);

  const variables: Record<string, string> = {};
  for (const name of NODE_VARIABLES) {
    const v = form.get(name);
    if (v !== undefined) variables[name] = checkText(name, v, 256);
  }

  const uuid = isUnfilled(variables.uuid) ? null : (variables.uuid as string).toLowerCase();
  const macRaw = isUnfilled(variables.mac) ? null : (variables.mac as string).toLowerCase();
  if (uuid !== null && !NODE_ID.test(uuid)) {
    throw new OAuthError('invalid_request', 'uuid must be 1-64 characters of letters, digits, ".", "_", ":" and "-"');
  }
  const mac = macRaw !== null && MAC.test(macRaw) ? macRaw : null;
  if (uuid === null && macRaw !== null && mac === null) {
    throw new OAuthError('invalid_request', 'mac must be in colon form, e.g. 52:54:00:ab:cd:ef');
  }
  const nodeId = uuid ?? mac;
  if (nodeId === null) {
    throw new OAuthError(
      'invalid_request',
      'the node sent neither uuid nor mac: boot with talos.config.oauth.extra_variable=uuid and =mac',
    );
  }

  const scope = form.get('scope');
  const audience = form.get('audience');
  return {
    clientId,
    scope: scope ? checkText('scope', scope, 512) : null,
    audience: audience ? checkText('audience', audience, 512) : null,
    variables,
    nodeId,
    uuid,
    mac,
  };
}

/** The client_id of a device authorization request, to tell node requests from operator logins. */
export function clientIdOf(body: unknown): string {
  const clientId = singleValues(body).get('client_id');
  if (!clientId) throw new OAuthError('invalid_request', 'client_id is required');
  return checkText('client_id', clientId, 128);
}

/** POST /device/code from the talos-gate CLI: no node variables. */
export function parseOperatorAuthorizationRequest(body: unknown): { clientId: string; scope: string | null } {
  const form = singleValues(body);
  const scope = form.get('scope');
  return { clientId: clientIdOf(body), scope: scope ? checkText('scope', scope, 512) : null };
}
