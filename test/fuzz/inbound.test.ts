/**
 * Fuzzing the client's inbounds over loopback sockets: the SOCKS5 handshake (greeting, RFC 1929
 * auth, request) and the HTTP proxy (CONNECT and absolute-URI requests), both with credentials
 * required. Each case is a mutated valid handshake written on its own connection, then the write
 * side is closed. Contract: every connection is closed by the inbound within a bound (no hang, no
 * descriptor kept), nothing is dialled for a case that does not carry the right credentials, and
 * the inbound still serves a good handshake afterwards. Method and counts: test/fuzz/fuzz.ts.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { startSocks5Inbound } from '../../src/client/socks5-inbound.js';
import { startHttpInbound } from '../../src/client/http-inbound.js';
import { silentLogger } from '../../src/shared/logger.js';
import { UpstreamDialError, type Dialer } from '../../src/transport/dialer.js';
import { encodeGreeting, encodeRequest, encodeUserPassAuth } from '../../src/protocol/socks5/socks5.js';
import { toSocksAddress } from '../../src/protocol/socks5/address.js';
import { byteCases, show } from './fuzz.js';

const USER = 'user';
const PASS = 'pw-Sekrit';

function recordingDialer(): Dialer & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    dial(dest) {
      calls.push(`${dest.host}:${dest.port}`);
      return Promise.reject(new UpstreamDialError('ERR_CONNECT', 'refused (fuzz dialer)'));
    },
  };
}

const context = (dialer: Dialer) => ({
  dialer,
  firstDataWaitMs: 20,
  idleTimeoutMs: 2000,
  log: silentLogger,
  track: () => {},
});

/** Write `bytes`, end, and wait for the inbound to close; resolves with what it sent back. */
function exchange(port: number, bytes: Buffer, boundMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`inbound kept the connection open past ${boundMs} ms for ${show(bytes)}`));
    }, boundMs);
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => {}); // a reset is a close too
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(got));
    });
    s.end(bytes);
  });
}

async function inBatches<T>(items: T[], size: number, each: (x: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(each));
}

test('fuzz: SOCKS5 inbound handshake: closes in time, never dials without the credentials', async (t) => {
  const dialer = recordingDialer();
  const inbound = await startSocks5Inbound({
    ...context(dialer),
    host: '127.0.0.1',
    port: 0,
    auth: { username: USER, password: PASS },
    handshakeTimeoutMs: 1000,
  });
  t.after(() => inbound.server.close());
  const auth = encodeUserPassAuth(USER, PASS);
  const good = Buffer.concat([
    encodeGreeting([0, 2]),
    auth,
    encodeRequest(1, toSocksAddress('example.com', 443)),
  ]);
  // Cases that still carry the exact credentials may reach the dialler; the rest must not.
  const cases = [...byteCases('socks-inbound', [good], 250)].filter((c) => !c.includes(auth));
  const before = dialer.calls.length;
  assert.ok(cases.length > 150, `${cases.length} cases`);
  await inBatches(cases, 25, (c) => exchange(inbound.address.port, c, 4000));
  assert.equal(dialer.calls.length, before, `dialled without the credentials: ${dialer.calls.join(', ')}`);
  // Still serving: a good handshake gets method 2, auth OK and a reply.
  const reply = await exchange(inbound.address.port, good, 4000);
  assert.equal(reply.subarray(0, 4).toString('hex'), '05020100', `reply ${reply.toString('hex')}`);
  // …and the dialler is reachable, so "never dialled" above means something.
  assert.deepEqual(dialer.calls, ['example.com:443']);
});

test('fuzz: HTTP proxy inbound: closes in time, never dials without the credentials', async (t) => {
  const dialer = recordingDialer();
  const inbound = await startHttpInbound({
    ...context(dialer),
    host: '127.0.0.1',
    port: 0,
    auth: { username: USER, password: PASS },
  });
  t.after(() => inbound.server.close());
  inbound.server.headersTimeout = 1000;
  inbound.server.requestTimeout = 1000;
  const cred = Buffer.from(`${USER}:${PASS}`).toString('base64');
  const samples = [
    `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic ${cred}\r\n\r\n`,
    `GET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\nProxy-Authorization: Basic ${cred}\r\nConnection: keep-alive, x-a\r\nX-A: 1\r\nContent-Length: 3\r\n\r\nabc`,
    `CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nProxy-Authorization: basic ${cred}\r\n\r\n`,
  ].map((s) => Buffer.from(s));
  // Cases that still carry the credentials may be served: any base64 of them (unpadded, or with
  // unused low bits set in its last character, decodes the same: Node's decoder is lenient).
  const carries = (c: Buffer): boolean =>
    [...c.toString('latin1').matchAll(/([A-Za-z0-9+/=]{8,})/g)].some(
      (m) => Buffer.from(m[1]!, 'base64').toString('latin1') === `${USER}:${PASS}`,
    );
  const cases = [...byteCases('http-inbound', samples, 250)].filter((c) => !carries(c));
  assert.ok(cases.length > 150, `${cases.length} cases`);
  await inBatches(cases, 25, (c) => exchange(inbound.address.port, c, 4000));
  assert.deepEqual(dialer.calls, [], 'dialled without the credentials');
  const reply = await exchange(inbound.address.port, samples[0]!, 4000);
  assert.match(reply.toString('latin1'), /^HTTP\/1\.1 200 /);
  assert.deepEqual(dialer.calls, ['example.com:443']);
});
