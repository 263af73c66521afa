// The webhook outbox on SQLite. Every statement goes through the backend's transaction queue, so it
// never lands inside a transaction another request holds open on the one connection.
import type Database from 'better-sqlite3';
import { MAX_ERROR_LENGTH, OUTBOX_COLUMNS, deliveryFromRow, type WebhookOutboxRow } from '../webhook-rows.js';
import type { WebhookBacklog, WebhookDelivery, WebhookOutbox, WebhookSubscription } from '../storage.js';
import type { TransactionQueue } from './transactions.js';

// The triggers that fill the outbox, on audit_events only while some webhook subscribes: a trigger
// makes every audit insert a multi-row statement, with a statement journal of its own inside the
// group commit's savepoint, even when its WHEN is false. With no webhook (most gates) that was 3 µs
// of an exchange's 36 µs record (npm run bench -- --only record; docs/performance.md). Created and
// dropped with the subscriptions (below) and made to match them whenever the database is opened, so
// any process writing audit rows (a gate, a worker, the CLI) sees the triggers the table asks for.
// Migration 011 created them first; since 015 this is their one definition.
const OUTBOX_TRIGGERS = [
  `CREATE TRIGGER IF NOT EXISTS webhook_outbox_events AFTER INSERT ON audit_events
   WHEN NEW.type <> 'auth_failure' AND EXISTS (SELECT 1 FROM webhook_subscriptions WHERE audit_type = NEW.type)
   BEGIN
     INSERT INTO webhook_outbox (webhook, event, audit_id, at, actor, subject, ip, detail, next_at)
     SELECT webhook, event, NEW.id, NEW.at, NEW.actor, NEW.subject, NEW.ip, NEW.detail, NEW.at
     FROM webhook_subscriptions WHERE audit_type = NEW.type;
   END`,
  // one auth_failures event per webhook when a window's count reaches the webhook's burst, exactly:
  // the failures after it in the same minute add nothing, the next minute can make another
  `CREATE TRIGGER IF NOT EXISTS webhook_outbox_auth_failures AFTER INSERT ON audit_events
   WHEN NEW.type = 'auth_failure' AND EXISTS (SELECT 1 FROM webhook_subscriptions WHERE audit_type = 'auth_failure')
   BEGIN
     INSERT INTO webhook_failure_windows (window_start, failures) VALUES (NEW.at - NEW.at % 60000, 1)
       ON CONFLICT (window_start) DO UPDATE SET failures = failures + 1;
     INSERT INTO webhook_outbox (webhook, event, audit_id, at, actor, subject, ip, detail, next_at)
     SELECT s.webhook, s.event, NEW.id, NEW.at, NEW.actor, NEW.subject, NEW.ip, NEW.detail, NEW.at
     FROM webhook_subscriptions s JOIN webhook_failure_windows w ON w.window_start = NEW.at - NEW.at % 60000
     WHERE s.audit_type = 'auth_failure' AND w.failures = s.burst;
   END`,
];

/** Creates the outbox triggers when webhook_subscriptions has a row, drops them when it has none. */
export function matchOutboxTriggers(db: Database.Database): void {
  if (db.prepare('SELECT 1 FROM webhook_subscriptions LIMIT 1').get() !== undefined) {
    for (const sql of OUTBOX_TRIGGERS) db.exec(sql);
  } else {
    db.exec('DROP TRIGGER IF EXISTS webhook_outbox_events; DROP TRIGGER IF EXISTS webhook_outbox_auth_failures');
  }
}

export class SqliteWebhookOutbox implements WebhookOutbox {
  private readonly stmt;

  constructor(
    private readonly db: Database.Database,
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
      // in the same transaction: no audit row is ever written between the table and its triggers
      matchOutboxTriggers(this.db);
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
