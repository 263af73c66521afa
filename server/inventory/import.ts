// Inventory import (issue 13): a CSV file with a header row (uuid, mac, serial, profile, hostname,
// auto_approve) or JSON lines with the same keys, read into registrations. Every row is checked
// before anything is written and all problems come back at once with their lines; then the rows
// are written in one transaction (EnrollmentService.importRegistrations): all or nothing.
import { ApiError } from '../api-error.js';
import type { CheckedRegistration, EnrollmentService, ImportSummary, Registration, RowProblem } from '../enrollment/service.js';
import { CsvError, parseCsv } from './csv.js';

/** Rows per import: one transaction each, and a rack room is a few thousand machines. */
export const IMPORT_MAX_ROWS = 10_000;
/** Bytes per import body: 10,000 rows of about 150 bytes, with room to spare. */
export const IMPORT_MAX_BYTES = 4 * 1024 * 1024;

export const INVENTORY_COLUMNS = ['uuid', 'mac', 'serial', 'profile', 'hostname', 'auto_approve'] as const;
type Column = (typeof INVENTORY_COLUMNS)[number];

export type InventoryFormat = 'csv' | 'ndjson';

interface RawRow {
  line: number;
  values: Partial<Record<Column, string | boolean>>;
}

/** Rows of a CSV inventory: a header naming known columns (any order, each once, uuid or mac among them). */
function csvRows(text: string, problems: RowProblem[]): RawRow[] {
  let records;
  try {
    records = parseCsv(text);
  } catch (e) {
    if (e instanceof CsvError) {
      problems.push({ line: e.line, error: e.problem });
      return [];
    }
    throw e;
  }
  const header = records[0];
  if (!header) {
    problems.push({ line: 1, error: `the file is empty; it needs a header row (${INVENTORY_COLUMNS.join(',')})` });
    return [];
  }
  const columns = header.fields.map((f) => f.trim().toLowerCase());
  for (const [i, c] of columns.entries()) {
    if (!(INVENTORY_COLUMNS as readonly string[]).includes(c)) problems.push({ line: 1, error: `unknown column ${JSON.stringify(c.slice(0, 40))} (known: ${INVENTORY_COLUMNS.join(', ')})` });
    else if (columns.indexOf(c) !== i) problems.push({ line: 1, error: `column ${c} appears twice` });
  }
  if (!columns.includes('uuid') && !columns.includes('mac')) problems.push({ line: 1, error: 'the header needs a uuid or a mac column' });
  if (problems.length > 0) return [];
  const rows: RawRow[] = [];
  for (const r of records.slice(1)) {
    if (r.fields.length !== columns.length) {
      problems.push({ line: r.line, error: `${r.fields.length} fields; the header has ${columns.length}` });
      continue;
    }
    const values: RawRow['values'] = {};
    r.fields.forEach((f, i) => {
      if (f.trim() !== '') values[columns[i] as Column] = f.trim();
    });
    rows.push({ line: r.line, values });
  }
  return rows;
}

/** Rows of JSON lines: one object per line with the inventory keys; blank lines are skipped. */
function ndjsonRows(text: string, problems: RowProblem[]): RawRow[] {
  const rows: RawRow[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch {
      problems.push({ line, error: 'not valid JSON' });
      return;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      problems.push({ line, error: 'not a JSON object' });
      return;
    }
    const values: RawRow['values'] = {};
    for (const [k, val] of Object.entries(v)) {
      if (!(INVENTORY_COLUMNS as readonly string[]).includes(k)) {
        problems.push({ line, error: `unknown key ${JSON.stringify(k.slice(0, 40))} (known: ${INVENTORY_COLUMNS.join(', ')})` });
      } else if (val === null) {
        continue;
      } else if (k === 'auto_approve' ? typeof val !== 'boolean' : typeof val !== 'string') {
        problems.push({ line, error: `${k} must be ${k === 'auto_approve' ? 'true or false' : 'a string'}` });
      } else {
        values[k as Column] = val as string | boolean;
      }
    }
    rows.push({ line, values });
  });
  return rows;
}

function autoApproveOf(v: string | boolean | undefined): boolean | undefined {
  if (v === undefined || typeof v === 'boolean') return v ?? false;
  const s = v.toLowerCase();
  if (['true', 'yes', '1'].includes(s)) return true;
  if (['false', 'no', '0'].includes(s)) return false;
  return undefined;
}

/** Reads and checks an inventory; throws ApiError (400, every problem with its line) or imports it all. */
export async function importInventory(
  enrollment: EnrollmentService,
  text: string,
  format: InventoryFormat,
  actor: string,
  opts: { dryRun: boolean },
): Promise<ImportSummary & { rows: number }> {
  const problems: RowProblem[] = [];
  const raw = format === 'csv' ? csvRows(text, problems) : ndjsonRows(text, problems);
  if (raw.length > IMPORT_MAX_ROWS) throw new ApiError('invalid_request', `${raw.length} rows; at most ${IMPORT_MAX_ROWS} per import`);
  const checked: { line: number; reg: CheckedRegistration }[] = [];
  const lineOf = new Map<string, number>();
  for (const { line, values } of raw) {
    const autoApprove = autoApproveOf(values.auto_approve);
    if (autoApprove === undefined) {
      problems.push({ line, error: `auto_approve must be true or false, got ${JSON.stringify(String(values.auto_approve).slice(0, 20))}` });
      continue;
    }
    const str = (k: Column) => values[k] as string | undefined;
    const reg: Registration = { uuid: str('uuid'), mac: str('mac'), serial: str('serial'), profile: str('profile'), hostname: str('hostname'), autoApprove };
    try {
      const c = enrollment.checkRegistration(reg);
      // a node named twice: by its id, or a mac that another row registers
      for (const key of [c.id, ...(c.mac !== null && c.mac !== c.id ? [c.mac] : [])]) {
        const first = lineOf.get(key);
        if (first !== undefined) throw new ApiError('invalid_request', `${key} is on line ${first} already`);
      }
      lineOf.set(c.id, line);
      if (c.mac !== null) lineOf.set(c.mac, line);
      checked.push({ line, reg: c });
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      problems.push({ line, error: e.description });
    }
  }
  if (problems.length === 0 && checked.length === 0) problems.push({ line: 1, error: 'no rows to import' });
  if (problems.length > 0) {
    const shown = problems.slice(0, 100); // a file of 10,000 bad rows: the first 100 say enough
    throw new ApiError('invalid_request', `${problems.length} problem${problems.length === 1 ? '' : 's'} in the inventory; nothing was imported`, shown);
  }
  const summary = await enrollment.importRegistrations(checked, actor, opts.dryRun);
  return { ...summary, rows: checked.length };
}
