import { request } from '../../cli/http.js';

// One call to the gate's admin API (docs/api.md) with the admin token, as the tests' gates and HA
// clusters make it: a JSON body when there is one, the answer parsed when it is JSON.

export interface AdminAnswer {
  status: number;
  json: any; // any: tests read arbitrary response shapes
}

export async function adminRequest(base: string, token: string, method: string, path: string, body?: unknown, ca?: string): Promise<AdminAnswer> {
  const res = await request(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    ...(ca ? { ca } : {}),
  });
  const isJson = String(res.headers['content-type'] ?? '').includes('json');
  return { status: res.status, json: isJson ? JSON.parse(res.body) : res.body };
}
