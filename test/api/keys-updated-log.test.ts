import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startManaged, type ManagedFlags } from '../../src/cli/managed.js';
import { createLogger } from '../../src/shared/logger.js';
import { createAccessKeys } from '../../src/store/index.js';
import { freePort } from '../helpers/net.js';
import { flags } from './managed-helpers.js';

/**
 * The managed server says "keys updated" once at start, with every key it serves: it said it
 * once per in-process server as each got its keys (an additional key port's plane with 0, then
 * its 1 key, then the web front's server with all 3), which read as three changes with three
 * different counts. Three keys, one on a second port, with the web front on.
 */
test('the managed server logs "keys updated" once at start, with the final count', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-keys-updated-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [p1, p2] = [await freePort(), await freePort()];
  const f: ManagedFlags = { ...flags(dir), port: String(p1), metrics: false };
  const quiet = createLogger({ level: 'silent' });
  const first = await startManaged(f, quiet, { drawQr: false });
  try {
    await createAccessKeys(first.store, { method: 'chacha20-ietf-poly1305', name: 'same port' });
    await createAccessKeys(first.store, { method: 'chacha20-ietf-poly1305', name: 'other', port: p2 });
  } finally {
    await first.close();
  }

  const lines: string[] = [];
  const log = createLogger({ level: 'info', destination: { write: (l: string) => lines.push(l) } as never });
  const m = await startManaged({ ...f, webPort: '0', webHost: '127.0.0.1' }, log, { drawQr: false });
  t.after(() => m.close());
  assert.ok(m.pool.ports.includes(p2), 'the second key port is served (the case that logged more)');
  const said = lines
    .map((l) => JSON.parse(l) as { msg: string; keys?: number })
    .filter((l) => l.msg === 'keys updated');
  assert.deepEqual(
    said.map((l) => l.keys),
    [3],
    lines.join(''),
  );
});
