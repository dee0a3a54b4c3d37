/**
 * The decoy's HTTP/2 idle timeout counts streams, not frames: a client that only sends PINGs gets
 * GOAWAY after the keep-alive timeout as one that sends nothing. Session 19's note suspected Node's
 * session timer was reset by every frame, so that a pinging client held a decoy connection open
 * for ever; on Node 20 it is not (this passes on the unchanged h2.ts, and so do SETTINGS,
 * WINDOW_UPDATE and PRIORITY frames every 120 ms: checked by hand), so this pins the behaviour
 * against a Node that would change it. (Debian's nginx 1.22 with `keepalive_timeout 1s` over h2c
 * kept a silent and a pinging connection alike open past 4 s: before a first stream another timer
 * applies there; pings made no difference either.) Control: requests a third of the timeout apart
 * keep the session; GOAWAY follows the last one by the timeout.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { builtinDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFront } from '../../src/server/web/front.js';
import { makeCert, opensslSkip, tempDir } from './fixtures.js';

const IDLE_MS = 600;

describe('h2 idle timeout: streams count, pings do not', { skip: opensslSkip() }, () => {
  const tmp = tempDir('h2-idle');
  let front: WebFront;
  let ca = '';
  before(async () => {
    const cert = makeCert(tmp.path, 'idle.test');
    ca = cert.cert;
    front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/h2-idle-secret',
      tls: { cert: cert.cert, key: cert.key },
      decoy: builtinDecoy({ seed: 'h2-idle' }),
      onUpgrade: () => false,
      keepAliveTimeoutMs: IDLE_MS,
    });
  });
  after(async () => {
    await front?.close();
    tmp.remove();
  });

  const connect = (): http2.ClientHttp2Session => {
    const session = http2.connect(`https://127.0.0.1:${front.port}`, { ca, servername: 'idle.test' });
    session.on('error', () => {});
    return session;
  };
  /** ms from `t0` to the server's GOAWAY, or undefined if none came within `ms`. */
  const goawayWithin = (
    session: http2.ClientHttp2Session,
    t0: number,
    ms: number,
  ): Promise<number | undefined> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), ms);
      session.once('goaway', () => {
        clearTimeout(timer);
        resolve(Date.now() - t0);
      });
    });

  test('a client that only pings gets GOAWAY after the timeout', async () => {
    const session = connect();
    const t0 = Date.now();
    const pinger = setInterval(() => {
      if (!session.closed && !session.destroyed) session.ping(() => {});
    }, IDLE_MS / 5);
    try {
      const at = await goawayWithin(session, t0, IDLE_MS * 5);
      assert.ok(at !== undefined, `no GOAWAY in ${IDLE_MS * 5} ms of pings`);
      assert.ok(at >= IDLE_MS * 0.9, `GOAWAY after ${at} ms`);
    } finally {
      clearInterval(pinger);
      session.destroy();
    }
  });

  test('control: requests keep the session; GOAWAY follows the last one', async () => {
    const session = connect();
    const t0 = Date.now();
    let last = t0;
    const get = (): void => {
      if (session.closed || session.destroyed) return;
      const req = session.request({ ':path': '/' });
      req.on('error', () => {});
      req.resume();
      req.once('close', () => (last = Date.now()));
    };
    get();
    const asker = setInterval(get, IDLE_MS / 3);
    try {
      const early = await goawayWithin(session, t0, IDLE_MS * 3);
      assert.equal(early, undefined, 'GOAWAY while requests came');
      clearInterval(asker);
      await new Promise((r) => setTimeout(r, 50));
      const at = await goawayWithin(session, last, IDLE_MS * 5);
      assert.ok(at !== undefined && at >= IDLE_MS * 0.8, `GOAWAY ${at} ms after the last request`);
    } finally {
      clearInterval(asker);
      session.destroy();
    }
  });
});
