// The webhook outbox on SQLite. Every statement goes through the backend's transaction queue, so it
// never lands inside a transaction another request holds open on the one connection.
import type Database from 'better-sqlite3';
import { MAX_ERROR_LENGTH, OUTBOX_COLUMNS, deliveryFromRow, type WebhookOutboxRow } from '../webhook-rows.js';
import type { WebhookBacklog, WebhookDelivery, WebhookOutbox, WebhookSubscription } from '../storage.js';
import type { TransactionQueue } from './transactions.js';

export class SqliteWebhookOutbox implements WebhookOutbox {
  private readonly stmt;

  constructor(
    db: Database.Database,
    private readonly queue: TransactionQueue,
  ) {
    this.stmt = {
      clearSubs: db.prepare('DELETE FROM webhook_subscriptions'),
      addSub: db.prepare('INSERT INTO webhook_subscriptions (audit_type, webhook, event, burst) VALUES (?, ?, ?, ?)'),
      dropUnlisted: db.prepare("DELETE FROM webhook_outbox WHERE status = 'pending' AND webhook NOT IN (SELECT value FROM json_each(?))"),
      // one statement: the rows chosen and leased at once, under the write lock, so two processes
      // on the same file never both take a row
      claim: db.prepare(
        `UPDATE webhook_outbox SET claimed_until = ?, attempts = attempts + 1
         WHERE id IN (SELECT id FROM webhook_outbox
                      WHERE webhook = ? AND status = 'pending' AND next_at <= ? AND claimed_until <= ?
                      ORDER BY next_at, id LIMIT ?)
         RETURNING ${OUTBOX_COLUMNS}`,
      ),
      delivered: db.prepare('DELETE FROM webhook_outbox WHERE id = ?'),
      retry: db.prepare('UPDATE webhook_outbox SET next_at = ?, claimed_until = 0, last_error = ? WHERE id = ?'),
      giveUp: db.prepare("UPDATE webhook_outbox SET status = 'dead', claimed_until = 0, last_error = ? WHERE id = ?"),
      release: db.prepare('UPDATE webhook_outbox SET claimed_until = 0, attempts = max(attempts - 1, 0) WHERE id = ?'),
      backlog: db.prepare(
        "SELECT count(*) FILTER (WHERE status = 'pending') AS pending, count(*) FILTER (WHERE status = 'dead') AS dead, min(CASE WHEN status = 'pending' THEN at END) AS oldest FROM webhook_outbox",
      ),
      pruneDead: db.prepare("DELETE FROM webhook_outbox WHERE id IN (SELECT id FROM webhook_outbox WHERE status = 'dead' AND at < ? LIMIT ?)"),
      pruneWindows: db.prepare('DELETE FROM webhook_failure_windows WHERE window_start IN (SELECT window_start FROM webhook_failure_windows WHERE window_start < ? LIMIT ?)'),
    };
  }

  syncSubscriptions(subs: WebhookSubscription[]): Promise<void> {
    return this.queue.transaction(async () => {
      this.stmt.clearSubs.run();
      for (const s of subs) this.stmt.addSub.run(s.auditType, s.webhook, s.event, s.burst);
      this.stmt.dropUnlisted.run(JSON.stringify([...new Set(subs.map((s) => s.webhook))]));
    });
  }

  claim(webhook: string, now: number, claimUntil: number, limit: number): Promise<WebhookDelivery[]> {
    return this.queue.alone(() => (this.stmt.claim.all(claimUntil, webhook, now, now, limit) as WebhookOutboxRow[]).map(deliveryFromRow).sort((a, b) => a.nextAt - b.nextAt || a.id - b.id));
  }

  delivered(id: number): Promise<void> {
    return this.queue.alone(() => void this.stmt.delivered.run(id));
  }

  retry(id: number, nextAt: number, error: string): Promise<void> {
    return this.queue.alone(() => void this.stmt.retry.run(nextAt, error.slice(0, MAX_ERROR_LENGTH), id));
  }

  giveUp(id: number, error: string): Promise<void> {
    return this.queue.alone(() => void this.stmt.giveUp.run(error.slice(0, MAX_ERROR_LENGTH), id));
  }

  release(id: number): Promise<void> {
    return this.queue.alone(() => void this.stmt.release.run(id));
  }

  backlog(): Promise<WebhookBacklog> {
    return this.queue.alone(() => {
      const r = this.stmt.backlog.get() as { pending: number; dead: number; oldest: number | null };
      return { pending: r.pending, dead: r.dead, oldestPendingAt: r.oldest ?? undefined };
    });
  }

  prune(deadBefore: number, windowsBefore: number, limit: number): Promise<number> {
    return this.queue.alone(() => this.stmt.pruneDead.run(deadBefore, limit).changes + this.stmt.pruneWindows.run(windowsBefore, limit).changes);
  }
}
