// The webhook outbox on PostgreSQL. Several gates may share the database, each with a dispatcher:
// a claim takes rows with FOR UPDATE SKIP LOCKED (docs 13.3.2 and SELECT "The Locking Clause"), so
// concurrent claims pass over each other's rows instead of waiting, and leases them
// (claimed_until) so the row stays taken after the claim's statement commits.
import type { Pool, QueryResult, QueryResultRow } from 'pg';
import { MAX_ERROR_LENGTH, OUTBOX_COLUMNS, deliveryFromRow, type WebhookOutboxRow } from '../webhook-rows.js';
import type { WebhookBacklog, WebhookDelivery, WebhookOutbox, WebhookSubscription } from '../storage.js';
import { storageError } from './errors.js';

export class PgWebhookOutbox implements WebhookOutbox {
  constructor(private readonly pool: Pool) {}

  private async query<R extends QueryResultRow>(text: string, values: unknown[]): Promise<QueryResult<R>> {
    try {
      return await this.pool.query<R>(text, values);
    } catch (e) {
      throw storageError(e);
    }
  }

  async syncSubscriptions(subs: WebhookSubscription[]): Promise<void> {
    let client;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw storageError(e);
    }
    try {
      await client.query('BEGIN');
      // gates starting together each replace the whole set: one after the other, not interleaved
      await client.query('LOCK TABLE webhook_subscriptions IN EXCLUSIVE MODE');
      await client.query('DELETE FROM webhook_subscriptions');
      await client.query(
        `INSERT INTO webhook_subscriptions (audit_type, webhook, event, burst)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[])`,
        [subs.map((s) => s.auditType), subs.map((s) => s.webhook), subs.map((s) => s.event), subs.map((s) => s.burst)],
      );
      await client.query("DELETE FROM webhook_outbox WHERE status = 'pending' AND NOT (webhook = ANY($1::text[]))", [[...new Set(subs.map((s) => s.webhook))]]);
      await client.query('COMMIT');
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw storageError(e);
    } finally {
      client.release();
    }
  }

  async claim(webhook: string, now: number, claimUntil: number, limit: number): Promise<WebhookDelivery[]> {
    const r = await this.query<WebhookOutboxRow>(
      `UPDATE webhook_outbox SET claimed_until = $1, attempts = attempts + 1
       WHERE id IN (SELECT id FROM webhook_outbox
                    WHERE webhook = $2 AND status = 'pending' AND next_at <= $3 AND claimed_until <= $3
                    ORDER BY next_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
       RETURNING ${OUTBOX_COLUMNS}`,
      [claimUntil, webhook, now, limit],
    );
    return r.rows.map(deliveryFromRow).sort((a, b) => a.nextAt - b.nextAt || a.id - b.id);
  }

  async delivered(id: number): Promise<void> {
    await this.query('DELETE FROM webhook_outbox WHERE id = $1', [id]);
  }

  async retry(id: number, nextAt: number, error: string): Promise<void> {
    await this.query('UPDATE webhook_outbox SET next_at = $1, claimed_until = 0, last_error = $2 WHERE id = $3', [nextAt, error.slice(0, MAX_ERROR_LENGTH), id]);
  }

  async giveUp(id: number, error: string): Promise<void> {
    await this.query("UPDATE webhook_outbox SET status = 'dead', claimed_until = 0, last_error = $1 WHERE id = $2", [error.slice(0, MAX_ERROR_LENGTH), id]);
  }

  async release(id: number): Promise<void> {
    await this.query('UPDATE webhook_outbox SET claimed_until = 0, attempts = greatest(attempts - 1, 0) WHERE id = $1', [id]);
  }

  async backlog(): Promise<WebhookBacklog> {
    const r = await this.query<{ pending: number; dead: number; oldest: number | null }>(
      "SELECT count(*) FILTER (WHERE status = 'pending') AS pending, count(*) FILTER (WHERE status = 'dead') AS dead, min(at) FILTER (WHERE status = 'pending') AS oldest FROM webhook_outbox",
      [],
    );
    const row = r.rows[0];
    return { pending: row?.pending ?? 0, dead: row?.dead ?? 0, oldestPendingAt: row?.oldest ?? undefined };
  }

  async prune(deadBefore: number, windowsBefore: number, limit: number): Promise<number> {
    const dead = await this.query("DELETE FROM webhook_outbox WHERE id IN (SELECT id FROM webhook_outbox WHERE status = 'dead' AND at < $1 LIMIT $2)", [deadBefore, limit]);
    const windows = await this.query('DELETE FROM webhook_failure_windows WHERE window_start IN (SELECT window_start FROM webhook_failure_windows WHERE window_start < $1 LIMIT $2)', [windowsBefore, limit]);
    return (dead.rowCount ?? 0) + (windows.rowCount ?? 0);
  }
}
