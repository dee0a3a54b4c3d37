/**
 * The client's tunnel set up in the addon with the server's answer opened in the relay
 * (native-socks.ts #plan with LADDER_NATIVE_SALT on, native/relay_pair.cc: relayPair given the
 * master key for decoder): no JS call for the server's first answer, and answer-watch still told
 * right, now by asking the relay (NativeServerSocket.answer) when it judges: an answer that came
 * before the no-answer wait ended is not reported, bytes the key cannot open are, and so are a
 * silent server and a few bytes then a FIN. Each case runs with the switch on and off (onFirst
 * opens the answer in JS, as before).
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { NativeSocks } from '../../src/client/native-socks.js';
import { nativeRelay, nativeSocksFront } from '../../src/transport/native-sockets.js';
import { fdOf, serve, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { socks5Connect } from '../helpers/socks5.js';
import { startEchoServer, startTunnelFront, type TunnelFront } from '../helpers/tunnel-front.js';
import { sleep, waitFor } from '../helpers/wait.js';

const METHOD = 'chacha20-ietf-poly1305';
const PASSWORD = 'client-native-salt-pw';
type Fn = (...x: unknown[]) => unknown;
const addon = nativeRelay() as unknown as Record<string, Fn> | undefined;
const skip = skipUnless(
  nativeSocksFront() !== undefined && typeof addon?.tunnelConnect === 'function',
  'the native addon with tunnelConnect (Linux; npm run build:native)',
);

interface Front {
  port: number;
  /** onFirst calls so far (the relay's JS calls for the server's answer). */
  firstCalls: () => number;
  /** The info lines answer-watch logged (their msg). */
  told: () => string[];
  front: NativeSocks;
  close: () => void;
}

/** A native SOCKS5 front whose tunnels (through answer-watch) go to 127.0.0.1:serverPort. */
async function startFront(serverPort: number, salt: boolean, noAnswerMs = 300): Promise<Front> {
  const fns = { ...nativeSocksFront()! } as unknown as Record<string, Fn>;
  const relayPair = fns.relayPair!;
  let calls = 0;
  fns.relayPair = (...a: unknown[]) => {
    const onFirst = a[8];
    if (typeof onFirst === 'function') {
      a[8] = (...x: unknown[]) => {
        calls++;
        return (onFirst as Fn)(...x);
      };
    }
    return relayPair(...a);
  };
  const saved = process.env.LADDER_NATIVE_SALT;
  process.env.LADDER_NATIVE_SALT = salt ? '1' : '0'; // read when the front is made
  let f: TunnelFront;
  try {
    f = await startTunnelFront({ serverPort, method: METHOD, password: PASSWORD, noAnswerMs, fns });
  } finally {
    if (saved === undefined) delete process.env.LADDER_NATIVE_SALT;
    else process.env.LADDER_NATIVE_SALT = saved;
  }
  return {
    ...f,
    firstCalls: () => calls,
    told: () =>
      f
        .lines()
        .filter((l) => l.tunnel !== undefined)
        .map((l) => String(l.msg)),
  };
}

/** Opens a tunnel to the echo, sends 'ping'; resolves with the socket once 4 bytes came (or it closed, or `ms` passed). */
async function open(f: Front, echoPort: number, ms = 5000): Promise<{ s: net.Socket; got: string }> {
  const s = await socks5Connect({ proxyPort: f.port, host: '127.0.0.1', port: echoPort });
  s.on('error', () => {});
  const chunks: Buffer[] = [];
  await new Promise<void>((done) => {
    const timer = setTimeout(done, ms);
    const end = (): void => {
      clearTimeout(timer);
      done();
    };
    s.on('data', (b: Buffer) => {
      chunks.push(b);
      if (Buffer.concat(chunks).length >= 4) end();
    });
    s.once('close', end);
    s.resume(); // socks5Connect hands it over paused
    s.write('ping');
  });
  return { s, got: Buffer.concat(chunks).toString() };
}

describe('native tunnel: the server answer opened in the relay', { skip, timeout: 60_000 }, () => {
  let echo: TestServer;
  let ssPort = 0;
  let stop: () => Promise<void>;
  before(async () => {
    ({ echo, ssPort, close: stop } = await startEchoServer(METHOD, PASSWORD));
  });
  after(() => stop());

  for (const salt of [true, false]) {
    const mode = salt ? 'LADDER_NATIVE_SALT on' : 'LADDER_NATIVE_SALT=0';

    it(`${mode}: ${salt ? 'no onFirst call' : 'one onFirst call'} per connection, the bytes as they were`, async () => {
      const f = await startFront(ssPort, salt);
      try {
        for (let i = 0; i < 3; i++) {
          const { s, got } = await open(f, echo.port);
          assert.equal(got, 'ping');
          s.destroy();
        }
        assert.equal(f.front.tunnelled, 3, 'set up in the addon');
        assert.equal(f.firstCalls(), salt ? 0 : 3);
        await waitFor(() => f.front.size === 0, { timeoutMs: 5000 });
        assert.deepEqual(f.told(), []);
      } finally {
        f.close();
      }
    });

    it(`${mode}: an answer that came before the no-answer wait ended is not reported`, async () => {
      const f = await startFront(ssPort, salt, 300);
      try {
        const { s, got } = await open(f, echo.port);
        assert.equal(got, 'ping');
        await sleep(700); // the wait ends while the connection is open: it asks the relay
        assert.deepEqual(f.told(), []);
        s.destroy();
        await waitFor(() => f.front.size === 0, { timeoutMs: 5000 });
        assert.deepEqual(f.told(), []);
      } finally {
        f.close();
      }
    });

    it(`${mode}: bytes the key cannot open, a few bytes then a FIN, and silence are told`, async () => {
      const garbage = await serve((s) => s.once('data', () => s.write(randomBytes(200))));
      const partial = await serve((s) => s.once('data', () => s.end(randomBytes(10))));
      const silent = await serve((s) => s.resume());
      try {
        for (const [peer, msg] of [
          [garbage, /^the server answered with bytes this key cannot decrypt/],
          [partial, /^the server answered with bytes this key cannot decrypt/],
          [silent, /^no answer from the server in 0\.3 s/],
        ] as const) {
          const f = await startFront(peer.port, salt, 300);
          try {
            const { s, got } = await open(f, echo.port, 1000);
            assert.equal(got, '', 'nothing reaches the application');
            await waitFor(() => f.told().some((l) => msg.test(l)), { timeoutMs: 5000 });
            assert.equal(f.told().length, 1, JSON.stringify(f.told()));
            s.destroy();
          } finally {
            f.close();
          }
        }
      } finally {
        await Promise.all([garbage.close(), partial.close(), silent.close()]);
      }
    });
  }

  it('the addon: a master key for the decoder must have the encoder method’s key length', async () => {
    const fns = nativeSocksFront() as unknown as {
      create(m: number, k: Uint8Array, enc: boolean): object;
      relayPair(...a: unknown[]): unknown;
    };
    const enc = fns.create(2, randomBytes(32), true); // chacha20-poly1305: 32-byte keys
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const a = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
    const b = await new Promise<net.Socket>((r) => srv.once('connection', r));
    await new Promise((r) => a.once('connect', r));
    try {
      assert.throws(
        () =>
          fns.relayPair(
            fdOf(a),
            fdOf(b),
            randomBytes(16),
            enc,
            [undefined, undefined, undefined],
            1000,
            () => {},
            3,
            () => {},
          ),
        /the master key's length does not match the encoder's method/,
      );
    } finally {
      a.destroy();
      b.destroy();
      srv.close();
    }
  });
});
