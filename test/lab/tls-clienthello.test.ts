import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { fragmentRecord, inspectClientHello, splitRecords } from '../../src/lab/tls-clienthello.js';

/** Capture a real ClientHello from Node's TLS stack. */
export async function captureClientHello(servername: string): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const got = new Promise<Buffer>((resolve) => {
    server.once('connection', (s) => {
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const { records } = splitRecords(buf);
        if (records.length > 0) {
          s.destroy();
          resolve(buf);
        }
      });
    });
  });
  const c = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
  c.on('error', () => undefined);
  const hello = await got;
  c.destroy();
  server.close();
  return hello;
}

test('parses SNI and ALPN from a real ClientHello', async () => {
  const hello = await captureClientHello('www.Blocked.lab');
  const r = inspectClientHello(hello);
  assert.equal(r.status, 'ok');
  if (r.status !== 'ok') return;
  assert.equal(r.hello.serverName, 'www.blocked.lab');
  assert.equal(r.records, 1);
  assert.equal(r.hello.hasEsni, false);
});

test('first-record-only mode does not see a ClientHello split across two records; reassembly does', async () => {
  const hello = await captureClientHello('www.blocked.lab');
  const split = fragmentRecord(hello, [40]);
  assert.equal(splitRecords(split).records.length, 2);
  assert.deepEqual(inspectClientHello(split), { status: 'partial', records: 1 });
  const r = inspectClientHello(split, { reassembleRecords: true });
  assert.equal(r.status, 'ok');
  if (r.status === 'ok') {
    assert.equal(r.hello.serverName, 'www.blocked.lab');
    assert.equal(r.records, 2);
  }
});

test('incomplete and non-TLS input never throws', async () => {
  const hello = await captureClientHello('a.example');
  for (let i = 0; i < hello.length; i += 7) {
    const r = inspectClientHello(hello.subarray(0, i));
    assert.ok(['need-more', 'ok'].includes(r.status), `${i}: ${r.status}`);
  }
  assert.equal(inspectClientHello(Buffer.from('GET / HTTP/1.1\r\n')).status, 'not-tls');
  const bad = Buffer.from(hello);
  bad[5] = 2; // handshake type ServerHello
  assert.equal(inspectClientHello(bad).status, 'malformed');
  for (let i = 0; i < 200; i++) {
    const junk = Buffer.concat([
      Buffer.from([0x16, 0x03, 0x01, 0x00, 0x30]),
      Buffer.from(Array.from({ length: 48 }, (_, j) => (i * 31 + j * 17) & 0xff)),
    ]);
    inspectClientHello(junk);
    inspectClientHello(junk, { reassembleRecords: true });
  }
});

test('buildClientHello round-trips through the parser, with extra extensions', async () => {
  const { buildClientHello, EXT_ESNI } = await import('../../src/lab/tls-clienthello.js');
  const r = inspectClientHello(
    buildClientHello({
      serverName: 'x.blocked.lab',
      extensions: [{ type: EXT_ESNI, data: Buffer.alloc(3) }],
    }),
  );
  assert.equal(r.status, 'ok');
  if (r.status !== 'ok') return;
  assert.equal(r.hello.serverName, 'x.blocked.lab');
  assert.equal(r.hello.hasEsni, true);
  assert.deepEqual(r.hello.extensions, [0, EXT_ESNI]);
});
