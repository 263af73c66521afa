import type { Storage } from '../storage/storage.js';

// The enrollment's background garbage collection (security review #11, finding 8): anyone who
// reaches /device/code makes a node row and device requests, so what nobody decided on is deleted
// after a retention period. Deletes run in short batches with the event loop free between them, so
// a backlog (50,000 junk nodes) never stalls the gate's requests.

export interface MaintenanceSettings {
  /** Device requests are kept this long past their expiry: polls still get answered (device.expiry_grace). */
  expiryGraceMs: number;
  /** Nodes nobody decided on are deleted this long after they last asked (device.pending_retention). */
  pendingRetentionMs: number;
  /** Rows of each kind per batch. */
  batchSize?: number;
}

export interface MaintenanceCounts {
  /** Abandoned nodes deleted (their device requests went with them). */
  nodes: number;
  deviceRequests: number;
  nodeTokens: number;
  webSessions: number;
}

/** 500 rows: a batch commits in a few milliseconds even with each node's requests cascading. */
export const DEFAULT_BATCH = 500;

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class EnrollmentMaintenance {
  private running: Promise<MaintenanceCounts> | undefined;
  private stopped = false;

  constructor(
    private readonly storage: Storage,
    private readonly settings: MaintenanceSettings,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * One pass: expired requests, tokens and sessions, then abandoned nodes, each in batches until
   * none is left. A pass already running is joined, not started twice.
   */
  run(): Promise<MaintenanceCounts> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Stops between two batches; resolves once no batch runs any more (the storage may then close). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running?.catch(() => undefined);
  }

  private async pass(): Promise<MaintenanceCounts> {
    const limit = this.settings.batchSize ?? DEFAULT_BATCH;
    const counts: MaintenanceCounts = { nodes: 0, deviceRequests: 0, nodeTokens: 0, webSessions: 0 };
    for (let more = true; more && !this.stopped; ) {
      const gc = await this.storage.garbageCollect(this.now() - this.settings.expiryGraceMs, limit);
      counts.deviceRequests += gc.deviceRequests;
      counts.nodeTokens += gc.nodeTokens;
      counts.webSessions += gc.webSessions;
      more = gc.deviceRequests >= limit || gc.nodeTokens >= limit || gc.webSessions >= limit;
      await turn();
    }
    for (let more = true; more && !this.stopped; ) {
      const now = this.now();
      // a node still holding an unexpired request (retention shorter than code_ttl) waits for it
      const deleted = await this.storage.deleteAbandonedNodes(now - this.settings.pendingRetentionMs, now - this.settings.expiryGraceMs, limit);
      counts.nodes += deleted;
      more = deleted >= limit;
      await turn();
    }
    return counts;
  }
}
