import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newSigningKey } from '../../server/operators/signing-keys.js';
import { runCli } from '../helpers/cli.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';

// `talos-gate keys retire` of a kid that begins with '-' (a base64url thumbprint does, one in 64;
// CI once drew one): taken after `--`, and without it the error says so. The kid here begins with
// '-c', the hardest case: without `--` a parser reads it as `-c` (the config flag) with a value.

describe('keys retire of a kid that begins with a dash', () => {
  let g: TestGate;
  const kid = '-cDashLedKidForTheTest0123456789abcdefghijk';

  before(async () => {
    g = await startTestGate();
    const key = await newSigningKey(Date.now() - 60_000, Date.now() - 60_000);
    // an older key, verifying only: the gate's own signs (it activated later)
    assert.ok(await g.gate.storage.addSigningKey({ ...key, kid, createdAt: 1, activatesAt: 1 }, Date.now()));
  });
  after(() => g.close());

  const cli = async (args: string[]) => {
    const r = runCli(args);
    return { code: await r.exit, out: r.stdout(), err: r.stderr() };
  };

  test('without --: a usage error that says where the kid goes; nothing deleted', async () => {
    const r = await cli(['keys', 'retire', '-pDashLed', '--config', g.configFile]);
    assert.equal(r.code, 2, 'a usage error');
    assert.match(r.err, /unknown option '-pDashLed'/);
    assert.match(r.err, /goes after --: talos-gate keys retire --config FILE -- KID/);
    assert.ok((await g.gate.storage.listSigningKeys()).some((k) => k.kid === kid));
  });

  test('after --: listed, then retired', async () => {
    const list = await cli(['keys', 'list', '--config', g.configFile]);
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, new RegExp(`^${kid}  created .*verifying until its tokens expire$`, 'm'));
    const r = await cli(['keys', 'retire', '--config', g.configFile, '--', kid]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `${kid} deleted\n`);
    assert.ok(!(await g.gate.storage.listSigningKeys()).some((k) => k.kid === kid));
  });
});
