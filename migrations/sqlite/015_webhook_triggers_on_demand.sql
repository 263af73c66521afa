-- The webhook outbox triggers of 011 exist from now on only while a webhook subscribes: the gate
-- creates them with the subscriptions and drops them with the last one, and makes them match the
-- table whenever it opens the database (server/storage/sqlite/webhooks.ts, their one definition).
-- A trigger on audit_events cost every audit insert a statement journal even when it did nothing.
DROP TRIGGER webhook_outbox_events;
DROP TRIGGER webhook_outbox_auth_failures;
