// The events a webhook can ask for, and the audit type each one is made from. Every event is an
// audit row first (written in the same transaction as the change it tells of); the database
// triggers copy the subscribed ones into the outbox (migrations sqlite 011, postgres 002).

export const WEBHOOK_EVENTS = {
  /** A node asked for a device code and waits for an admin (operator logins are left out). */
  node_waiting: 'device_code_issued',
  node_approved: 'device_approved',
  node_denied: 'device_denied',
  node_revoked: 'node_revoked',
  config_downloaded: 'config_downloaded',
  cert_issued: 'cert_issued',
  /** A burst: `notifications.auth_failure_burst` refused exchanges within one minute. */
  auth_failures: 'auth_failure',
} as const;

export type WebhookEvent = keyof typeof WEBHOOK_EVENTS;

export const WEBHOOK_EVENT_NAMES = Object.keys(WEBHOOK_EVENTS) as WebhookEvent[];

export function isWebhookEvent(name: string): name is WebhookEvent {
  return Object.hasOwn(WEBHOOK_EVENTS, name);
}

/** Events about one node: their body carries the node and, when one is known, its user code. */
export const NODE_EVENTS: ReadonlySet<WebhookEvent> = new Set(['node_waiting', 'node_approved', 'node_denied', 'node_revoked', 'config_downloaded']);

/** The auth_failures window (fixed, aligned to the minute: at - at % 60000, as the triggers count). */
export const AUTH_FAILURE_WINDOW_MS = 60_000;
