-- Webhook notifications (issue 13, docs/notifications.md). An outbox in the database: the event rows
-- are written by a trigger on audit_events, so each is committed in the same transaction as the change
-- it tells of (and is undone with it), without a statement added to any request path. The gate's
-- dispatcher (server/notifications/) delivers them.

-- Which audit types each webhook wants, as the gate's config says: synced at every start. The
-- trigger reads it; with no webhook configured it is empty and the trigger does nothing else.
-- burst: for auth_failure, how many failures in one minute make one auth_failures event.
CREATE TABLE webhook_subscriptions (
  audit_type TEXT NOT NULL,
  webhook    TEXT NOT NULL,          -- the webhook's key (server/notifications/webhooks.ts webhookKey)
  event      TEXT NOT NULL,          -- the event name the receiver sees (node_waiting, …)
  burst      INTEGER,
  PRIMARY KEY (audit_type, webhook)
);

-- One row per event and webhook, so a slow or dead receiver delays only its own deliveries. The
-- audit row's fields are copied: audit retention may delete it before the hour of retries is over.
-- claimed_until: a dispatcher's lease on the row while it delivers (another process, or the same
-- one after a restart, takes the row again once the lease is over).
CREATE TABLE webhook_outbox (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  webhook       TEXT NOT NULL,
  event         TEXT NOT NULL,
  audit_id      INTEGER NOT NULL,
  at            INTEGER NOT NULL,
  actor         TEXT,
  subject       TEXT,
  ip            TEXT,
  detail        TEXT NOT NULL DEFAULT '{}',
  status        TEXT NOT NULL DEFAULT 'pending',   -- pending | dead (gave up)
  attempts      INTEGER NOT NULL DEFAULT 0,
  next_at       INTEGER NOT NULL,
  claimed_until INTEGER NOT NULL DEFAULT 0,
  last_error    TEXT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (webhook, next_at) WHERE status = 'pending';
CREATE INDEX webhook_outbox_dead ON webhook_outbox (at) WHERE status = 'dead';

-- auth_failure rows counted per minute (fixed windows: at - at % 60000), for the auth_failures burst.
CREATE TABLE webhook_failure_windows (
  window_start INTEGER PRIMARY KEY,
  failures     INTEGER NOT NULL
);

CREATE TRIGGER webhook_outbox_events AFTER INSERT ON audit_events
WHEN NEW.type <> 'auth_failure' AND EXISTS (SELECT 1 FROM webhook_subscriptions WHERE audit_type = NEW.type)
BEGIN
  INSERT INTO webhook_outbox (webhook, event, audit_id, at, actor, subject, ip, detail, next_at)
  SELECT webhook, event, NEW.id, NEW.at, NEW.actor, NEW.subject, NEW.ip, NEW.detail, NEW.at
  FROM webhook_subscriptions WHERE audit_type = NEW.type;
END;

-- One auth_failures event per webhook when a window's count reaches the webhook's burst, exactly:
-- the failures after it in the same minute add nothing, the next minute can make another.
CREATE TRIGGER webhook_outbox_auth_failures AFTER INSERT ON audit_events
WHEN NEW.type = 'auth_failure' AND EXISTS (SELECT 1 FROM webhook_subscriptions WHERE audit_type = 'auth_failure')
BEGIN
  INSERT INTO webhook_failure_windows (window_start, failures) VALUES (NEW.at - NEW.at % 60000, 1)
    ON CONFLICT (window_start) DO UPDATE SET failures = failures + 1;
  INSERT INTO webhook_outbox (webhook, event, audit_id, at, actor, subject, ip, detail, next_at)
  SELECT s.webhook, s.event, NEW.id, NEW.at, NEW.actor, NEW.subject, NEW.ip, NEW.detail, NEW.at
  FROM webhook_subscriptions s JOIN webhook_failure_windows w ON w.window_start = NEW.at - NEW.at % 60000
  WHERE s.audit_type = 'auth_failure' AND w.failures = s.burst;
END;
