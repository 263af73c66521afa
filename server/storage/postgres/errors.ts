// PostgreSQL's failures sorted into what the gate does about them: a database out of reach becomes
// StorageUnavailableError (503 with Retry-After; the pool reconnects by itself), a unique key taken
// becomes AlreadyExistsError at the operation, a serialization failure or deadlock is tried again.
// SQLSTATE codes: PostgreSQL docs appendix A, "PostgreSQL Error Codes".
import { StorageUnavailableError } from '../storage.js';

/** Node's socket errors for a server that cannot be reached or went away. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

/**
 * Server states that pass: class 08 (connection exception), 57P01 admin_shutdown, 57P02
 * crash_shutdown, 57P03 cannot_connect_now (starting up, in recovery), 53300 too_many_connections.
 */
const SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);

/** node-postgres' own words for a connection lost or never made (it gives these no code). */
const PG_MESSAGES = /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended|not queryable/i;

function codeOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

export function isUnavailable(e: unknown): boolean {
  if (e instanceof StorageUnavailableError) return true;
  // Node 20 tries every address of a name (IPv6 and IPv4 of localhost): all refused is an AggregateError
  if (e instanceof AggregateError) return e.errors.some(isUnavailable);
  const code = codeOf(e);
  if (code !== undefined && (SOCKET_CODES.has(code) || SQLSTATES.has(code) || code.startsWith('08'))) return true;
  return e instanceof Error && PG_MESSAGES.test(e.message);
}

/** The error as the gate sees it: StorageUnavailableError when the database is out of reach. */
export function storageError(e: unknown): unknown {
  if (e instanceof StorageUnavailableError || !isUnavailable(e)) return e;
  const code = codeOf(e);
  const message = e instanceof AggregateError ? (e.errors[0] as Error | undefined)?.message ?? 'connection failed' : (e as Error).message;
  return new StorageUnavailableError(code && !message.includes(code) ? `${message} (${code})` : message, { cause: e });
}

/** 40001 serialization_failure, 40P01 deadlock_detected: the transaction may succeed when run again. */
export function isRetryable(e: unknown): boolean {
  const code = codeOf(e);
  return code === '40001' || code === '40P01';
}

/** 23505 unique_violation. */
export function isUniqueViolation(e: unknown): boolean {
  return codeOf(e) === '23505';
}
