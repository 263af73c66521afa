// What start-up does with the check's findings: a gate whose database holds values its secrets
// cannot open does not start (ConfigError naming secrets.system and the rows), so it never answers a
// node with a config it could not read.
import { ConfigError } from '../config/schema-kit.js';
import type { StorageTx } from '../storage/storage.js';
import { checkSealedValues, describeUnreadable } from './check.js';
import type { SealedBox } from './sealed-box.js';

export async function refuseUnreadableValues(storage: StorageTx, box: SealedBox, source: string): Promise<void> {
  const problems = describeUnreadable(await checkSealedValues(storage, box));
  if (problems.length > 0) {
    throw new ConfigError(source, 'secrets.system', `the database holds values these secrets cannot open, so the gate does not start:\n  ${problems.join('\n  ')}`);
  }
}
