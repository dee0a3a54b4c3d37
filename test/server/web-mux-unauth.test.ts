/**
 * The bound on Mux.Cool sessions of one WebSocket that have not authenticated
 * (websocket.ts MAX_UNAUTHENTICATED_SESSIONS): anyone who knows the secret path could otherwise
 * hold 1,024 sessions per WebSocket for the idle timeout. Sessions whose first bytes do not
 * decrypt count against it; a New beyond it gets End with the error bit (as any refused
 * session); sessions that authenticated do not count, so a client's real sessions go on.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { after, before, test } from 'node:test';
import { MuxCoolDecoder, MuxStatus, MUX_OPTION_ERROR } from '../../src/protocol/muxcool.js';
import { AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { Aead2022RequestEncoder } from '../../src/protocol/shadowsocks/aead2022.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { getAead2022Method } from '../../src/protocol/shadowsocks/methods2022.js';
import { encodeAddress } from '../../src/protocol/socks5/address.js';
import { MAX_UNAUTHENTICATED_SESSIONS } from '../../src/server/web/websocket.js';
import { MuxConnection } from '../../src/transport/mux.js';
import { dialWebSocket } from '../../src/transport/ws-dialer.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { startWsTestServer, tunnelVia, type WsTestServer } from '../helpers/web-server.js';

const METHOD = 'aes-256-gcm';
const PASSWORD = `mux-unauth-${randomBytes(6).toString('hex')}`;
const METHOD_2022 = '2022-blake3-aes-256-gcm';
const PSK_2022 = randomBytes(32);
let srv: WsTestServer;
let echo: TestServer;
before(async () => {
  srv = await startWsTestServer({
    keys: [
      { id: 'k', method: METHOD, secret: PASSWORD },
      { id: 'k2022', method: METHOD_2022, secret: PSK_2022.toString('base64') },
    ],
    idleMs: 20_000,
  });
  echo = await startEcho();
});
after(async () => {
  await Promise.all([srv.close(), echo.close()]);
});

/** A client carrier, and the ids of the sessions the server ended with the error bit. */
async function carrier(): Promise<{ mux: MuxConnection; refused: Set<number> }> {
  const ws = await dialWebSocket({ url: `ws://127.0.0.1:${srv.webPort}${srv.secretPath}/tcp` });
  const refused = new Set<number>();
  const dec = new MuxCoolDecoder();
  ws.ws.on('message', (m: Buffer) => {
    for (const f of dec.push(m))
      if (f.status === MuxStatus.End && f.option & MUX_OPTION_ERROR) refused.add(f.sessionId);
  });
  return { mux: new MuxConnection(ws, { role: 'client' }), refused };
}

/** A session whose first bytes (100 random ones) never decrypt. */
function garbageSession(mux: MuxConnection): number {
  const s = mux.open();
  s.on('error', () => {});
  s.write(randomBytes(100));
  return s.id;
}

async function echoOver(mux: MuxConnection, text: string): Promise<void> {
  const hop = async (): Promise<Duplex> => mux.open().on('error', () => {});
  const s = tunnelVia(srv, { method: METHOD, password: PASSWORD }, hop, echo.port);
  let got = '';
  s.on('data', (d: Buffer) => (got += d.toString()));
  s.write(text);
  await waitFor(() => got === text);
  s.end();
  await once(s, 'close');
}

test('sessions beyond the bound of unauthenticated ones are refused with End and the error bit', async () => {
  const { mux, refused } = await carrier();
  try {
    const ids: number[] = [];
    for (let i = 0; i < MAX_UNAUTHENTICATED_SESSIONS + 8; i++) ids.push(garbageSession(mux));
    const over = ids.slice(MAX_UNAUTHENTICATED_SESSIONS);
    await waitFor(() => over.every((id) => refused.has(id)));
    await sleep(200);
    for (const id of ids.slice(0, MAX_UNAUTHENTICATED_SESSIONS)) assert.ok(!refused.has(id), `session ${id}`);
    assert.equal(refused.size, 8);
    assert.ok(MAX_UNAUTHENTICATED_SESSIONS <= 64, 'a small bound');
  } finally {
    mux.destroy();
  }
});

test('authenticated sessions do not count: a client goes on past the bound on one carrier', async () => {
  const { mux, refused } = await carrier();
  try {
    // One slot left for sessions still authenticating: each real one authenticates and frees it.
    for (let i = 0; i < MAX_UNAUTHENTICATED_SESSIONS - 1; i++) garbageSession(mux);
    const open: Duplex[] = [];
    for (let i = 0; i < MAX_UNAUTHENTICATED_SESSIONS + 8; i++) {
      // Opened one after another and all kept open: authenticated sessions add up past the bound.
      const s = tunnelVia(srv, { method: METHOD, password: PASSWORD }, async () => mux.open(), echo.port);
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.write(`hello ${i}`);
      await waitFor(() => got === `hello ${i}`);
      open.push(s);
    }
    assert.equal(mux.size, 2 * MAX_UNAUTHENTICATED_SESSIONS + 7);
    await Promise.all(
      open.map(async (s) => {
        s.end();
        await once(s, 'close');
      }),
    );
    await echoOver(mux, 'after');
    assert.equal(refused.size, 0);
  } finally {
    mux.destroy();
  }
});

test('sessions that end before authenticating free their slots (closed by the client, or failed and reset)', async () => {
  const { mux, refused } = await carrier();
  try {
    for (let round = 0; round < 3; round++) {
      const sessions = [];
      for (let i = 0; i < MAX_UNAUTHENTICATED_SESSIONS; i++) {
        const s = mux.open();
        s.on('error', () => {});
        s.resume(); // read to the server's End
        s.write(randomBytes(100));
        sessions.push(s);
      }
      // Half end cleanly (the server answers its FIN), half are reset.
      for (const [i, s] of sessions.entries()) {
        if (i % 2 === 0) s.end();
        else s.destroy();
      }
      await waitFor(() => mux.size === 0);
    }
    await echoOver(mux, 'after three rounds of failed sessions');
    assert.equal(refused.size, 0);
  } finally {
    mux.destroy();
  }
});

test('sessions whose key verified and that were then refused (replays) free their slots, and are still held', async () => {
  const { mux, refused } = await carrier();
  try {
    const target = encodeAddress({ type: 'ipv4', host: '127.0.0.1', port: echo.port });
    // One first chunk of each edition, sent once for real (authenticated, relayed) and then replayed.
    const sip004 = new AeadEncoder(getAeadMethod(METHOD), evpBytesToKey(PASSWORD, 32)).encode(
      Buffer.concat([target, Buffer.from('x')]),
    );
    const ss2022 = new Aead2022RequestEncoder(getAead2022Method(METHOD_2022), PSK_2022).encodeHeader(
      { type: 'ipv4', host: '127.0.0.1', port: echo.port },
      Buffer.from('x'),
      Date.now(),
    );
    const replays: { ended: boolean }[] = [];
    for (const first of [sip004, ss2022]) {
      for (let i = 0; i <= MAX_UNAUTHENTICATED_SESSIONS; i++) {
        const s = mux.open();
        const seen = { ended: false, echoed: false };
        s.on('error', () => {});
        s.on('data', () => (seen.echoed = true));
        s.on('end', () => (seen.ended = true));
        s.write(first);
        if (i > 0) replays.push(seen);
        // The real one first, authenticated (its echo back) before the rest, which replay it: a
        // fixed pause here let a loaded machine count the real one among the unauthenticated.
        if (i === 0) await waitFor(() => seen.echoed);
      }
    }
    await sleep(300);
    // Refused by the replay filters (2 x 32 of them), held open as any refused stream: none got
    // End, and none took a slot from the sessions still to authenticate.
    assert.equal(refused.size, 0, 'no New refused for want of a slot');
    assert.ok(
      replays.every((r) => !r.ended),
      'every replay held open',
    );
    // Every slot but one still free for sessions authenticating: the last one is a real session's.
    for (let i = 0; i < MAX_UNAUTHENTICATED_SESSIONS - 1; i++) garbageSession(mux);
    await echoOver(mux, 'a real session beside 64 held replays');
    assert.equal(refused.size, 0);
    assert.ok(
      replays.every((r) => !r.ended),
      'every replay still held open',
    );
  } finally {
    mux.destroy();
  }
});
