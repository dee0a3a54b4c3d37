/**
 * C12: the HTTP block-page injector. A plain-HTTP request whose Host is listed never reaches the
 * site: the client reads a forged 403 block page instead, and the decision log says so. Controls:
 * an unlisted Host gets the site's own answer, and with C12 off the listed Host does too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { drainServer, echoServer, exchange, startWorld } from './helpers.js';

const request = (host: string): Buffer => Buffer.from(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);

test('C12: a listed Host gets the forged block page and the site never sees the request', async () => {
  const w = await startWorld('none', { c12: { enabled: true, hosts: ['c12.lab'] } });
  const server = await drainServer();
  try {
    const front = await w.addRemoteHost(server.address, { logicalPort: 80 });
    const r = await exchange(front.tcp, request('www.c12.lab'), { localAddress: '127.0.1.96', waitMs: 2000 });
    assert.equal(r.reaction, 'DATA');
    assert.match(
      r.data.toString('latin1'),
      /^HTTP\/1\.1 403 Forbidden\r\n[\s\S]*<title>Access denied<\/title>/,
    );
    const d = w.log.filter({ behaviour: 'C12' });
    assert.equal(d.length, 1);
    assert.equal(d[0]!.action, 'INJECT');
    assert.equal(d[0]!.blocked, true);
    assert.equal(
      server.received.reduce((n, b) => n + b.length, 0),
      0,
      'the request never reached the site',
    );
  } finally {
    await server.close();
    await w.stop();
  }
});

test('C12 controls: an unlisted Host, and a listed one with C12 off, get the site itself', async () => {
  for (const [overrides, host] of [
    [{ c12: { enabled: true, hosts: ['c12.lab'] } }, 'www.open.lab'],
    [{}, 'www.c12.lab'],
  ] as const) {
    const w = await startWorld('none', overrides);
    const server = await echoServer();
    try {
      const front = await w.addRemoteHost(server.address, { logicalPort: 80 });
      const r = await exchange(front.tcp, request(host), { localAddress: '127.0.1.96', waitMs: 2000 });
      assert.equal(r.reaction, 'DATA');
      assert.equal(r.data.toString('latin1'), request(host).toString('latin1'), 'the echo, not a block page');
      assert.equal(w.log.filter({ behaviour: 'C12' }).filter((x) => x.blocked).length, 0);
    } finally {
      await server.close();
      await w.stop();
    }
  }
});
