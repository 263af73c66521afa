// Why an exchange was refused. `reason` is safe to show the client; `detail` goes only to the audit log.

export type ExchangeErrorKind = 'invalid_request' | 'invalid_token' | 'forbidden' | 'unavailable' | 'not_configured';

const STATUS: Record<ExchangeErrorKind, number> = {
  invalid_request: 400,
  invalid_token: 401,
  forbidden: 403,
  unavailable: 503,
  not_configured: 404,
};

export class ExchangeError extends Error {
  readonly status: number;
  constructor(
    readonly kind: ExchangeErrorKind,
    readonly reason: string,
    readonly detail: string = reason,
  ) {
    super(`${kind}: ${reason}`);
    this.name = 'ExchangeError';
    this.status = STATUS[kind];
  }
}
