/**
 * D1/D3 first-packet shaping is not applied by default over a WebSocket next hop (v2ray-plugin
 * keys): the TCP connection's first packet there is TLS or the HTTP upgrade, so the shaped salt
 * and the second chunk of the first write would cost CPU per connection for nothing on the wire.
 * Checked on the bytes the dialer writes into the next hop: one chunk (salt, length, header and
 * data) by default; the control, `shape: true` on the same key, writes the 34 bytes of a second
 * chunk more (the first write's length is in C7's trigger, which D3 moves). And the same key without the plugin is still shaped by default.
 */
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { createTunnelDialer, shapesByDefault } from '../../src/client/index.js';
import { endpointFromKey } from '../../src/client/key.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';

const METHOD = 'chacha20-ietf-poly1305';
const key = (plugin: boolean): string =>
  formatSsUrl({
    method: METHOD,
    password: 'ws-shaping-password',
    host: '127.0.0.1',
    port: 8443,
    ...(plugin ? { plugin: 'v2ray-plugin', pluginOptions: 'tls;host=example.org;path=/p' } : {}),
  });

/** The bytes of the dialer's first write into a next hop that records them. */
async function firstWrite(shape: boolean | undefined): Promise<Buffer> {
  const written: Buffer[] = [];
  const hop = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      written.push(chunk);
      cb();
    },
  });
  const ep = { ...endpointFromKey(key(true), 'local'), nextHop: () => Promise.resolve(hop as Duplex) };
  const dialer = createTunnelDialer(ep, shape === undefined ? {} : { shape });
  const conn = await dialer.dial({ type: 'ipv4', host: '10.0.0.1', port: 80 }, Buffer.alloc(89, 1));
  await new Promise((r) => setImmediate(r));
  conn.socket.destroy();
  return Buffer.concat(written);
}

test('a WebSocket key is not shaped by default; the same key without the plugin is', () => {
  assert.equal(shapesByDefault(endpointFromKey(key(true), 'local')), false);
  assert.equal(shapesByDefault(endpointFromKey(key(false), 'local')), true);
});

test('over the next hop the first write is one chunk by default; shape: true adds a second (control)', async () => {
  // salt 32 + length 2+16 + (address 7 + data 89) + tag 16 = 162: a length in C7's trigger
  // (2 mod 16), which D3 moves out of it with a second chunk when it shapes.
  const oneChunk = 32 + 18 + 96 + 16;
  assert.equal((await firstWrite(undefined)).length, oneChunk);
  assert.equal((await firstWrite(true)).length, oneChunk + 34);
});
