// Delivers the webhook outbox (docs/notifications.md). The rows are written by database triggers in
// the transactions that make the events; this loop only reads and updates the outbox, off every
// request's path, so a slow or dead receiver never slows a request.
//
// - Every poll (1 s), and 50 ms after a subscribed event in this process (nudge), each webhook that is not
//   busy claims a batch of its due rows with a lease, and delivers them a few at a time. Each
//   webhook has its own loop and rows: one slow receiver delays only its own events.
// - A delivery is one POST with a deadline (notifications.timeout); 2xx is delivered (the row is
//   deleted), anything else (another status, a redirect, no answer) is retried with exponential
//   backoff and jitter, until the event is an hour old: then the row is kept as dead and counted.
// - A row claimed by a process that died is taken again when its lease ends; one whose delivery a
//   stopping gate aborts is released at once, so the next start sends it without waiting.
import type { Storage, WebhookDelivery } from '../storage/storage.js';
import { NODE_EVENTS, WEBHOOK_EVENTS, type WebhookEvent } from './events.js';
import { MAX_BODY_BYTES, render } from './formats.js';
import { buildBody, type NodeFacts } from './payload.js';
import { SIGNATURE_HEADER, signBody } from './signature.js';
import type { Webhook } from './webhooks.js';

/** What the dispatcher counts (server/metrics.ts). */
export interface DeliveryMetrics {
  /** delivered; retried (failed, tried again later); gave_up (failed for an hour); dropped (not to be sent). */
  delivery(result: 'delivered' | 'retried' | 'gave_up' | 'dropped'): void;
}

interface Log {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface DispatcherOptions {
  publicUrl: string;
  timeoutMs: number;
  authFailureBurst: number;
  metrics?: DeliveryMetrics | undefined;
  log: Log;
  now?: () => number;
  /** How often the outbox is read. */
  pollMs?: number;
  /** Rows one webhook claims at a time. */
  batch?: number;
  /** Deliveries in flight per webhook. */
  concurrency?: number;
  /** How long an event is tried: after this since it happened, it is given up. */
  maxAgeMs?: number;
  /** First retry delay, doubled every attempt up to maxDelayMs. */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Dead rows are kept this long (for the operator to look at), then pruned. */
  deadRetentionMs?: number;
}

class DeliveryError extends Error {}

/** fetch's own error says only "fetch failed"; its cause says why (ECONNREFUSED, a TLS error, …). */
function describeFailure(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error ? `: ${e.cause.message}` : '';
  return `${e.name}: ${e.message}${cause}`;
}

export class WebhookDispatcher {
  private readonly now: () => number;
  private readonly pollMs: number;
  private readonly batch: number;
  private readonly concurrency: number;
  private readonly maxAgeMs: number;
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly deadRetentionMs: number;
  /** Longer than a delivery can take, so a live process never loses a row it is still sending. */
  private readonly leaseMs: number;
  private readonly busy = new Map<string, Promise<void>>();
  private readonly stopping = new AbortController();
  private poll: NodeJS.Timeout | undefined;
  private nudged: NodeJS.Timeout | undefined;
  private lastPrune = 0;
  /** The audit types some webhook wants: only those nudge (a burst of them makes one round per 50 ms at most). */
  private readonly wanted: Set<string>;

  constructor(
    private readonly storage: Storage,
    private readonly webhooks: Webhook[],
    private readonly opts: DispatcherOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.pollMs = opts.pollMs ?? 1000;
    this.batch = opts.batch ?? 50;
    this.concurrency = opts.concurrency ?? 4;
    this.maxAgeMs = opts.maxAgeMs ?? 3_600_000;
    this.minDelayMs = opts.minDelayMs ?? 1000;
    this.maxDelayMs = opts.maxDelayMs ?? 300_000;
    this.deadRetentionMs = opts.deadRetentionMs ?? 7 * 86_400_000;
    this.leaseMs = opts.timeoutMs + 30_000;
    this.wanted = new Set(webhooks.flatMap((w) => w.events.map((e) => WEBHOOK_EVENTS[e])));
  }

  start(): void {
    if (this.webhooks.length === 0 || this.poll) return;
    this.poll = setInterval(() => this.tick(), this.pollMs);
    this.poll.unref();
    this.tick();
  }

  /**
   * An event was recorded in this process: deliver soon rather than at the next poll. Waits a little,
   * for the transaction that wrote it (a grouped one commits on the next turn of the event loop).
   */
  nudge(auditType: string): void {
    if (!this.poll || this.nudged || !this.wanted.has(auditType)) return;
    this.nudged = setTimeout(() => {
      this.nudged = undefined;
      this.tick();
    }, 50);
    this.nudged.unref();
  }

  /** Stops polling, aborts the deliveries in flight (their rows are released) and waits for them. */
  async stop(): Promise<void> {
    clearInterval(this.poll);
    clearTimeout(this.nudged);
    this.poll = undefined;
    this.stopping.abort();
    await Promise.all(this.busy.values());
  }

  /** One round: every webhook not already busy delivers what is due. Tests call it through start/nudge. */
  private tick(): void {
    if (this.stopping.signal.aborted) return;
    for (const w of this.webhooks) {
      if (this.busy.has(w.key)) continue;
      const run = this.drain(w)
        .catch((e: unknown) => this.opts.log.error({ err: e, webhook: w.label }, 'webhook outbox: reading it failed; trying again at the next poll'))
        .finally(() => this.busy.delete(w.key));
      this.busy.set(w.key, run);
    }
    const now = this.now();
    if (now - this.lastPrune > 60_000) {
      this.lastPrune = now;
      this.storage.webhooks
        .prune(now - this.deadRetentionMs, now - 10 * 60_000, 1000)
        .catch((e: unknown) => this.opts.log.error({ err: e }, 'webhook outbox: pruning failed'));
    }
  }

  /** Claims and delivers one webhook's due rows, batch after batch, until none is due. */
  private async drain(w: Webhook): Promise<void> {
    for (;;) {
      if (this.stopping.signal.aborted) return;
      const now = this.now();
      const rows = await this.storage.webhooks.claim(w.key, now, now + this.leaseMs, this.batch);
      if (rows.length === 0) return;
      let next = 0;
      const worker = async () => {
        for (let row = rows[next++]; row; row = rows[next++]) await this.deliverOne(w, row);
      };
      await Promise.all(Array.from({ length: Math.min(this.concurrency, rows.length) }, worker));
      if (rows.length < this.batch) return;
    }
  }

  private async deliverOne(w: Webhook, d: WebhookDelivery): Promise<void> {
    if (this.stopping.signal.aborted) return this.storage.webhooks.release(d.id);
    // device_code_issued is also written for `talos-gate login --device`: not a node waiting
    if (d.event === 'node_waiting' && d.detail.kind === 'operator') {
      this.opts.metrics?.delivery('dropped');
      return this.storage.webhooks.delivered(d.id);
    }
    let text: string;
    try {
      const facts = NODE_EVENTS.has(d.event as WebhookEvent) ? await this.nodeFacts(d.subject) : undefined;
      text = render(w.format, buildBody(d, this.opts.publicUrl, this.opts.authFailureBurst, facts));
    } catch (e) {
      // the database, most likely: the row stays claimed and is taken again when its lease ends
      this.opts.log.error({ err: e, webhook: w.label }, 'webhook: building an event failed');
      return;
    }
    try {
      if (Buffer.byteLength(text) > MAX_BODY_BYTES) throw new DeliveryError(`the body is over ${MAX_BODY_BYTES} bytes`);
      await this.post(w, text);
    } catch (e) {
      if (this.stopping.signal.aborted) return this.storage.webhooks.release(d.id);
      return this.failed(w, d, e instanceof DeliveryError ? e.message : describeFailure(e));
    }
    this.opts.metrics?.delivery('delivered');
    await this.storage.webhooks.delivered(d.id);
  }

  private async nodeFacts(nodeId: string | null): Promise<NodeFacts> {
    if (nodeId === null) return { node: undefined, newestRequest: undefined };
    const [node, requests] = await Promise.all([this.storage.getNode(nodeId), this.storage.listDeviceRequests({ nodeId })]);
    return { node, newestRequest: requests.at(-1) };
  }

  private async post(w: Webhook, text: string): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'talos-gate' };
    if (w.secret !== undefined) headers[SIGNATURE_HEADER] = signBody(w.secret, text);
    const res = await fetch(w.url, {
      method: 'POST',
      headers,
      body: text,
      // a redirect is not followed: the configured URL is the only place an event goes
      redirect: 'manual',
      signal: AbortSignal.any([AbortSignal.timeout(this.opts.timeoutMs), this.stopping.signal]),
    });
    // the answer is not needed; reading it ends the exchange (and frees the connection)
    await res.arrayBuffer().catch(() => undefined);
    if (res.status < 200 || res.status > 299) throw new DeliveryError(`the receiver answered ${res.status}`);
  }

  private async failed(w: Webhook, d: WebhookDelivery, error: string): Promise<void> {
    const now = this.now();
    const giveUpAt = d.at + this.maxAgeMs;
    if (now >= giveUpAt) {
      this.opts.metrics?.delivery('gave_up');
      this.opts.log.error({ webhook: w.label, event: d.event, audit_id: d.auditId, attempts: d.attempts, error }, 'webhook: gave up on an event after an hour of retries');
      return this.storage.webhooks.giveUp(d.id, error);
    }
    // exponential backoff with jitter (half to all of the step), so receivers coming back are not
    // hit by every event at the same moment; the last try is at the hour
    const step = Math.min(this.minDelayMs * 2 ** Math.min(d.attempts - 1, 30), this.maxDelayMs);
    const nextAt = Math.min(now + Math.round(step * (0.5 + Math.random() * 0.5)), giveUpAt);
    this.opts.metrics?.delivery('retried');
    this.opts.log.warn({ webhook: w.label, event: d.event, audit_id: d.auditId, attempts: d.attempts, error, retry_at: new Date(nextAt).toISOString() }, 'webhook: delivery failed; retrying');
    await this.storage.webhooks.retry(d.id, nextAt, error);
  }
}
