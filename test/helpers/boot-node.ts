import { TalosNode, talosConfigUrl, type DeviceCodeResponse } from '../../cli/talos-node.js';
import type { TestGate } from './gate.js';

/** A machine that has started the device flow against a test gate and is waiting for a decision. */
export interface BootingNode {
  node: TalosNode;
  vars: Record<string, string>;
  /** The device authorization response, once the gate has answered /device/code. */
  da: Promise<DeviceCodeResponse>;
  /** The node's whole run: its token and config once approved, an OAuthFlowError otherwise. */
  result: Promise<{ config: string; token: string }>;
}

export interface BootNodeOptions {
  clientId?: string;
  clientSecret?: string;
  /** How often the node tries to download its config once approved; 1 unless a test means retries. */
  configAttempts?: number;
}

/**
 * Boots a real device-flow client (cli/talos-node.ts, which sends what Talos sends) against the gate
 * with these talos.config variables. One config attempt unless asked: a test that approves the node
 * expects the first download to work, so a retry would only hide a failure.
 */
export function bootNode(g: Pick<TestGate, 'url' | 'ca'>, vars: Record<string, string>, opts: BootNodeOptions = {}): BootingNode {
  let gotCode!: (d: DeviceCodeResponse) => void;
  const da = new Promise<DeviceCodeResponse>((resolve) => (gotCode = resolve));
  const node = new TalosNode({
    configUrl: talosConfigUrl(g.url, vars),
    clientId: opts.clientId ?? 'talos-node',
    clientSecret: opts.clientSecret,
    variables: vars,
    ca: g.ca,
    onDeviceCode: gotCode,
    configAttempts: opts.configAttempts ?? 1,
  });
  const result = node.run();
  // A test that never awaits the result (a node left waiting, or one denied on purpose) must not
  // end in an unhandled rejection; a test that awaits it still sees the rejection.
  result.catch(() => {});
  return { node, vars, da, result };
}
