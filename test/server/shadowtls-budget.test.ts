/**
 * The ShadowTLS port's scanning budget (ScanBudget, src/server/shadowtls/passwords.ts) on a real
 * port and a real TLS 1.3 handshake site on loopback, the budget's clock turned by the test: once
 * the budget is spent, a genuine client from a new address is relayed to the site (as a wrong
 * password is) while a recently matched address still switches; after the refill the new client
 * switches.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type https from 'node:https';
import type net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { makeLabCertificates } from '../../src/lab/lab-ca.js';
import { keyShadowTlsPassword } from '../../src/protocol/sip002/shadowtls.js';
import { listenShadowTls, type ShadowTlsListener } from '../../src/server/shadowtls/listener.js';
import { PER_HMAC_UNITS, ScanBudget, ShadowTlsPasswords } from '../../src/server/shadowtls/passwords.js';
import { createLogger } from '../../src/shared/logger.js';
import { captureClientHello, connectShadowTls, startLabSite } from '../helpers/shadowtls-client.js';
import { waitFor } from '../helpers/wait.js';

const SITE = 'budget.lab';
const key = (id: string) => ({
  id,
  method: 'aes-256-gcm',
  secret: `ss-${id}-${randomBytes(6).toString('hex')}`,
});
const A = key('a');
const B = key('b');

let site: https.Server;
let hello: Buffer;
let passwords: ShadowTlsPasswords;
let listener: ShadowTlsListener;
let clock = 1_000_000;
const PER_SECOND = 1000; // one unit per millisecond of the test's clock

before(async () => {
  const certs = await makeLabCertificates([SITE]);
  site = await startLabSite(certs, 'TLSv1.3', '<p>budget</p>');
  hello = await captureClientHello(SITE);
  // Room for one scan: the first goes ahead, the next waits for the refill.
  const budget = new ScanBudget({ perSecond: PER_SECOND, burst: 1, now: () => clock });
  passwords = new ShadowTlsPasswords([], keyShadowTlsPassword, budget);
  passwords.setKeys([A, B]);
  listener = await listenShadowTls({
    port: 0,
    host: '127.0.0.1',
    handshake: { host: '127.0.0.1', port: (site.address() as net.AddressInfo).port },
    passwords,
    idleMs: 10_000,
    logger: createLogger({ level: 'silent' }),
    onStream: (stream) => stream.destroy(),
  });
});

after(async () => {
  await listener.close();
  site.closeAllConnections();
  site.close();
});

/** Switches (resolves) through the port with `k`'s password from `from`, or rejects (relayed). */
async function hello1(k: typeof A, from: string): Promise<void> {
  const conn = await connectShadowTls(
    listener.address.port,
    keyShadowTlsPassword(k),
    hello,
    5000,
    undefined,
    from,
  );
  conn.socket.destroy();
}

describe('ShadowTLS scanning budget', () => {
  it('spent: a new address is relayed, a recent one switches; refilled: the new one switches', async () => {
    await hello1(A, '127.0.0.2'); // the budget's one scan: A's address is now recent
    const relayed = listener.counts.relayed;
    await assert.rejects(hello1(B, '127.0.0.3'), /untagged/, 'a new address past the budget: relayed');
    await waitFor(() => listener.counts.relayed === relayed + 1);
    assert.equal(passwords.overBudget, 1);
    await hello1(A, '127.0.0.2'); // the recent address: its fast path is outside the budget
    await hello1(A, '127.0.0.2');
    assert.equal(passwords.overBudget, 1);
    // Not yet refilled (the scan's cost is still owed): relayed again.
    clock += 10;
    await assert.rejects(hello1(B, '127.0.0.3'), /untagged/);
    assert.equal(passwords.overBudget, 2);
    // Refilled: the scan's cost (two keys) in units, one per millisecond.
    clock += (2 * (hello.length + 200 + PER_HMAC_UNITS) * 1000) / PER_SECOND;
    await hello1(B, '127.0.0.3');
    await hello1(B, '127.0.0.3'); // now recent: no scan
    assert.equal(passwords.overBudget, 2);
  });
});
