// Loading a server config from disk (temporary files); the parsing rules are unit-tested beside
// the code in src/config/server.test.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadServerConfigFile } from '../../src/config/server.js';

const key = () => ({ id: 'alice', method: 'chacha20-ietf-poly1305', password: 'hunter2-very-secret' });

describe('server config', () => {
  it('loads a file and reports a missing one', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ladder-cfg-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const f = join(dir, 'server.json');
    writeFileSync(f, JSON.stringify({ port: 1234, keys: [key()], replayStateFile: 'replay.bin' }));
    const c = await loadServerConfigFile(f);
    assert.equal(c.port, 1234);
    assert.equal(c.replayStateFile, join(dir, 'replay.bin'));
    await assert.rejects(loadServerConfigFile(join(dir, 'nope.json')), /nope\.json: no such file$/);
  });
});
