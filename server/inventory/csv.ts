// A small strict CSV reader (RFC 4180): records end at CRLF (a bare LF is taken too, as most tools
// write it), fields are separated by commas, a field in double quotes may hold commas, line breaks
// and doubled quotes (""). Strict where the RFC is: a quote inside an unquoted field, text after a
// closing quote and an unterminated quote are errors naming their line, never guessed at (records
// of different lengths are for the caller, who knows the header, to refuse). No dependency: the gate reads one kind of file, an inventory.

export class CsvError extends Error {
  constructor(
    readonly line: number,
    readonly problem: string,
  ) {
    super(`line ${line}: ${problem}`);
    this.name = 'CsvError';
  }
}

export interface CsvRecord {
  /** The line the record starts on, from 1 (a quoted field may run over several). */
  line: number;
  fields: string[];
}

/** Every record of the text, the header included; one empty line at the end is no record. */
export function parseCsv(text: string): CsvRecord[] {
  const src = text.startsWith('\ufeff') ? text.slice(1) : text; // the byte order mark spreadsheets write
  const records: CsvRecord[] = [];
  let line = 1;
  let i = 0;
  while (i < src.length) {
    const start = line;
    const fields: string[] = [];
    for (;;) {
      let field = '';
      if (src[i] === '"') {
        i++;
        for (;;) {
          if (i >= src.length) throw new CsvError(start, 'a quoted field is not closed');
          const ch = src[i] as string;
          if (ch === '"') {
            if (src[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (ch === '\n') line++;
          field += ch;
          i++;
        }
        const next = src[i];
        if (next !== undefined && next !== ',' && next !== '\n' && !(next === '\r' && src[i + 1] === '\n')) {
          throw new CsvError(line, 'text after the closing quote of a field');
        }
      } else {
        while (i < src.length && src[i] !== ',' && src[i] !== '\n' && !(src[i] === '\r' && src[i + 1] === '\n')) {
          if (src[i] === '"') throw new CsvError(line, 'a quote inside an unquoted field (quote the whole field and double the quote)');
          if (src[i] === '\r') throw new CsvError(line, 'a carriage return outside quotes that ends no line');
          field += src[i];
          i++;
        }
      }
      fields.push(field);
      if (src[i] === ',') {
        i++;
        continue;
      }
      // end of the record: CRLF, LF or the end of the text
      if (src[i] === '\r') i++;
      if (src[i] === '\n') {
        i++;
        line++;
      }
      break;
    }
    records.push({ line: start, fields });
  }
  return records;
}
