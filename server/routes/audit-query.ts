/**
 * The audit trail's filters as a query string carries them (GET /api/v1/audit and the web page's
 * GET /audit): exact matches, bounded in length (reports.ts auditPage reads them), and the page start.
 */
export const AUDIT_QUERY_PROPERTIES = {
  before: { type: 'integer', minimum: 1 },
  type: { type: 'string', maxLength: 64 },
  subject: { type: 'string', maxLength: 256 },
  actor: { type: 'string', maxLength: 256 },
} as const;
