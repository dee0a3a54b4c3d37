/** C4: TLS SNI filter on the first TLS record (default) or with record reassembly; 180 s residual. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpGet } from '../../src/lab/client-ops.js';
import { BLOCKED_NAME, OPEN_NAME } from '../../src/lab/world.js';
import { fragmentedHttpsGet, startWorld } from './helpers.js';

const getHttps = (
  w: Awaited<ReturnType<typeof startWorld>>,
  site: 'blocked' | 'open',
  sni: string,
  localAddress: string,
): Promise<string> =>
  httpGet({
    clock: w.clock,
    timeoutMs: 20_000,
    minRealMs: 3_000,
    localAddress,
    connect: w.sites[site].https,
    hostHeader: sni,
    tls: { servername: sni, ca: w.certs.ca },
  }).then((r) => r.outcome);

test('C4 first-record mode: blocked SNI is reset, open SNI passes, a two-record ClientHello passes', async () => {
  const w = await startWorld('none', { c4: { enabled: true, reassembleRecords: false } });
  try {
    assert.equal(await getHttps(w, 'open', OPEN_NAME, '127.0.1.41'), 'OK');
    assert.equal(await getHttps(w, 'blocked', BLOCKED_NAME, '127.0.1.42'), 'RST');
    const d = w.log.filter({ behaviour: 'C4', action: 'RST_BOTH' });
    assert.equal(d.length, 1);
    assert.equal(d[0]!.features.sni, BLOCKED_NAME);
    assert.equal(d[0]!.rule, 'sni-first-record');
    // The same blocked name, ClientHello split across two TLS records: not seen in first-record mode.
    assert.equal(
      await fragmentedHttpsGet(w.sites.blocked.https, BLOCKED_NAME, w.certs.ca, 40, '127.0.1.43'),
      'OK',
    );
    const partial = w.log.filter({ behaviour: 'C4' }).filter((x) => x.features.parsed === 'partial');
    assert.equal(partial.length, 1);
  } finally {
    await w.stop();
  }
});

test('C4 with record reassembly: the two-record ClientHello is reset (negative control for D8)', async () => {
  const w = await startWorld('none', { c4: { enabled: true, reassembleRecords: true } });
  try {
    assert.equal(
      await fragmentedHttpsGet(w.sites.blocked.https, BLOCKED_NAME, w.certs.ca, 40, '127.0.1.44'),
      'RST',
    );
    const d = w.log.filter({ behaviour: 'C4', action: 'RST_BOTH' });
    assert.equal(d.length, 1);
    assert.equal(d[0]!.rule, 'sni-reassembled');
    assert.equal(d[0]!.features.records, 2);
    // Open names still pass with reassembly on.
    assert.equal(await fragmentedHttpsGet(w.sites.open.https, OPEN_NAME, w.certs.ca, 40, '127.0.1.45'), 'OK');
  } finally {
    await w.stop();
  }
});

test('C4 residual: 180 s on the 3-tuple, other clients unaffected, expires', async () => {
  const w = await startWorld('none', { c4: { enabled: true, residualMs: 180_000 } });
  try {
    assert.equal(await getHttps(w, 'blocked', BLOCKED_NAME, '127.0.1.46'), 'RST');
    // Same 3-tuple, innocuous SNI: reset by the residual block.
    assert.equal(await getHttps(w, 'blocked', OPEN_NAME, '127.0.1.46'), 'RST');
    assert.equal(w.log.filter({ behaviour: 'residual', rule: 'c4-sni' }).length, 1);
    // Another client address is not affected (OPEN_NAME is also on the blocked host's certificate).
    assert.equal(await getHttps(w, 'blocked', OPEN_NAME, '127.0.1.47'), 'OK');
    // After 180 s of virtual time the residual has expired.
    await new Promise((r) => w.clock.setTimeout(() => r(undefined), 181_000));
    assert.equal(await getHttps(w, 'blocked', OPEN_NAME, '127.0.1.46'), 'OK');
  } finally {
    await w.stop();
  }
});

test('C4 ESNI rule (2020): a ClientHello with extension 0xffce is dropped client->server, not reset; residual drops', async () => {
  const { buildClientHello, EXT_ESNI } = await import('../../src/lab/tls-clienthello.js');
  const { drainServer, exchange } = await import('./helpers.js');
  const w = await startWorld('none', { c4: { enabled: true, esni: true } });
  const server = await drainServer();
  try {
    const front = await w.addRemoteHost(server.address, { logicalPort: 443 });
    const esni = buildClientHello({
      serverName: 'cover.example',
      extensions: [{ type: EXT_ESNI, data: Buffer.alloc(40, 7) }],
    });
    const r = await exchange(front.tcp, esni, {
      localAddress: '127.0.1.48',
      then: Buffer.from('after'),
      waitMs: 150,
    });
    assert.equal(r.reaction, 'TIMEOUT', 'no RST: the ESNI rule drops');
    const d = w.log.filter({ behaviour: 'C4', rule: 'esni' });
    assert.equal(d.length, 1);
    assert.equal(d[0]!.action, 'DROP_C2S');
    assert.deepEqual(server.received[0], esni, 'the ClientHello passed the tap; "after" was dropped');
    // Residual: a new connection on the same 3-tuple is blackholed.
    await exchange(front.tcp, Buffer.from('GET / HTTP/1.1\r\n\r\n'), {
      localAddress: '127.0.1.48',
      waitMs: 100,
    });
    assert.equal(w.log.filter({ behaviour: 'residual', rule: 'c4-esni' }).length, 1);
    // Control: the same ClientHello without 0xffce passes.
    const plain = buildClientHello({ serverName: 'cover.example' });
    await exchange(front.tcp, plain, { localAddress: '127.0.1.49', waitMs: 100 });
    assert.equal(w.log.filter({ behaviour: 'C4', action: 'PASS' }).length, 1);
  } finally {
    await server.close();
    await w.stop();
  }
});
