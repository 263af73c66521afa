// Hostname templates of bulk approvals (issue 13): `worker-{{mac_suffix}}` gives each approved node
// its own name. A small fixed set of variables, checked when the template is parsed, so a typo is one
// 400 for the whole request, not an error per node; each result is checked as a DNS name (RFC 1123
// §2.1 labels, lower-case) when it is rendered.
import { isUnfilled } from '../../device/authorization-request.js';
import { ApiError } from '../api-error.js';
import type { NodeRecord } from '../storage/storage.js';

/** The variables a template may use, with what each gives. */
export const HOSTNAME_VARIABLES = {
  /** The last 6 hex digits of the mac, no colons: 52:54:00:ab:cd:ef → abcdef. */
  mac_suffix: (n: TemplateNode) => (n.mac ? n.mac.replace(/:/g, '').slice(-6) : undefined),
  /** The first 8 letters and digits of the uuid. */
  uuid_prefix: (n: TemplateNode) => (n.uuid ? n.uuid.replace(/[^0-9a-z]/g, '').slice(0, 8) || undefined : undefined),
  /** The serial the node sent, lower-case, anything outside a-z0-9 as "-". */
  serial: (n: TemplateNode) => {
    const s = n.variables.serial;
    return isUnfilled(s) ? undefined : (s as string).toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || undefined;
  },
  /** The node's place in the request's list, from 1. */
  index: (_n: TemplateNode, index: number) => String(index),
} as const;

export type HostnameVariable = keyof typeof HOSTNAME_VARIABLES;
type TemplateNode = Pick<NodeRecord, 'uuid' | 'mac' | 'variables'>;
type Part = { literal: string } | { variable: HostnameVariable };

export interface HostnameTemplate {
  readonly source: string;
  readonly variables: HostnameVariable[];
  /** The hostname for one node; throws ApiError (invalid_request) when a variable has no value or the result is no DNS name. */
  render(node: TemplateNode, index: number): string;
}

const LITERAL = /^[a-z0-9.-]*$/;
const HOSTNAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function parseHostnameTemplate(source: string): HostnameTemplate {
  const bad = (why: string) => new ApiError('invalid_request', `hostname_template ${JSON.stringify(source.slice(0, 80))}: ${why}`);
  if (source.length === 0 || source.length > 253) throw bad('must be 1-253 characters');
  const parts: Part[] = [];
  const re = /\{\{\s*([^}]*?)\s*\}\}/g;
  let at = 0;
  for (let m = re.exec(source); m !== null; m = re.exec(source)) {
    parts.push({ literal: source.slice(at, m.index) });
    const name = m[1] as string;
    if (!Object.hasOwn(HOSTNAME_VARIABLES, name)) throw bad(`unknown variable {{${name}}} (known: ${Object.keys(HOSTNAME_VARIABLES).join(', ')})`);
    parts.push({ variable: name as HostnameVariable });
    at = m.index + m[0].length;
  }
  parts.push({ literal: source.slice(at) });
  for (const p of parts) {
    if ('literal' in p && !LITERAL.test(p.literal)) throw bad('outside {{…}} only a-z, 0-9, "." and "-" may appear');
  }
  const variables = parts.flatMap((p) => ('variable' in p ? [p.variable] : []));
  return {
    source,
    variables,
    render(node, index) {
      const name = parts
        .map((p) => {
          if ('literal' in p) return p.literal;
          const v = HOSTNAME_VARIABLES[p.variable](node, index);
          if (v === undefined) throw new ApiError('invalid_request', `hostname_template: the node has no ${p.variable === 'mac_suffix' ? 'mac' : p.variable === 'uuid_prefix' ? 'uuid' : p.variable}`);
          return v;
        })
        .join('');
      if (!HOSTNAME.test(name)) throw new ApiError('invalid_request', `hostname_template gives ${JSON.stringify(name.slice(0, 80))}, not a valid DNS name`);
      return name;
    },
  };
}
