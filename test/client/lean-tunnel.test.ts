/**
 * The client's lean tunnel (src/client/lean-tunnel.ts, LADDER_CLIENT_LEAN) and the bare tunnel
 * in the addon (bare-tunnel.ts, native/client_bare.cc, LADDER_CLIENT_NATIVE_TUNNEL): every case
 * runs three ways (the addon's bare tunnel; the lean path with it off; both off), on real
 * sockets to a real server and misbehaving peers, and what the application and the person see
 * must be the same every way: the bytes back, answer-watch's lines, the dial-failure lines, the
 * tunnels counted and none left behind. Each way, the path named must have taken them (the
 * counts fail without it).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import type net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nativeSocksFront } from '../../src/transport/native-sockets.js';
import { freePort, serve, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { socks5Connect } from '../helpers/socks5.js';
import { startEchoServer, startTunnelFront, type TunnelFront } from '../helpers/tunnel-front.js';
import { sleep, waitFor } from '../helpers/wait.js';

const METHOD = 'aes-256-gcm';
const HANG_SERVER =
  "require('net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, function () { process.stdout.write(String(this.address().port)); })";
const PASSWORD = 'client-lean-tunnel-pw';
const fns = nativeSocksFront() as unknown as Record<string, unknown> | undefined;
const skip = skipUnless(
  fns !== undefined && typeof fns.tunnelConnect === 'function',
  'the native addon with tunnelConnect (Linux; npm run build:native)',
);

interface Front extends TunnelFront {
  /** What the person is told: answer-watch's lines and the dial-failure lines (msg and errno). */
  told: () => string[];
}

/** The three ways: the addon's bare tunnel, the lean tunnel in JS, neither (#plan). */
type Mode = 'bare' | 'lean' | 'off';
const MODES: readonly Mode[] = ['bare', 'lean', 'off'];

/** Tunnels the front set up, in JS or in the addon. */
function taken(f: TunnelFront): number {
  return f.front.tunnelled;
}

async function startFront(serverPort: number, mode: Mode, connectTimeoutMs?: number): Promise<Front> {
  const f = await startTunnelFront({
    serverPort,
    method: METHOD,
    password: PASSWORD,
    noAnswerMs: 300,
    fns,
    lean: mode !== 'off',
    bare: mode === 'bare',
    ...(connectTimeoutMs ? { connectTimeoutMs } : {}),
  });
  return {
    ...f,
    told: () => f.lines().map((l) => `${String(l.msg)}${l.errno ? ` (${String(l.errno)})` : ''}`),
  };
}

/** A tunnel to host:port; sends 'ping'; what came back once 4 bytes came, it closed, or `ms` passed. */
async function exchange(
  f: Front,
  host: string,
  port: number,
  ms = 3000,
): Promise<{ got: string; closed: boolean }> {
  const s = await socks5Connect({ proxyPort: f.port, host, port });
  s.on('error', () => {});
  const chunks: Buffer[] = [];
  let closed = false;
  await new Promise<void>((done) => {
    const timer = setTimeout(done, ms);
    s.on('data', (b: Buffer) => {
      chunks.push(b);
      if (Buffer.concat(chunks).length >= 4) {
        clearTimeout(timer);
        done();
      }
    });
    s.once('close', () => {
      closed = true;
      clearTimeout(timer);
      done();
    });
    s.resume(); // socks5Connect hands it over paused
    s.write('ping');
  });
  s.destroy();
  return { got: Buffer.concat(chunks).toString(), closed };
}

describe(
  'lean tunnel: the same behaviour in the addon, in the lean path and off (LADDER_CLIENT_NATIVE_TUNNEL, LADDER_CLIENT_LEAN)',
  { skip, timeout: 120_000 },
  () => {
    let echo: TestServer;
    let ssPort = 0;
    let stop: () => Promise<void>;
    before(async () => {
      ({ echo, ssPort, close: stop } = await startEchoServer(METHOD, PASSWORD));
    });
    after(() => stop());

    /**
     * Runs `run` each way (bare, lean, off); returns the results after checking the counts
     * (the first and the second compared with the third by the callers).
     */
    async function both<T>(
      peerPort: () => number,
      run: (f: Front) => Promise<T>,
      n: number,
    ): Promise<[T, T, T]> {
      const results: T[] = [];
      for (const mode of MODES) {
        const f = await startFront(peerPort(), mode);
        try {
          results.push(await run(f));
          assert.equal(
            f.front.bare?.started ?? 0,
            mode === 'bare' ? n : 0,
            `${mode}: the addon's bare tunnel took them`,
          );
          assert.equal(f.front.tunnelled, n, `${mode}: set up in the addon`);
          assert.equal(f.front.salted, n, `${mode}: the answer opened in the relay`);
          assert.equal(f.front.leaned, mode === 'lean' ? n : 0, `${mode}: the lean path took them`);
          await waitFor(() => f.front.size === 0, { timeoutMs: 5000 });
        } finally {
          f.close();
        }
      }
      return results as [T, T, T];
    }

    it('echo to an IPv4 literal and to a name: the same bytes, nothing told', async () => {
      const [on, lean, off] = await both(
        () => ssPort,
        async (f) => {
          const got: string[] = [];
          for (const host of ['127.0.0.1', 'localhost', '127.0.0.1'])
            got.push((await exchange(f, host, echo.port)).got);
          await sleep(500); // the no-answer wait (300 ms) ends: an answered tunnel is not reported
          return { got, told: f.told() };
        },
        3,
      );
      assert.deepEqual(on, { got: ['ping', 'ping', 'ping'], told: [] });
      assert.deepEqual(lean, on);
      assert.deepEqual(off, on);
    });

    for (const [name, handler, msg] of [
      [
        'bytes the key cannot open',
        (s: net.Socket) => s.once('data', () => s.write(randomBytes(200))),
        /cannot decrypt/,
      ],
      [
        'a few bytes then a FIN',
        (s: net.Socket) => s.once('data', () => s.end(randomBytes(10))),
        /cannot decrypt/,
      ],
      ['silence', (s: net.Socket) => s.resume(), /^no answer from the server in 0\.3 s/],
      ['a FIN with nothing', (s: net.Socket) => s.once('data', () => s.end()), /closed it without data/],
      [
        'a reset with nothing',
        (s: net.Socket) => s.once('data', () => s.resetAndDestroy()),
        /closed it without data/,
      ],
    ] as const) {
      it(`a server that answers with ${name}: told the same`, async () => {
        const peer = await serve((s) => {
          s.on('error', () => {});
          handler(s);
        });
        try {
          const [on, lean, off] = await both(
            () => peer.port,
            async (f) => {
              const r = await exchange(f, '127.0.0.1', echo.port, 1000);
              await waitFor(() => f.told().some((l) => msg.test(l)), { timeoutMs: 5000 });
              await sleep(100);
              return { got: r.got, told: f.told() };
            },
            1,
          );
          assert.equal(on.got, '', 'nothing reaches the application');
          assert.equal(on.told.length, 1, JSON.stringify(on.told));
          assert.deepEqual(lean, on);
          assert.deepEqual(off, on);
        } finally {
          await peer.close();
        }
      });
    }

    it('a refused connect: the application closed, the same dial-failure line', async () => {
      const dead = await freePort();
      const [on, lean, off] = await both(
        () => dead,
        async (f) => {
          const r = await exchange(f, '127.0.0.1', echo.port);
          await waitFor(() => f.told().length > 0, { timeoutMs: 5000 });
          await sleep(100);
          // The hint after the first refusal is once per process: the second run does not repeat it.
          return { ...r, told: f.told().filter((l) => !l.startsWith('the server refused the connection')) };
        },
        1,
      );
      assert.deepEqual(on, { got: '', closed: true, told: ['tunnel dial failed (ECONNREFUSED)'] });
      assert.deepEqual(lean, on);
      assert.deepEqual(off, on);
    });

    it('a connect that hangs then times out: only the dial-failure line (no "no answer" before the server was reached)', async () => {
      // A listener whose accept queue is full (its process stopped): the kernel drops further SYNs.
      const child = spawn(process.execPath, ['-e', HANG_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        const port = Number((await once(child.stdout, 'data'))[0].toString());
        child.kill('SIGSTOP');
        const fill: net.Socket[] = [];
        for (let i = 0; i < 3; i++) fill.push(netConnect(port, '127.0.0.1').on('error', () => {}));
        await sleep(200);
        for (const mode of MODES) {
          const f = await startFront(port, mode, 1500);
          try {
            const r = await exchange(f, '127.0.0.1', echo.port, 800);
            assert.deepEqual(f.told(), [], `${mode}: nothing told while the connect runs`);
            await waitFor(() => f.told().length > 0, { timeoutMs: 5000 });
            await sleep(100);
            assert.equal(r.got, '');
            assert.deepEqual(f.told(), ['tunnel dial failed'], mode);
            assert.equal(taken(f), 1, mode);
            await waitFor(() => f.front.size === 0, { timeoutMs: 5000 });
          } finally {
            f.close();
          }
        }
        for (const s of fill) s.destroy();
      } finally {
        child.kill('SIGKILL');
      }
    });

    it('close() with lean tunnels running leaves nothing', async () => {
      for (const mode of MODES) {
        const f = await startFront(ssPort, mode);
        const s = await socks5Connect({ proxyPort: f.port, host: '127.0.0.1', port: echo.port });
        s.on('error', () => {});
        s.resume();
        s.write('ping');
        await waitFor(() => taken(f) === 1, { timeoutMs: 5000 });
        assert.equal(f.front.size, 1, `${mode}: the tunnel counted`);
        f.close();
        assert.equal(f.front.size, 0);
        await new Promise((r) => (s.destroyed ? r(undefined) : s.once('close', r)));
      }
    });
  },
);
