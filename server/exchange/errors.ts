// Why an exchange was refused. `reason` is safe to show the client; `detail` goes only to the audit log.

export type ExchangeErrorKind = 'invalid_request' | 'invalid_token' | 'forbidden' | 'unavailable' | 'not_configured' | 'bad_gateway';

const STATUS: Record<ExchangeErrorKind, number> = {
  invalid_request: 400,
  invalid_token: 401,
  forbidden: 403,
  // something the gate depends on (the IdP, the Talos API) cannot be reached: try again later
  unavailable: 503,
  not_configured: 404,
  // the Talos API answered, but with a refusal or a certificate the gate will not hand on (RFC 9110 §15.6.3)
  bad_gateway: 502,
};

export class ExchangeError extends Error {
  readonly status: number;
  constructor(
    readonly kind: ExchangeErrorKind,
    readonly reason: string,
    readonly detail: string = reason,
    /** For `unavailable`: sent as Retry-After (RFC 9110 §10.2.3), so clients back off instead of hammering. */
    readonly retryAfterSeconds?: number,
  ) {
    super(`${kind}: ${reason}`);
    this.name = 'ExchangeError';
    this.status = STATUS[kind];
  }
}
