import { request, type HttpResponse } from '../../cli/http.js';

// One token request of a Talos node for its device code (RFC 8628 section 3.4) as
// golang.org/x/oauth2 sends it: with `basic` the client credentials in the Authorization header
// (its first try), else client_id in the body (the "twin" it sends at once after an error; see
// docs/ha.md).

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const BASIC = `Basic ${Buffer.from('talos-node:').toString('base64')}`;

export function pollNodeToken(url: string, deviceCode: string, opts: { basic: boolean; ca?: string }): Promise<HttpResponse> {
  return request(`${url}/token`, {
    method: 'POST',
    headers: opts.basic ? { ...FORM, authorization: BASIC } : FORM,
    body: `grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=${encodeURIComponent(deviceCode)}${opts.basic ? '' : '&client_id=talos-node'}`,
    ...(opts.ca ? { ca: opts.ca } : {}),
  });
}
