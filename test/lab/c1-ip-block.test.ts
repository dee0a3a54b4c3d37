/** C1: static IP and IP:port blocking by null-routing (server->client dropped). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { ADDR } from '../../src/lab/world.js';
import { echoServer, exchange, startWorld } from './helpers.js';

test('C1 ip:port: the blocked endpoint is null-routed (bytes reach the server, nothing returns); other ports pass', async () => {
  const server = await echoServer();
  const w = await startWorld('none', { c1: { enabled: true, blocked: [{ ip: '127.0.20.7', port: 8388 }] } });
  try {
    const blocked = await w.addRemoteHost(server.address, { ip: '127.0.20.7', logicalPort: 8388 });
    const other = await w.addRemoteHost(server.address, { ip: '127.0.20.7', logicalPort: 8389 });
    const r = await exchange(blocked.tcp, Buffer.from('hello'), { localAddress: '127.0.1.11', waitMs: 200 });
    assert.equal(r.reaction, 'TIMEOUT');
    assert.deepEqual(
      server.received[0],
      Buffer.from('hello'),
      'the server got the bytes: only server->client is dropped',
    );
    const d = w.log.filter({ behaviour: 'C1', rule: 'null-route' });
    assert.equal(d.length, 1);
    assert.equal(d[0]!.action, 'DROP_S2C');
    const ok = await exchange(other.tcp, Buffer.from('hello'), { localAddress: '127.0.1.11', waitMs: 3000 });
    assert.equal(ok.reaction, 'DATA');
  } finally {
    await server.close();
    await w.stop();
  }
});

test('C1 ip scope blocks every port of the address; C1 disabled (control) passes', async () => {
  const server = await echoServer();
  const w = await startWorld('none', { c1: { enabled: true, blocked: [{ ip: '127.0.20.8' }] } });
  const ctl = await startWorld('none', { c1: { enabled: false, blocked: [{ ip: '127.0.20.8' }] } });
  try {
    for (const lp of [443, 8388]) {
      const h = await w.addRemoteHost(server.address, { ip: '127.0.20.8', logicalPort: lp });
      assert.equal(
        (await exchange(h.tcp, Buffer.from('x'), { localAddress: '127.0.1.12', waitMs: 150 })).reaction,
        'TIMEOUT',
      );
    }
    const c = await ctl.addRemoteHost(server.address, { ip: '127.0.20.8', logicalPort: 443 });
    assert.equal(
      (await exchange(c.tcp, Buffer.from('x'), { localAddress: '127.0.1.12', waitMs: 3000 })).reaction,
      'DATA',
    );
  } finally {
    await server.close();
    await w.stop();
    await ctl.stop();
  }
});

test('C1 applies to UDP flows too: replies from a blocked endpoint are dropped (control: they arrive)', async () => {
  for (const enabled of [true, false]) {
    const w = await startWorld('none', { c1: { enabled, blocked: [{ ip: ADDR.resolver }] } });
    try {
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '127.0.1.13', r));
      let got = 0;
      sock.on('message', () => got++);
      sock.send(
        Buffer.from('000001000001000000000000046f70656e036c61620000010001', 'hex'),
        w.resolver.port,
        w.resolver.host,
      );
      await new Promise((r) => setTimeout(r, 200));
      sock.close();
      assert.equal(got, enabled ? 0 : 1, `C1 enabled=${enabled}`);
    } finally {
      await w.stop();
    }
  }
});
