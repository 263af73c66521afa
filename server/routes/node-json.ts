import type { NodeView } from '../enrollment/service.js';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A node on the wire of the admin API: snake_case keys like the OAuth endpoints, ISO 8601 times. */
export function nodeJson(n: NodeView) {
  return {
    id: n.id,
    uuid: n.uuid,
    mac: n.mac,
    variables: n.variables,
    status: n.status,
    state: n.state,
    profile: n.profile,
    hostname: n.hostname,
    patches: n.patches,
    auto_approve: n.autoApprove,
    auto_approve_cidrs: n.autoApproveCidrs,
    created_at: iso(n.createdAt),
    requested_at: iso(n.requestedAt),
    source_ip: n.sourceIp,
    decided_at: iso(n.decidedAt),
    decided_by: n.decidedBy,
    config_downloads: n.configDownloads,
    last_download_at: iso(n.lastDownloadAt),
    last_download_ip: n.lastDownloadIp,
    pending_count: n.pendingCount,
    pending: n.pending.map((p) => ({
      user_code: p.userCode,
      requested_at: iso(p.requestedAt),
      expires_at: iso(p.expiresAt),
      source_ip: p.sourceIp,
    })),
  };
}
