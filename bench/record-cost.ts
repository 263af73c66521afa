import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { AuditLog } from '../server/audit.js';
import { randomSerial } from '../server/pki/x509.js';
import { SealedBox } from '../server/secrets/sealed-box.js';
import { openSqliteStorage } from '../server/storage/sqlite/index.js';

// The exchange's record alone: what the storage costs per exchange, without HTTP, TLS or signatures
// around it, so a change to the schema or the transaction code shows up here in microseconds where
// the exchange section's rounds (±20 % on a shared machine) cannot resolve it. The real SQLite file
// and schema, the real Storage.recordCertificate (block check, certificate row, auth_success and
// cert_issued audit rows, in the group commit's savepoints), in groups of as many exchanges as the
// exchange section's clients ask for at once.

export interface RecordCost {
  exchanges: number;
  group: number;
  cpu_us_per_exchange: number;
  wall_us_per_exchange: number;
}

export async function recordCost(dir: string, exchanges: number, group: number): Promise<RecordCost> {
  const storage = openSqliteStorage(join(dir, 'record-cost.db'), { cipher: new SealedBox([randomBytes(32).toString('hex')]) });
  const audit = new AuditLog(storage, Date.now);
  try {
    const one = (i: number) => {
      const now = Date.now();
      const sub = `operator-${i % 50}`;
      const serial = randomSerial(now).toString('hex');
      const fingerprint = randomBytes(32).toString('hex');
      const roles = ['os:operator'];
      return storage.recordCertificate(
        { serial, fingerprint, subject: sub, email: `${sub}@example.com`, commonName: sub, issuer: 'https://idp.example.com', roles, issuedAt: now, expiresAt: now + 300_000, clientIp: '192.0.2.7', source: 'id_token' },
        [
          audit.event({ type: 'auth_success', subject: sub, ip: '192.0.2.7', detail: { email: `${sub}@example.com`, roles } }),
          audit.event({ type: 'cert_issued', subject: sub, ip: '192.0.2.7', detail: { serial, fingerprint, common_name: sub, roles, expires_at: new Date(now + 300_000).toISOString(), signer: 'ca-file' } }),
        ],
      );
    };
    // warm-up: compiled code and a table that is not empty
    for (let i = 0; i < exchanges / 10; i += group) await Promise.all(Array.from({ length: group }, (_, k) => one(i + k)));
    const cpu = process.cpuUsage();
    const start = process.hrtime.bigint();
    for (let i = 0; i < exchanges; i += group) await Promise.all(Array.from({ length: group }, (_, k) => one(i + k)));
    const wallUs = Number(process.hrtime.bigint() - start) / 1000;
    const used = process.cpuUsage(cpu);
    const round = (x: number) => Math.round(x * 10) / 10;
    return { exchanges, group, cpu_us_per_exchange: round((used.user + used.system) / exchanges), wall_us_per_exchange: round(wallUs / exchanges) };
  } finally {
    await storage.close();
  }
}
