/**
 * An idle managed server optimizes nothing (issue 15, idle RSS): its key enforcer reads the store
 * every 2 s, and when each read compiled its queries again, Kysely's query compiler (visitNode)
 * became hot enough within seconds for V8 to optimize it, which paged in some 3.5 MiB of the
 * optimizing compiler's code (src/store/compiled.ts, docs/benchmarks.md "Managed server idle
 * RSS"). The server runs under --trace-opt, idles through three evaluations after its start-up
 * (when bin/ladder.js turns the optimizer on), and must have optimized no function. No connection
 * is made to it (that would start the data plane).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { freePort } from '../helpers/net.js';
import { LADDER_BIN, managedServerArgv, spawnPeer } from '../helpers/peers.js';

const tmp = mkdtempSync(join(tmpdir(), 'ladder-idle-opt-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('an idle managed server optimizes no function (its periodic store reads compile nothing)', async () => {
  const port = await freePort();
  const args = await managedServerArgv(join(tmp, 'data'), port);
  const peer = await spawnPeer('managed', process.execPath, ['--trace-opt', LADDER_BIN, ...args], {
    maxOutput: 1024 * 1024,
  });
  try {
    for (let i = 0; !/"msg":"listening"/.test(peer.output()) && i < 600; i++) {
      assert.ok(!peer.exited, `the server exited:\n${peer.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(peer.output(), /"msg":"listening"/, 'the server never said it listens');
    await new Promise((r) => setTimeout(r, 7000)); // three key evaluations (every 2 s)
    const optimized = peer
      .output()
      .split('\n')
      .filter((l) => l.startsWith('[completed optimizing'));
    assert.deepEqual(optimized, [], 'functions optimized while idle');
  } finally {
    await peer.stop();
  }
});
