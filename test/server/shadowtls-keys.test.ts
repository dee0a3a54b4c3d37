/**
 * Per-key ShadowTLS passwords (src/server/shadowtls/passwords.ts) on a real port, a real TLS 1.3
 * handshake site and the Shadowsocks data plane behind it, all on loopback: each key's own
 * password switches and carries that key's Shadowsocks; a removed key's password is relayed to
 * the site (the prober's path) from the next hello; the server-wide password of an install made
 * before per-key passwords still switches; a replayed hello is still relayed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type https from 'node:https';
import type net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { makeLabCertificates } from '../../src/lab/lab-ca.js';
import { keyShadowTlsPassword } from '../../src/protocol/sip002/shadowtls.js';
import { toSocksAddress } from '../../src/protocol/socks5/address.js';
import { listenShadowTls, type ShadowTlsListener } from '../../src/server/shadowtls/listener.js';
import { ShadowTlsPasswords } from '../../src/server/shadowtls/passwords.js';
import { createLogger } from '../../src/shared/logger.js';
import { DialerStream } from '../../src/transport/dialer-stream.js';
import { ShadowsocksDialer } from '../../src/transport/shadowsocks-dialer.js';
import { startTestServer, type TestDataPlane } from '../helpers/data-plane.js';
import { captureClientHello, connectShadowTls, startLabSite } from '../helpers/shadowtls-client.js';
import { waitFor } from '../helpers/wait.js';

const SITE = 'keys.lab';
const OLD_PW = `server-wide-${randomBytes(4).toString('hex')}`;
const key = (id: string) => ({
  id,
  method: 'aes-256-gcm',
  secret: `ss-${id}-${randomBytes(6).toString('hex')}`,
});
const A = key('a');
const B = key('b');

let site: https.Server;
let plane: TestDataPlane;
let hello: Buffer;
let passwords: ShadowTlsPasswords;
let listener: ShadowTlsListener;

before(async () => {
  const certs = await makeLabCertificates([SITE]);
  site = await startLabSite(certs, 'TLSv1.3', '<p>keys</p>');
  plane = await startTestServer({ keys: [A, B] });
  hello = await captureClientHello(SITE);
  passwords = new ShadowTlsPasswords([OLD_PW], keyShadowTlsPassword);
  passwords.setKeys([A, B]);
  listener = await listenShadowTls({
    port: 0,
    host: '127.0.0.1',
    handshake: { host: '127.0.0.1', port: (site.address() as net.AddressInfo).port },
    passwords,
    idleMs: 10_000,
    logger: createLogger({ level: 'silent' }),
    onStream: (stream, info) => plane.plane.server.handleStream(stream, info),
  });
});

after(async () => {
  await listener.close();
  site.closeAllConnections();
  site.close();
  await plane.close();
});

/** Through the port with ShadowTLS password `stls`, then `k`'s Shadowsocks, to the echo and back. */
async function echoThrough(stls: string, k: { method: string; secret: string }): Promise<string> {
  const conn = await connectShadowTls(listener.address.port, stls, hello);
  const dialer = new ShadowsocksDialer({
    host: '127.0.0.1',
    port: 0,
    method: k.method,
    password: k.secret,
    nextHop: () => Promise.resolve(conn.stream),
  });
  const t = new DialerStream(dialer, toSocksAddress(plane.echo.host, plane.echo.port));
  const got = new Promise<string>((resolve, reject) => {
    t.once('data', (d: Buffer) => resolve(d.toString()));
    t.once('error', reject);
  });
  t.write(`hello ${k.secret}`);
  try {
    return await got;
  } finally {
    t.destroy();
  }
}

describe('ShadowTLS port with per-key passwords', () => {
  it('each key’s own password switches and carries its Shadowsocks; a wrong one is relayed', async () => {
    const switched = listener.counts.switched;
    assert.equal(await echoThrough(keyShadowTlsPassword(A), A), `hello ${A.secret}`);
    assert.equal(await echoThrough(keyShadowTlsPassword(B), B), `hello ${B.secret}`);
    assert.equal(listener.counts.switched, switched + 2);
    const relayed = listener.counts.relayed;
    await assert.rejects(connectShadowTls(listener.address.port, 'not a password', hello), /untagged/);
    await waitFor(() => listener.counts.relayed === relayed + 1);
  });

  it('the server-wide password of an earlier install still switches', async () => {
    assert.equal(await echoThrough(OLD_PW, B), `hello ${B.secret}`);
  });

  it('a removed key’s password reaches the site from the next hello; its key again: works again', async () => {
    const pwA = keyShadowTlsPassword(A);
    (await connectShadowTls(listener.address.port, pwA, hello)).socket.destroy();
    passwords.applyKeyDelta({ upsert: [], remove: ['a'] });
    const relayed = listener.counts.relayed;
    await assert.rejects(connectShadowTls(listener.address.port, pwA, hello), /untagged/);
    await waitFor(() => listener.counts.relayed === relayed + 1);
    assert.equal(await echoThrough(keyShadowTlsPassword(B), B), `hello ${B.secret}`, 'B is untouched');
    // A key whose secret changed (keys rotate) has a new password; the old one goes with it.
    const rotated = { ...A, secret: `${A.secret}-rotated` };
    passwords.applyKeyDelta({ upsert: [rotated], remove: [] });
    (await connectShadowTls(listener.address.port, keyShadowTlsPassword(rotated), hello)).socket.destroy();
    await assert.rejects(connectShadowTls(listener.address.port, pwA, hello), /untagged/);
    passwords.setKeys([A, B]);
    (await connectShadowTls(listener.address.port, pwA, hello)).socket.destroy();
  });

  it('a replayed hello (same session id) under a key’s password is relayed, not switched', async () => {
    const random28 = randomBytes(28);
    const pwB = keyShadowTlsPassword(B);
    (await connectShadowTls(listener.address.port, pwB, hello, 5000, random28)).socket.destroy();
    const relayed = listener.counts.relayed;
    await assert.rejects(connectShadowTls(listener.address.port, pwB, hello, 5000, random28), /untagged/);
    await waitFor(() => listener.counts.relayed === relayed + 1);
  });
});
