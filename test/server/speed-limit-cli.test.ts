/**
 * A speed limit as an operator sets it: `ladder server --config FILE` (from dist, two workers)
 * with `"speedLimit": "4Mbit"` on one key, and `ladder client` as a user runs it. A download
 * through the limited key takes at least (size - burst) / rate; the same download through the
 * key without a limit on the same server is much faster.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { burstBytes } from '../../src/server/speed-limits.js';
import { readExactly, startSource, u64, type TestServer } from '../helpers/net.js';
import { startLadderClient, startLadderServer, type Peer } from '../helpers/peers.js';
import { socks5Connect } from '../helpers/socks5.js';

const RATE = 500_000; // 4Mbit
const SIZE = 1_500_000;
const BOUND_MS = ((SIZE - burstBytes(RATE)) / RATE) * 1000;
const METHOD = 'chacha20-ietf-poly1305';
const LIMITED = `lim-${randomBytes(6).toString('hex')}`;
const FREE = `free-${randomBytes(6).toString('hex')}`;
const DIST = { LADDER_DIST: '1' }; // the built server, as installed

let dir: string;
let server: Peer & { port: number };
let source: TestServer;
const peers: Peer[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ladder-speed-'));
  const config = join(dir, 'server.json');
  writeFileSync(
    config,
    JSON.stringify({
      workers: 2,
      keys: [
        { id: 'limited', method: METHOD, password: LIMITED, speedLimit: '4Mbit' },
        { id: 'free', method: METHOD, password: FREE },
      ],
    }),
  );
  source = await startSource({ hash: false });
  server = await startLadderServer({ config, env: DIST });
  peers.push(server);
});
after(async () => {
  await Promise.all([...peers.map((p) => p.stop()), source.close()]);
  rmSync(dir, { recursive: true, force: true });
});

/** SIZE bytes from the source through a `ladder client` of `password`: the ms the body took. */
async function download(password: string): Promise<number> {
  const key = formatSsUrl({ method: METHOD, password, host: '127.0.0.1', port: server.port });
  const client = await startLadderClient({ key, env: DIST });
  peers.push(client);
  const s = await socks5Connect({ proxyPort: client.socksPort, host: '127.0.0.1', port: source.port });
  try {
    const t0 = Date.now();
    s.write(u64(SIZE));
    await readExactly(s, SIZE, 20_000);
    return Date.now() - t0;
  } finally {
    s.destroy();
  }
}

it('a key with "speedLimit": "4Mbit" downloads at most at that rate; a key without one on the same server, much faster', async () => {
  const ms = await download(LIMITED);
  assert.ok(ms >= BOUND_MS, `limited download took ${ms} ms, at least ${BOUND_MS} expected`);
  assert.ok(ms < BOUND_MS + 6000, `limited download took ${ms} ms`);
  const fast = await download(FREE);
  assert.ok(fast < BOUND_MS / 2, `unlimited download took ${fast} ms`);
});
