/**
 * The bare tunnel in the addon (src/client/bare-tunnel.ts, native/client_bare.cc): the first
 * write on the wire is the lean tunnel's, byte for byte, for the same seeded (shaped) salts; a
 * first write shaping would split, and a name that is not ASCII, go to the lean tunnel; the salt
 * pool refills from the connection that found it empty; the idle timeout closes a quiet tunnel;
 * nothing is left after hundreds of connections. answer-watch's findings and the dial failures
 * are compared with the lean tunnel's in lean-tunnel.test.ts.
 */
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { makeShapedSalt } from '../../src/protocol/shadowsocks/shaping.js';
import { nativeRelay, nativeSocksFront } from '../../src/transport/native-sockets.js';
import { serve } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { socks5Connect } from '../helpers/socks5.js';
import { startEchoServer, startTunnelFront, type TunnelFront } from '../helpers/tunnel-front.js';
import { sleep, waitFor } from '../helpers/wait.js';

const METHOD = 'aes-256-gcm';
const PASSWORD = 'client-bare-tunnel-pw';
const fns = nativeSocksFront() as unknown as Record<string, unknown> | undefined;
const skip = skipUnless(
  fns !== undefined && typeof fns.bareTunnels === 'function',
  'the native addon with bareTunnels (Linux; npm run build:native)',
);

/**
 * A seeded rng: the same bytes for the same `seed`, so both paths draw the same salts in the same
 * order (a seed is used against the echo server once: it refuses a salt it saw, as a replay).
 */
function seededRng(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  return (n) => {
    const out = Buffer.alloc(n);
    for (let off = 0; off < n; off += 32) {
      createHash('sha256').update(`${seed}-${counter++}`).digest().copy(out, off);
    }
    return out;
  };
}

let seeds = 0;

function start(
  serverPort: number,
  bare: boolean,
  extra: { idleTimeoutMs?: number; seed?: string } = {},
): Promise<TunnelFront> {
  const rng = seededRng(extra.seed ?? `bare-${seeds++}`);
  return startTunnelFront({
    serverPort,
    method: METHOD,
    password: PASSWORD,
    noAnswerMs: 10_000,
    fns,
    lean: true,
    bare,
    saltFactory: (n) => makeShapedSalt(n, { rng }),
    ...(extra.idleTimeoutMs ? { idleTimeoutMs: extra.idleTimeoutMs } : {}),
  });
}

/** One CONNECT to host:port sending `data`; resolves once `until()` holds, then closes. */
async function send(f: TunnelFront, host: string, data: Buffer, until: () => boolean): Promise<void> {
  const s = await socks5Connect({ proxyPort: f.port, host, port: 9 });
  s.on('error', () => {});
  s.resume();
  s.write(data);
  await waitFor(until, { timeoutMs: 5000 });
  s.destroy();
}

describe('bare tunnel in the addon', { skip, timeout: 120_000 }, () => {
  /** The echo, and the Ladder server that reaches it (one for the suite). */
  const up = { echoPort: 0, ssPort: 0, stop: async (): Promise<void> => {} };
  before(async () => {
    const e = await startEchoServer(METHOD, PASSWORD);
    Object.assign(up, { echoPort: e.echo.port, ssPort: e.ssPort, stop: e.close });
  });
  after(() => up.stop());

  it("the first write is the lean tunnel's, byte for byte, for the same salts", async () => {
    // 1, 100, 1000 and 16,000 bytes after an IPv4 request (one chunk each), a name's request.
    const cases: [string, number][] = [
      ['127.0.0.1', 1],
      ['127.0.0.1', 100],
      ['127.0.0.1', 1000],
      ['127.0.0.1', 16_000],
      ['example.com', 5],
    ];
    const wire: Buffer[][] = [];
    for (const bare of [true, false]) {
      const got: Buffer[] = [];
      const conns: Buffer[][] = [];
      const recorder = await serve((s) => {
        const mine: Buffer[] = [];
        conns.push(mine);
        s.on('data', (b: Buffer) => mine.push(b));
        s.on('error', () => {});
      });
      const f = await start(recorder.port, bare, { seed: 'first-write' });
      try {
        for (const [k, [host, n]] of cases.entries()) {
          const data = Buffer.alloc(n, 0x61 + (n % 26));
          const header = host === 'example.com' ? 4 + host.length : 7;
          const want = 32 + 34 + header + n;
          await send(f, host, data, () => conns.length > k && Buffer.concat(conns[k]!).length >= want);
          got.push(Buffer.concat(conns[k]!));
          assert.equal(got.at(-1)!.length, want, `${host} ${n}: one chunk`);
        }
        assert.equal(f.front.bare?.started ?? 0, bare ? cases.length : 0, 'the addon took them');
        assert.equal(f.front.leaned, bare ? 0 : cases.length);
        await waitFor(() => f.front.size === 0, { timeoutMs: 5000 });
      } finally {
        f.close();
        await recorder.close();
      }
      wire.push(got);
    }
    assert.deepEqual(wire[0], wire[1]);
  });

  it('a first write shaping splits goes to the lean tunnel, a name that is not ASCII to JS', async () => {
    const f = await start(up.ssPort, true);
    try {
      // 89 bytes after an IPv4 request: 32 + 7 + 89 + 34 = 162 is in the prober's trigger.
      const a = await socks5Connect({ proxyPort: f.port, host: '127.0.0.1', port: 9 });
      a.on('error', () => {});
      a.resume();
      a.write(Buffer.alloc(89, 1));
      await waitFor(() => f.front.leaned === 1, { timeoutMs: 5000 });
      a.destroy();
      // The lean tunnel declines it too: the full path (#plan) takes it.
      const b = await socks5Connect({ proxyPort: f.port, host: 'bücher.example', port: 9 });
      b.on('error', () => {});
      b.resume();
      b.write('abc');
      await sleep(300);
      b.destroy();
      assert.equal(f.front.leaned, 1);
      assert.equal(f.front.bare?.started, 0);
      await waitFor(() => f.front.size === 0, { timeoutMs: 5000 });
    } finally {
      f.close();
    }
  });

  it('the salt pool refills: 300 echoes, the 257th through the lean tunnel, nothing left', async () => {
    const relay = nativeRelay();
    const f = await start(up.ssPort, true);
    try {
      for (let i = 0; i < 300; i++) {
        const s = await socks5Connect({ proxyPort: f.port, host: '127.0.0.1', port: up.echoPort });
        s.on('error', () => {});
        let got = '';
        s.on('data', (b: Buffer) => (got += b.toString()));
        s.resume();
        s.write(`ping${i}`);
        await waitFor(() => got === `ping${i}`, { timeoutMs: 5000 });
        s.destroy();
      }
      assert.equal(f.front.bare?.started, 299);
      assert.equal(f.front.leaned, 1);
      await waitFor(() => f.front.size === 0 && f.front.bare?.live === 0, { timeoutMs: 5000 });
      await waitFor(() => relay?.relayLive() === 0, { timeoutMs: 5000 });
      assert.deepEqual(f.lines(), [], 'nothing told');
    } finally {
      f.close();
    }
  });

  it("the idle timeout closes a quiet tunnel, as the lean tunnel's", async () => {
    for (const bare of [true, false]) {
      const f = await start(up.ssPort, bare, { idleTimeoutMs: 300 });
      try {
        const s = await socks5Connect({ proxyPort: f.port, host: '127.0.0.1', port: up.echoPort });
        s.on('error', () => {});
        let got = '';
        s.on('data', (b: Buffer) => (got += b.toString()));
        s.resume();
        s.write('ping');
        await waitFor(() => got === 'ping', { timeoutMs: 5000 });
        assert.equal(f.front.size, 1, `bare ${bare}: one tunnel`);
        const t0 = Date.now();
        await new Promise((r) => s.once('close', r));
        const quiet = Date.now() - t0;
        assert.ok(quiet >= 250 && quiet < 5000, `bare ${bare}: closed after ${quiet} ms`);
        await waitFor(() => f.front.size === 0, { timeoutMs: 5000 });
        assert.equal(f.front.bare?.started ?? 0, bare ? 1 : 0);
        await sleep(50);
      } finally {
        f.close();
      }
    }
  });
});
