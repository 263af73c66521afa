import { setTimeout as sleep } from 'node:timers/promises';
import { goFormEncode, goQueryEscape, request, type HttpResponse } from './http.js';

// Behaves as a booting Talos metal node does with talos.config + talos.config.oauth.* kernel args
// (siderolabs/talos platform/metal/oauth2 on golang.org/x/oauth2): the device and token URLs are the
// talos.config URL with only the path replaced; every token request first uses HTTP Basic with an
// empty password and, after any error, is repeated at once with the credentials in the body; the
// extra variables, scope, audience and client_secret ride along in every poll; slow_down adds 5 s.

export interface TalosNodeOptions {
  /** The talos.config URL after Talos filled ${uuid} etc., e.g. https://gate/config?uuid=…&mac=… */
  configUrl: string;
  clientId: string;
  clientSecret?: string | undefined;
  scopes?: string[];
  audience?: string | undefined;
  /** talos.config.oauth.extra_variable values, name -> value as Talos would send them. */
  variables: Record<string, string>;
  ca?: string | undefined;
  /** Where progress goes; the QR code too. */
  log?: (line: string) => void;
  onDeviceCode?: (r: DeviceCodeResponse) => void;
  /** How many times GET /config is tried before giving up (Talos keeps trying for hours). */
  configAttempts?: number;
  /** Base of the download backoff in ms (Talos: 1 s doubling). */
  backoffMs?: number;
  signal?: AbortSignal;
  /** Called after every HTTP exchange: which endpoint, how long, which status (benchmarks). */
  observe?: (endpoint: 'device_code' | 'token' | 'config', ms: number, status: number) => void;
  /** Reuse one connection, as a Go http.Client does (benchmarks). */
  agent?: import('node:https').Agent | import('node:http').Agent;
}

export interface DeviceCodeResponse {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete?: string;
  expires_in: number;
  interval?: number;
}

/** What the node saw, for tests and for people checking their setup. */
export interface NodeRunStats {
  tokenRequests: number;
  basicRequests: number;
  errorsSeen: Record<string, number>;
  slowDowns: number;
}

export class OAuthFlowError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`oauth2: ${code || `HTTP ${status}`}${body ? ` ${body.slice(0, 200)}` : ''}`);
  }
}

function withPath(url: string, path: string): string {
  const u = new URL(url);
  u.pathname = path;
  return u.toString();
}

function errorCode(res: HttpResponse): string {
  try {
    return (JSON.parse(res.body) as { error?: string }).error ?? '';
  } catch {
    return '';
  }
}

async function timed(
  endpoint: 'device_code' | 'token' | 'config',
  observe: TalosNodeOptions['observe'],
  send: () => Promise<HttpResponse>,
): Promise<HttpResponse> {
  const start = performance.now();
  const res = await send();
  observe?.(endpoint, performance.now() - start, res.status);
  return res;
}

export class TalosNode {
  readonly stats: NodeRunStats = { tokenRequests: 0, basicRequests: 0, errorsSeen: {}, slowDowns: 0 };
  private readonly log: (line: string) => void;

  constructor(private readonly opts: TalosNodeOptions) {
    this.log = opts.log ?? (() => {});
  }

  /** The form values every request repeats: client_id, scope, audience and the extra variables. */
  private baseValues(): Record<string, string> {
    const v: Record<string, string> = { client_id: this.opts.clientId, ...this.opts.variables };
    if (this.opts.scopes?.length) v.scope = this.opts.scopes.join(' ');
    if (this.opts.audience) v.audience = this.opts.audience;
    return v;
  }

  async deviceAuth(): Promise<DeviceCodeResponse> {
    const res = await timed('device_code', this.opts.observe, () => request(withPath(this.opts.configUrl, '/device/code'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: goFormEncode(this.baseValues()),
      ca: this.opts.ca,
      agent: this.opts.agent,
    }));
    if (res.status < 200 || res.status > 299) throw new OAuthFlowError(errorCode(res), res.status, res.body);
    return JSON.parse(res.body) as DeviceCodeResponse;
  }

  /** One retrieveToken of golang.org/x/oauth2 with auth-style probing: Basic, then body on any error. */
  private async retrieveToken(values: Record<string, string>): Promise<string> {
    const url = withPath(this.opts.configUrl, '/token');
    const body = goFormEncode(values);
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    this.stats.tokenRequests++;
    this.stats.basicRequests++;
    const basic = Buffer.from(`${goQueryEscape(this.opts.clientId)}:${goQueryEscape('')}`).toString('base64');
    let res = await timed('token', this.opts.observe, () =>
      request(url, { method: 'POST', headers: { ...headers, authorization: `Basic ${basic}` }, body, ca: this.opts.ca, agent: this.opts.agent }),
    );
    if (res.status < 200 || res.status > 299 || errorCode(res)) {
      this.stats.tokenRequests++;
      res = await timed('token', this.opts.observe, () => request(url, { method: 'POST', headers, body, ca: this.opts.ca, agent: this.opts.agent }));
    }
    const code = errorCode(res);
    if (res.status < 200 || res.status > 299 || code) {
      this.stats.errorsSeen[code] = (this.stats.errorsSeen[code] ?? 0) + 1;
      throw new OAuthFlowError(code, res.status, res.body);
    }
    return (JSON.parse(res.body) as { access_token: string }).access_token;
  }

  async pollToken(da: DeviceCodeResponse): Promise<string> {
    const deadline = Date.now() + da.expires_in * 1000;
    const values: Record<string, string> = {
      ...this.baseValues(),
      grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
      device_code: da.device_code,
    };
    if (this.opts.clientSecret) values.client_secret = this.opts.clientSecret;
    try {
      return await this.retrieveToken(values);
    } catch (e) {
      if (!(e instanceof OAuthFlowError)) throw e;
    }
    let interval = (da.interval || 5) * 1000;
    let next = Date.now() + interval;
    for (;;) {
      const wait = next - Date.now();
      if (Date.now() + Math.max(wait, 0) > deadline) throw new OAuthFlowError('context deadline exceeded', 0, '');
      await sleep(Math.max(wait, 0), undefined, { signal: this.opts.signal });
      next += interval;
      try {
        return await this.retrieveToken(values);
      } catch (e) {
        if (!(e instanceof OAuthFlowError)) throw e;
        if (e.code === 'slow_down') {
          this.stats.slowDowns++;
          interval += 5000;
          next = Date.now() + interval;
        } else if (e.code !== 'authorization_pending') {
          throw e;
        }
      }
    }
  }

  async downloadConfig(token: string): Promise<string> {
    const attempts = this.opts.configAttempts ?? 5;
    let backoff = this.opts.backoffMs ?? 1000;
    for (let i = 1; ; i++) {
      const res = await timed('config', this.opts.observe, () =>
        request(this.opts.configUrl, { headers: { authorization: `Bearer ${token}` }, ca: this.opts.ca, agent: this.opts.agent }),
      );
      if (res.status === 200) return res.body;
      this.log(`[talos] config download failed: HTTP ${res.status} ${res.body.slice(0, 200)}`);
      if (i >= attempts) throw new OAuthFlowError(errorCode(res), res.status, res.body);
      await sleep(backoff, undefined, { signal: this.opts.signal });
      backoff *= 2;
    }
  }

  /** The whole boot-time flow: device code, console output, polling, config download. */
  async run(): Promise<{ config: string; token: string }> {
    this.log(`[OAuth] starting the authentication device flow (client ID ${JSON.stringify(this.opts.clientId)})`);
    const da = await this.deviceAuth();
    this.opts.onDeviceCode?.(da);
    this.log(`[OAuth] please visit the URL ${da.verification_uri} and enter the code ${da.user_code}`);
    // not printed by Talos (it draws only the QR code of it): the link to paste into a browser elsewhere
    if (da.verification_uri_complete) this.log(`[OAuth] or open ${da.verification_uri_complete}`);
    // drawn only when someone reads the console (a benchmark's 2,000 nodes have no console)
    if (da.verification_uri_complete && this.opts.log) {
      this.log(`[OAuth] or scan the following QR code:\n${await qrCode(da.verification_uri_complete)}`);
    }
    this.log(`[OAuth] waiting for the device to be authorized (expires in ${da.expires_in} s)...`);
    const token = await this.pollToken(da);
    this.log('[OAuth] device authorized successfully');
    const config = await this.downloadConfig(token);
    this.log(`[talos] downloaded machine config (${config.length} bytes)`);
    return { config, token };
  }
}

async function qrCode(text: string): Promise<string> {
  const { default: qrcode } = await import('qrcode-terminal');
  return new Promise((resolve) => qrcode.generate(text, { small: true }, resolve));
}

/** The talos.config URL a node with these values would fetch, as Talos fills ${uuid} and ${mac}. */
export function talosConfigUrl(server: string, vars: { uuid?: string; mac?: string }): string {
  const u = new URL('/config', server);
  if (vars.uuid !== undefined) u.searchParams.set('uuid', vars.uuid);
  if (vars.mac !== undefined) u.searchParams.set('mac', vars.mac);
  return u.toString();
}
