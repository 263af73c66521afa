// The configured webhooks as the dispatcher and the triggers know them: a stable key per webhook
// (the outbox rows name it, so a restart finds its own rows), and the subscriptions synced into the
// database at start.
import { createHash } from 'node:crypto';
import type { WebhookSubscription } from '../storage/storage.js';
import { WEBHOOK_EVENTS, type WebhookEvent } from './events.js';

export type WebhookFormat = 'json' | 'slack';

export interface Webhook {
  /** sha256 of format and URL, 16 hex digits: the same webhook across restarts, whatever its secret. */
  key: string;
  url: string;
  secret: string | undefined;
  format: WebhookFormat;
  events: WebhookEvent[];
  /** For logs: the URL's origin only (a Slack webhook's path is its credential). */
  label: string;
}

export interface WebhookSettings {
  url: string;
  secret?: string | undefined;
  format: WebhookFormat;
  events: string[];
}

export function webhookKey(format: WebhookFormat, url: string): string {
  return createHash('sha256').update(`${format} ${new URL(url).href}`).digest('hex').slice(0, 16);
}

/** The webhooks of notifications.webhooks, already checked by the config loader. */
export function webhooksFrom(settings: WebhookSettings[]): Webhook[] {
  return settings.map((w) => ({
    key: webhookKey(w.format, w.url),
    url: w.url,
    secret: w.secret,
    format: w.format,
    events: w.events as WebhookEvent[],
    label: `${w.format} ${new URL(w.url).origin}`,
  }));
}

/** What the triggers read: one row per webhook and audit type it wants. */
export function subscriptionsFor(webhooks: Webhook[], authFailureBurst: number): WebhookSubscription[] {
  return webhooks.flatMap((w) =>
    w.events.map((event) => ({
      auditType: WEBHOOK_EVENTS[event],
      webhook: w.key,
      event,
      burst: event === 'auth_failures' ? authFailureBurst : null,
    })),
  );
}
