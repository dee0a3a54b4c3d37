// `kill -9` under traffic loses at most about 1 s of usage, and usage is written in batches (a few
// commits a second), not once per packet (issue 14, item 5). A real managed server in a child
// process, a real tunnel through it to a loopback sink, the real SQLite file read afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { parseSsUrl } from '../../src/protocol/sip002/index.js';
import { openStore, parseStoreLocation } from '../../src/store/index.js';
import { tempDir } from '../api/helpers.js';
import { run, waitForStdout } from '../helpers/cli-run.js';
import { managedServerArgs } from '../helpers/ladder-run.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { sleep, waitFor } from '../helpers/wait.js';

/** Transactions committed to a WAL file so far: frames whose header carries a database size. */
function walCommits(wal: string): number {
  if (!existsSync(wal)) return 0;
  const buf = readFileSync(wal);
  if (buf.length < 32) return 0;
  const pageSize = buf.readUInt32BE(8);
  let n = 0;
  for (let o = 32; o + 24 + pageSize <= buf.length; o += 24 + pageSize)
    if (buf.readUInt32BE(o + 4) !== 0) n++;
  return n;
}

/** A loopback sink that counts what arrives, with a timeline of (ms, bytes). */
async function sink(t: { after: (fn: () => Promise<void>) => void }) {
  let bytes = 0;
  const timeline: Array<[number, number]> = [];
  const srv: Server = createServer((s) =>
    s.on('data', (c: Buffer) => {
      bytes += c.length;
      timeline.push([Date.now(), bytes]);
    }),
  );
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => srv.close(() => r())));
  return { port: (srv.address() as AddressInfo).port, timeline, bytes: () => bytes };
}

test('kill -9 under traffic loses at most ~1 s of usage; usage commits are batched', async (t) => {
  const dir = tempDir(t);
  const target = await sink(t);
  const server = run([...managedServerArgs(dir), '--public-host', '127.0.0.1', '--allow-private'], {
    env: { LADDER_LOG_LEVEL: 'warn' },
  });
  t.after(() => {
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
  });
  const url = (await waitForStdout(server, /^\s+(ss:\/\/\S+)$/m, 60_000))[1]!;
  const key = parseSsUrl(url);
  const tunnel = await openTestTunnel({
    port: key.port,
    method: key.method,
    password: key.password,
    target: { host: '127.0.0.1', port: target.port },
  });
  t.after(() => tunnel.destroy());

  // A steady stream (~6 MB/s offered), paced and bounded: 32 KiB every 5 ms, never more than
  // 1 MiB waiting in the socket.
  const chunk = Buffer.alloc(32 * 1024, 7);
  let sending = true;
  const pump = (async () => {
    const until = Date.now() + 30_000;
    while (sending && Date.now() < until) {
      if (tunnel.socket.writableLength < 1 << 20) tunnel.send(chunk);
      await sleep(5);
    }
  })();
  await waitFor(() => target.bytes() > 2_000_000, { timeoutMs: 20_000, message: 'traffic flows' });
  const wal = join(dir, 'ladder.db-wal');
  const commits0 = walCommits(wal);
  const t0 = Date.now();
  await sleep(3000);
  const commits1 = walCommits(wal);
  const writeSeconds = (Date.now() - t0) / 1000;
  server.child.kill('SIGKILL');
  const killedAt = Date.now();
  await server.exit;
  sending = false;
  await pump;
  const relayed = target.bytes();

  const store = await openStore(parseStoreLocation(undefined, dir));
  let stored: number;
  try {
    const usage = await store.usageSince(0);
    stored = [...usage.values()].reduce((a, u) => a + u.up, 0);
  } finally {
    await store.close();
  }
  // The stored count is of wire bytes (salt, lengths and tags included); the sink counts payload.
  // Payload of one full chunk is 16383 bytes and costs 16383 + 34 on the wire.
  const storedPayload = Math.floor((stored * 16383) / (16383 + 34));
  // When did the sink have what the store holds? The usage lost is the traffic since then.
  const covered = target.timeline.find(([, b]) => b >= storedPayload)?.[0] ?? killedAt;
  const lostMs = Math.max(0, killedAt - covered);
  const lostBytes = Math.max(0, relayed - storedPayload);
  const rate = (commits1 - commits0) / writeSeconds;
  t.diagnostic(
    `relayed ${relayed} B, stored ${storedPayload} B (payload), lost ${lostBytes} B = ${lostMs} ms of traffic; ` +
      `usage commits ${commits1 - commits0} in ${writeSeconds.toFixed(1)} s = ${rate.toFixed(1)}/s ` +
      `while ${Math.round(relayed / 1e6)} MB passed in ~${Math.round(relayed / 32768)} writes`,
  );
  assert.ok(stored > 0, 'usage was stored before the crash');
  // Target ≤ 1 s (400 ms meter + 500 ms store flush + the commit); +500 ms margin for a loaded machine's timers.
  assert.ok(lostMs <= 1500, `lost ${lostMs} ms of usage (${lostBytes} B)`);
  // Batched: a handful of commits a second, never one per packet (thousands passed meanwhile).
  assert.ok(commits1 - commits0 >= 1, 'usage was committed while traffic flowed');
  assert.ok(rate <= 5, `usage commits per second: ${rate}`);
});
