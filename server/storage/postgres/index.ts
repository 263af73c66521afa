// The PostgreSQL backend: the Storage interface over one node-postgres pool per process. pool.ts
// reads database.url, errors.ts sorts PostgreSQL's failures, migrate.ts brings the schema up to
// date, operations.ts holds the SQL; this file binds transactions to pooled clients.
//
// Transactions: transaction(fn) checks a client out of the pool, BEGINs (READ COMMITTED, the
// default), runs fn with a tx bound to that client, COMMITs; a transaction inside one is a
// SAVEPOINT. A serialization failure or deadlock (40001, 40P01) runs the whole transaction again, a
// few times: fn, like an updater, must not act outside tx before it resolves (storage.ts).
// groupedTransaction is a plain transaction per call: PostgreSQL commits concurrent transactions
// in parallel on its own connections (and groups their WAL flushes itself, docs 30.4 "commit_delay"),
// so there is nothing to gain from holding one connection for a burst. The device flow's hot paths
// (hot-paths.ts) are no transactions at all but one or two autocommit statements each; a burst of
// polls shares them, batched (UPDATE … FROM unnest(…)), and a burst of exchanges shares one statement
// recording their certificates (certificate-batch.ts).
//
// Every statement sent is counted (roundTrips): each is one network round trip (a named prepared
// statement is parsed, bound and run in one exchange), and the tests hold the hot paths to two.
import pg, { type Pool, type PoolClient, type QueryConfig, type QueryResult, type QueryResultRow } from 'pg';
import { postgresMigrationsDir } from '../../paths.js';
import { readMigrations } from '../migrate.js';
import type { RowCipher } from '../rows.js';
import type { AuditEvent, CertificateRecord, DecisionPlan, DeviceCodeAsk, DeviceRequestRecord, NewAuditEvent, NewCertificate, NodeRecord, NodeTokenRecord, NodeTokenWithNode, PollOutcome, Storage, StorageTx } from '../storage.js';
import { isRetryable, isUnavailable, storageError } from './errors.js';
import { migratePostgres } from './migrate.js';
import { CertificateBatch } from './certificate-batch.js';
import { decideNodeRequest, getNodeTokenWithNode, issueDeviceCode, PollBatcher, recordConfigDownloadAudited, redeemDeviceCode, type PoolQuery } from './hot-paths.js';
import { PgView } from './operations.js';
import { poolConfig, type DatabaseUrl } from './pool.js';
import { PgWebhookOutbox } from './webhooks.js';

/** The first key of the session-level advisory locks of background jobs (exclusively); the second is hashtext(job). */
const JOB_LOCK = 4;

/** How many times a transaction is run again after a serialization failure or deadlock. */
const RETRIES = 4;

/**
 * Statements with values run as named prepared statements: each connection parses one once and
 * then only binds values (docs 55.2.3, "Extended Query"). The texts are fixed fragments, so there are few.
 */
const statementNames = new Map<string, string>();
function statement(text: string, values: unknown[] | undefined): string | QueryConfig {
  if (values === undefined) return text;
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `tg${statementNames.size + 1}`;
    statementNames.set(text, name);
  }
  return { name, text, values };
}

/** The `tx` of one transaction: its statements run on the client the transaction holds. */
class PostgresTx extends PgView {
  protected readonly inTransaction = true;
  private open = true;
  private depth = 0;

  constructor(
    private readonly client: PoolClient,
    private readonly trips: RoundTrips,
    protected readonly cipher: RowCipher,
  ) {
    super();
  }

  protected async query<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>> {
    // a tx kept past its transaction would run in whatever transaction holds the client next
    if (!this.open) throw new Error('storage: this transaction has ended');
    this.trips.count++;
    try {
      return await this.client.query<R>(statement(text, values));
    } catch (e) {
      throw storageError(e);
    }
  }

  protected atomically<T>(fn: (tx: PgView) => Promise<T>): Promise<T> {
    return fn(this);
  }

  async transaction<T>(fn: (tx: StorageTx) => Promise<T>): Promise<T> {
    const name = `tx${this.depth++}`;
    try {
      await this.query(`SAVEPOINT ${name}`);
      try {
        const value = await fn(this);
        await this.query(`RELEASE SAVEPOINT ${name}`);
        return value;
      } catch (e) {
        // undo only this part; the transaction goes on (and a failed statement no longer spoils it)
        if (this.open && !isUnavailable(e)) await this.query(`ROLLBACK TO SAVEPOINT ${name}; RELEASE SAVEPOINT ${name}`);
        throw e;
      }
    } finally {
      this.depth--;
    }
  }

  end(): void {
    this.open = false;
  }
}

/** Statements sent to the server, each one network round trip. */
export interface RoundTrips {
  count: number;
}

export class PostgresStorage extends PgView implements Storage {
  readonly backend = 'postgres';
  protected readonly inTransaction = false;
  readonly webhooks: PgWebhookOutbox;
  /** How many statements this storage sent, in all: the tests read it to hold each hot path to its budget. */
  readonly roundTrips: RoundTrips = { count: 0 };
  private readonly onPool: PoolQuery = (text, values) => this.query(text, values);
  private readonly polls = new PollBatcher(this.onPool);
  private readonly certificates = new CertificateBatch(this.onPool);

  constructor(
    readonly pool: Pool,
    /** The URL without its password, for messages. */
    readonly target: string,
    protected readonly cipher: RowCipher,
  ) {
    super();
    this.webhooks = new PgWebhookOutbox(pool);
  }

  protected async query<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>> {
    this.roundTrips.count++;
    try {
      return await this.pool.query<R>(statement(text, values));
    } catch (e) {
      throw storageError(e);
    }
  }

  protected atomically<T>(fn: (tx: PgView) => Promise<T>): Promise<T> {
    return this.run(fn);
  }

  transaction<T>(fn: (tx: StorageTx) => Promise<T>): Promise<T> {
    return this.run(fn);
  }

  groupedTransaction<T>(fn: (tx: StorageTx) => Promise<T>): Promise<T> {
    return this.run(fn);
  }

  async exclusively<T>(job: string, fn: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
    // session-level, on a connection of its own held for fn's duration: fn's statements run on other
    // connections and commit in batches, which a transaction-level lock could not span. A process
    // that dies loses its connection and with it the lock (docs 13.3.5, "Advisory Locks").
    return this.withDedicatedClient(async (client, broke) => {
      // BOOLEAN comes as 0 or 1 on this pool (pool.ts)
      const got = await client.query<{ ok: number }>('SELECT pg_try_advisory_lock($1::int, hashtext($2)) AS ok', [JOB_LOCK, job]);
      if (got.rows[0]?.ok !== 1) return { ran: false };
      try {
        return { ran: true, value: await fn() };
      } finally {
        // a lock we could not release goes with the connection, destroyed once handed back
        await client.query('SELECT pg_advisory_unlock($1::int, hashtext($2))', [JOB_LOCK, job]).catch(broke);
      }
    });
  }

  /**
   * Runs fn on a client checked out for it alone, and hands the client back: destroyed, not pooled,
   * when its connection broke meanwhile (fn calls `broke`, node-postgres reports it on the client, or
   * the database went away), so the next request never gets a dead or half-used connection. An
   * 'error' of the client without a listener would end the process: one listens while fn runs.
   */
  private async withDedicatedClient<T>(fn: (client: PoolClient, broke: (e: unknown) => void) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw storageError(e);
    }
    let broken: unknown;
    const broke = (e: unknown) => {
      broken = e;
    };
    client.on('error', broke);
    try {
      return await fn(client, broke);
    } catch (e) {
      if (broken === undefined && isUnavailable(e)) broken = e;
      throw storageError(e);
    } finally {
      client.off('error', broke);
      client.release(broken === undefined ? undefined : broken instanceof Error ? broken : true);
    }
  }

  issueDeviceCode(ask: DeviceCodeAsk): Promise<{ request: DeviceRequestRecord; audit: AuditEvent[] } | 'too_many_pending'> {
    return issueDeviceCode(this.onPool, this.cipher, ask);
  }

  pollDeviceCode<T>(codeHash: string, decide: (r: DeviceRequestRecord) => PollOutcome<T>): Promise<{ request: DeviceRequestRecord; result: T } | undefined> {
    return this.polls.poll(codeHash, decide);
  }

  redeemDeviceCode(requestId: number, token: NodeTokenRecord, audit: NewAuditEvent): Promise<AuditEvent | undefined> {
    return redeemDeviceCode(this.onPool, requestId, token, audit);
  }

  decideNodeRequest(
    find: { requestId: number } | { userCode: string },
    plan: (request: DeviceRequestRecord, node: NodeRecord) => DecisionPlan,
  ): Promise<{ request: DeviceRequestRecord; node: NodeRecord; audit: AuditEvent[] } | undefined> {
    return decideNodeRequest(this.onPool, this.cipher, find, plan);
  }

  getNodeTokenWithNode(tokenHash: string): Promise<NodeTokenWithNode | undefined> {
    return getNodeTokenWithNode(this.onPool, this.cipher, tokenHash);
  }

  recordConfigDownloadAudited(id: string, at: number, ip: string, audit: NewAuditEvent): Promise<AuditEvent> {
    return recordConfigDownloadAudited(this.onPool, id, at, ip, audit);
  }

  recordCertificate(cert: NewCertificate, audit: NewAuditEvent[]): Promise<{ cert: CertificateRecord; audit: AuditEvent[] } | 'blocked'> {
    return this.certificates.record(cert, audit);
  }

  async databaseBytes(): Promise<number> {
    return (await this.query<{ n: number }>('SELECT pg_database_size(current_database()) AS n')).rows[0]?.n ?? 0;
  }

  /** Ends the pool once the clients checked out are back (fastify has finished its requests by then). */
  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }

  private async run<T>(fn: (tx: PostgresTx) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.withDedicatedClient(async (client, broke): Promise<{ value: T } | { retry: true }> => {
        const tx = new PostgresTx(client, this.roundTrips, this.cipher);
        try {
          this.roundTrips.count++;
          await client.query('BEGIN');
          const value = await fn(tx);
          this.roundTrips.count++;
          const done = await client.query('COMMIT');
          // COMMIT of a transaction a failed statement aborted answers ROLLBACK, not an error (docs: COMMIT)
          if (done.command === 'ROLLBACK') throw new Error('storage: the transaction was rolled back: a statement in it failed');
          return { value };
        } catch (e) {
          if (!isUnavailable(e)) {
            this.roundTrips.count++;
            await client.query('ROLLBACK').catch(broke);
          }
          if (isRetryable(e) && attempt < RETRIES) return { retry: true };
          throw e;
        } finally {
          tx.end();
        }
      });
      if ('value' in outcome) return outcome.value;
      // a little apart, so the transactions that collided do not meet again at once
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20 * (attempt + 1)));
    }
  }
}

export interface PostgresOptions {
  /** Seals the sealed columns (server/secrets/sealed-box.ts). */
  cipher: RowCipher;
  poolSize?: number;
  migrationsDir?: string;
  /** Where errors of idle pooled connections go (a server restart ends them all). */
  onIdleError?: (e: Error) => void;
}

/** Opens a pool to the database and brings its schema up to date; rejects with the server's (or the network's) error. */
export async function openPostgresStorage(url: DatabaseUrl, opts: PostgresOptions): Promise<PostgresStorage> {
  const pool = new pg.Pool(poolConfig(url, opts.poolSize ?? 10));
  // an idle client whose server went away: the pool drops it and makes a new one when asked
  pool.on('error', (e) => opts.onIdleError?.(e));
  try {
    await migratePostgres(pool, readMigrations(opts.migrationsDir ?? postgresMigrationsDir));
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw e;
  }
  return new PostgresStorage(pool, url.redacted, opts.cipher);
}
