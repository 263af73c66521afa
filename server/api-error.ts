import { AlreadyExistsError, NotFoundError } from './storage/storage.js';

// Errors of the gate's own JSON API (admin endpoints, /config). Same wire shape as OAuth errors,
// written by the one error handler in server/plugins/errors.ts.

export type ApiErrorCode = 'invalid_request' | 'unauthorized' | 'forbidden' | 'not_found' | 'conflict' | 'invalid_config' | 'too_many_requests';

const STATUS: Record<ApiErrorCode, number> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  invalid_config: 422,
  too_many_requests: 429,
};

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly error: ApiErrorCode,
    readonly description: string,
    /** Itemized problems, e.g. the refused rows of an import with their lines; on the wire as `errors`. */
    readonly details?: readonly unknown[],
  ) {
    super(`${error}: ${description}`);
    this.name = 'ApiError';
    this.status = STATUS[error];
  }
}

/**
 * A client's mistake as its wire code and description, or undefined for anything else (the
 * database gone, a bug): the one mapping that the error handler (server/plugins/errors.ts) and the
 * per-item results of bulk decisions (server/enrollment/bulk-decisions.ts) share.
 */
export function clientErrorOf(e: unknown): { error: ApiErrorCode; description: string } | undefined {
  if (e instanceof ApiError) return { error: e.error, description: e.description };
  // a record gone between a service's read and its write (a node forgotten while it was approved)
  if (e instanceof NotFoundError) return { error: 'not_found', description: e.message };
  if (e instanceof AlreadyExistsError) return { error: 'conflict', description: e.message };
  return undefined;
}
