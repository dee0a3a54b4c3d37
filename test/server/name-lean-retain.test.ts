/**
 * A relaying name connection on the lean path keeps nothing of its first read in JS (review17):
 * LeanConnection.startName keeps `#initial` (a view of the first read's whole plaintext, up to
 * 64 KiB) and `#codec` for dialName's next address, and nothing drops them once the relay runs,
 * so each held socks5h connection keeps its first read for its whole life. An IP connection
 * keeps none. 100 connections held open, each with 32 KiB of initial data: the ArrayBuffer
 * memory of the server's process may be at most 4 KiB per connection more for names than for IPs.
 *
 * (review17; src/server/names.ts dialName drops the start function once the last address started.)
 */
import net from 'node:net';
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { encodeAddress, toSocksAddress } from '../../src/protocol/socks5/address.js';
import { leanPathServed } from '../../src/server/lean-path.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { KEYS, M, startServer } from '../helpers/name-server.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// V8's collector on demand (what --expose-gc gives): the figure is what stays reachable.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const N = 100;
const DATA = Buffer.alloc(32 * 1024, 0x61);
const master = evpBytesToKey(KEYS[0]!.secret, M.keySize);

/** ArrayBuffer bytes held with N connections to `host` open (each sent DATA and got it back). */
async function held(host: string, echo: TestServer): Promise<{ bytes: number; lean: number }> {
  const r = await startServer(true, { lookup: () => ['127.0.0.1'] });
  const lean = leanPathServed();
  const sockets: net.Socket[] = [];
  try {
    gc();
    const base = process.memoryUsage().arrayBuffers;
    let back = 0;
    for (let i = 0; i < N; i++) {
      const s = net.connect({ port: r.port, host: '127.0.0.1' });
      s.on('error', () => {});
      s.on('data', (b: Buffer) => void (back += b.length));
      const head = encodeAddress(toSocksAddress(host, echo.port));
      s.write(new AeadEncoder(M, master).encode(Buffer.concat([head, DATA])));
      sockets.push(s);
    }
    await waitFor(() => back >= N * DATA.length, { timeoutMs: 10_000 }); // every relay ran
    await sleep(100);
    gc();
    await sleep(50);
    gc();
    return { bytes: process.memoryUsage().arrayBuffers - base, lean: leanPathServed() - lean };
  } finally {
    for (const s of sockets) s.destroy();
    await r.server.close();
  }
}

describe('a held name connection on the lean path', () => {
  let echo: TestServer;
  before(async () => void (echo = await startEcho()));
  after(async () => echo.close());

  it('keeps no more of its first read than an IP connection', async () => {
    const ip = await held('127.0.0.1', echo);
    const name = await held('held.test', echo);
    assert.deepEqual([ip.lean, name.lean], [N, N], 'both took the lean path');
    const more = (name.bytes - ip.bytes) / N;
    assert.ok(
      more <= 4096,
      `a name connection holds ${Math.round(more)} bytes more than an IP one (limit 4096)`,
    );
  });
});
