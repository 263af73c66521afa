// PEM (RFC 7468) as clients send it, read strictly: exactly one block with the expected label,
// nothing but white space around it, and base64 that decodes to exactly what it says. Node's base64
// decoder skips characters it does not know and stops at stray padding; a lax reader here would let
// two different texts mean the same key, or hide bytes that a later reader takes differently.

export class PemError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PemError';
  }
}

const BLOCK = /^\s*-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n([A-Za-z0-9+/=\r\n\t ]*)-----END ([A-Z0-9 ]{1,40})-----\s*$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The DER inside the one PEM block of `text`, whose label must be one of `labels`. */
export function decodePem(text: string, labels: string[]): { label: string; der: Buffer } {
  const m = BLOCK.exec(text);
  if (!m) throw new PemError(`not one PEM block (${labels.map((l) => `"${l}"`).join(' or ')})`);
  const [, begin = '', body = '', end = ''] = m;
  if (begin !== end) throw new PemError('the PEM BEGIN and END labels differ');
  if (!labels.includes(begin)) throw new PemError(`a PEM "${begin}" where ${labels.map((l) => `"${l}"`).join(' or ')} was expected`);
  const b64 = body.replace(/[\r\n\t ]+/g, '');
  if (!BASE64.test(b64)) throw new PemError('the PEM body is not valid base64');
  return { label: begin, der: Buffer.from(b64, 'base64') };
}
