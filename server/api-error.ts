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
  ) {
    super(`${error}: ${description}`);
    this.name = 'ApiError';
    this.status = STATUS[error];
  }
}
