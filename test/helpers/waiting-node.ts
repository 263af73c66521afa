import { hashSecret } from '../../device/secrets.js';
import type { NewDeviceRequest } from '../../server/storage/storage.js';

export interface WaitingNodeRequest {
  userCode: string;
  /** Where the machine asked from; its rate-limit bucket is the same address. */
  sourceIp: string;
  createdAt: number;
  expiresAt: number;
  /** The talos.config variables it sent; its uuid alone unless given. */
  variables?: Record<string, string>;
}

/**
 * The pending device request of a machine waiting for a decision, as /device/code leaves it, for
 * tests that seed thousands of them straight into the storage (a real boot each would take minutes).
 * Its device code hash is the node id's, so a test can tell the requests apart without the code.
 */
export function waitingNodeRequest(nodeId: string, r: WaitingNodeRequest): NewDeviceRequest {
  return {
    deviceCodeHash: hashSecret(nodeId),
    userCode: r.userCode,
    clientId: 'talos-node',
    kind: 'node',
    nodeId,
    variables: r.variables ?? { uuid: nodeId },
    scope: null,
    audience: null,
    sourceIp: r.sourceIp,
    sourceBucket: r.sourceIp,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
    intervalMs: 5000,
    status: 'pending',
  };
}
