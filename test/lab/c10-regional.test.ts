/**
 * C10: the regional (Henan) stateless filter: it inspects each chunk alone, so TCP segmentation
 * evades it, while the national C4 reassembles TCP and still catches the same ClientHello.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildClientHello } from '../../src/lab/tls-clienthello.js';
import { BLOCKED_NAME } from '../../src/lab/world.js';
import { drainServer, echoServer, exchange, startWorld } from './helpers.js';

const hello = buildClientHello({
  serverName: BLOCKED_NAME,
  extensions: [{ type: 0x15, data: Buffer.alloc(100) }],
});
const cut = hello.indexOf(Buffer.from(BLOCKED_NAME)) + 4; // inside the name

test('C10: a whole ClientHello in one chunk is reset (client only, no residual); a second connection passes', async () => {
  const w = await startWorld('none', { c10: { enabled: true } });
  const server = await echoServer();
  try {
    const front = await w.addRemoteHost(server.address, { logicalPort: 443 });
    assert.equal(
      (await exchange(front.tcp, hello, { localAddress: '127.0.1.95', waitMs: 150 })).reaction,
      'RST',
    );
    const d = w.log.filter({ behaviour: 'C10' });
    assert.equal(d.length, 1);
    assert.equal(d[0]!.action, 'RST_CLIENT');
    assert.equal(server.received[0]?.length ?? 0, 0, 'the offending chunk never reached the server');
    // No residual: the same 3-tuple with innocuous bytes passes.
    assert.equal(
      (await exchange(front.tcp, Buffer.from('hello'), { localAddress: '127.0.1.95', waitMs: 3000 }))
        .reaction,
      'DATA',
    );
    assert.equal(w.log.filter({ behaviour: 'residual' }).length, 0);
  } finally {
    await server.close();
    await w.stop();
  }
});

test('C10 is evaded by TCP segmentation; the national C4 (TCP reassembly) is not', async () => {
  for (const [name, overrides, expected] of [
    ['C10 only', { c10: { enabled: true } }, 'TIMEOUT'],
    ['C4 only', { c4: { enabled: true } }, 'RST'],
  ] as const) {
    const w = await startWorld('none', overrides);
    const server = await drainServer();
    try {
      const front = await w.addRemoteHost(server.address, { logicalPort: 443 });
      const r = await exchange(front.tcp, hello.subarray(0, cut), {
        localAddress: '127.0.1.96',
        then: hello.subarray(cut),
        waitMs: 250,
      });
      assert.equal(r.reaction, expected, name);
    } finally {
      await server.close();
      await w.stop();
    }
  }
});
