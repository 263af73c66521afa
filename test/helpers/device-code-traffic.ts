import assert from 'node:assert/strict';
import { request } from '../../cli/http.js';
import type { TestGate } from './gate.js';

/** New machines asking a running gate for device codes, one after the other, until stopped. */
export interface DeviceCodeTraffic {
  /** How many /device/code requests the gate has answered with 200 so far. */
  readonly asked: number;
  /** Resolves once `n` requests have been answered; rejects if the traffic failed first. */
  reached(n: number): Promise<void>;
  /** Stops after the request in flight; rejects with the first failure (a request not answered 200). */
  stop(): Promise<void>;
}

/**
 * Keeps the gate writing while a test does something else to its database (a backup, a migration):
 * each /device/code of a new machine writes a node, its device request and an audit event. The
 * machines' uuids are `${uuidFirstGroup}-0000-4000-8000-<n, 12 digits>`, so a test can tell them
 * from its other nodes. The gate must allow that many pending requests from one address
 * (device.max_pending_per_ip, rate_limits.device_code).
 */
export function startDeviceCodeTraffic(g: Pick<TestGate, 'url' | 'ca'>, uuidFirstGroup: string): DeviceCodeTraffic {
  let stopped = false;
  let asked = 0;
  const loop = (async () => {
    while (!stopped) {
      const res = await request(`${g.url}/device/code`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ client_id: 'talos-node', uuid: `${uuidFirstGroup}-0000-4000-8000-${String(asked).padStart(12, '0')}` }).toString(),
        ca: g.ca,
      });
      assert.equal(res.status, 200, res.body);
      asked += 1;
    }
  })();
  // the failure is reported by reached() and stop(); until one of them is awaited it is not unhandled
  let failed = false;
  loop.catch(() => (failed = true));
  return {
    get asked() {
      return asked;
    },
    async reached(n) {
      while (asked < n && !failed) await new Promise((r) => setTimeout(r, 20));
      if (failed) await loop;
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}
