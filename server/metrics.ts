import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { secretsEqual } from '../device/secrets.js';
import { ApiError } from './api-error.js';
import type { AuditEntry } from './audit.js';
import type { Storage } from './storage/storage.js';

// Prometheus metrics at GET /metrics. Counters follow the audit trail (what happened in this process);
// gauges are read from the database at scrape time (the state of the whole gate, whatever the worker).

export class GateMetrics {
  readonly registry = new Registry();
  private readonly approvals = new Counter({ name: 'talos_gate_node_approvals_total', help: 'Node approvals and denials', labelNames: ['decision'], registers: [this.registry] });
  private readonly downloads = new Counter({ name: 'talos_gate_config_downloads_total', help: 'Machine configs served', registers: [this.registry] });
  private readonly certs = new Counter({ name: 'talos_gate_certificates_issued_total', help: 'Talos client certificates issued', registers: [this.registry] });
  private readonly authFailures = new Counter({ name: 'talos_gate_auth_failures_total', help: 'Refused exchanges by reason', labelNames: ['reason'], registers: [this.registry] });
  // webhooks (server/notifications/dispatcher.ts): every attempt's outcome, and the failed ones alone
  // under the name the alert rules watch
  private readonly webhookDeliveries = new Counter({
    name: 'talos_gate_webhook_deliveries_total',
    help: 'Webhook delivery attempts by result: delivered, retried (failed, tried again later), gave_up (failed for an hour), dropped',
    labelNames: ['result'],
    registers: [this.registry],
  });
  private readonly webhookFailures = new Counter({ name: 'talos_gate_webhook_delivery_failures_total', help: 'Webhook delivery attempts that failed (retried or given up)', registers: [this.registry] });
  readonly latency = new Histogram({
    name: 'talos_gate_http_request_duration_seconds',
    help: 'HTTP request latency by route',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  /** The checks of /readyz, for talos_gate_ready; set by the app once its parts exist. */
  private readiness: (() => Promise<Record<string, string>>) | undefined;

  setReadiness(fn: () => Promise<Record<string, string>>): void {
    this.readiness = fn;
  }

  constructor(storage: Storage, now: () => number = Date.now) {
    const metrics = this;
    collectDefaultMetrics({ register: this.registry, prefix: 'talos_gate_' });
    new Gauge({
      name: 'talos_gate_device_requests',
      help: 'Device requests in the database by state',
      labelNames: ['state'],
      registers: [this.registry],
      async collect() {
        for (const [state, n] of Object.entries(await storage.countDeviceRequestsByStatus())) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'talos_gate_nodes',
      help: 'Nodes by status',
      labelNames: ['status'],
      registers: [this.registry],
      async collect() {
        for (const [status, n] of Object.entries(await storage.countNodesByStatus())) this.set({ status }, n);
      },
    });
    new Gauge({
      name: 'talos_gate_webhook_outbox_backlog',
      help: 'Webhook events waiting in the outbox (pending: not yet delivered; dead: given up, kept for a week)',
      labelNames: ['state'],
      registers: [this.registry],
      async collect() {
        const b = await storage.webhooks.backlog();
        this.set({ state: 'pending' }, b.pending);
        this.set({ state: 'dead' }, b.dead);
      },
    });
    new Gauge({
      name: 'talos_gate_webhook_outbox_oldest_seconds',
      help: 'Age of the oldest webhook event not yet delivered (0 when none)',
      registers: [this.registry],
      async collect() {
        const b = await storage.webhooks.backlog();
        this.set(b.oldestPendingAt === undefined ? 0 : Math.max(0, (now() - b.oldestPendingAt) / 1000));
      },
    });
    // nodes waiting for an admin (deploy/prometheus/talos-gate-alerts.yaml pages on the oldest)
    new Gauge({
      name: 'talos_gate_nodes_waiting',
      help: 'Node device requests pending and unexpired: machines waiting at their console for an admin',
      registers: [this.registry],
      async collect() {
        this.set((await storage.waitingNodeRequests(now())).count);
      },
    });
    new Gauge({
      name: 'talos_gate_oldest_waiting_node_age_seconds',
      help: 'Age of the oldest pending, unexpired node request (0 when none waits)',
      registers: [this.registry],
      async collect() {
        const t = now();
        const { oldestAt } = await storage.waitingNodeRequests(t);
        this.set(oldestAt === null ? 0 : Math.max(0, (t - oldestAt) / 1000));
      },
    });
    new Gauge({
      name: 'talos_gate_ready',
      help: 'Whether each readiness check of /readyz passes (1) or not (0); check="all" is /readyz itself',
      labelNames: ['check'],
      registers: [this.registry],
      async collect() {
        if (!metrics.readiness) return;
        const checks = await metrics.readiness();
        let all = 1;
        for (const [check, v] of Object.entries(checks)) {
          const ok = v === 'ok' || v === 'not configured' ? 1 : 0;
          all &&= ok;
          this.set({ check }, ok);
        }
        this.set({ check: 'all' }, all);
      },
    });
    // per backend, since the two sizes mean different things: talos_gate_sqlite_bytes is the file
    // with its write-ahead log, talos_gate_postgres_bytes is pg_database_size (the whole database)
    new Gauge({
      name: `talos_gate_${storage.backend}_bytes`,
      help: storage.backend === 'sqlite' ? 'Size of the SQLite database with its write-ahead log' : 'Size of the PostgreSQL database (pg_database_size)',
      registers: [this.registry],
      async collect() {
        this.set(await storage.databaseBytes());
      },
    });
  }

  /** Counts what the audit trail records. */
  observe(e: AuditEntry): void {
    if (e.type === 'device_approved') this.approvals.inc({ decision: 'approved' });
    else if (e.type === 'device_denied') this.approvals.inc({ decision: 'denied' });
    else if (e.type === 'config_downloaded') this.downloads.inc();
    else if (e.type === 'cert_issued') this.certs.inc();
    else if (e.type === 'auth_failure') this.authFailures.inc({ reason: String(e.detail?.reason ?? 'unknown').slice(0, 80) });
  }

  /** DeliveryMetrics of the webhook dispatcher. */
  webhookDelivery(result: 'delivered' | 'retried' | 'gave_up' | 'dropped'): void {
    this.webhookDeliveries.inc({ result });
    if (result === 'retried' || result === 'gave_up') this.webhookFailures.inc();
  }

  routes(token: string | undefined) {
    return async (app: FastifyInstance) => {
      app.get('/metrics', async (request, reply) => {
        if (token !== undefined) {
          const auth = request.headers.authorization ?? '';
          if (!/^Bearer /i.test(auth) || !secretsEqual(auth.slice(7).trim(), token)) throw new ApiError('unauthorized', 'metrics need the metrics token');
        }
        return reply.type(this.registry.contentType).send(await this.registry.metrics());
      });
    };
  }
}
