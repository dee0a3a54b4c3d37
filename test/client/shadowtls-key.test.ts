// A key for a Shadowsocks node behind ShadowTLS v3, as Shadowrocket, Sub-Store and mihomo-based
// converters write it (`plugin=shadow-tls;host=SNI;password=…;version=3`): the endpoint gets the
// ShadowTLS transport (a lazily loaded next hop), UDP rides in its streams, and a bad field is one
// line with neither password in it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endpointFromKey } from '../../src/client/key.js';
import { pathKey } from '../../src/client/picker.js';
import { warnPluginNotes } from '../../src/cli/client-setup.js';
import type { Logger } from '../../src/shared/logger.js';

const key = (opts: string): string =>
  `ss://${Buffer.from('2022-blake3-aes-128-gcm:AAECAwQFBgcICQoLDA0ODw==').toString('base64url')}@203.0.113.5:443?plugin=${encodeURIComponent(`shadow-tls;${opts}`)}#node`;

test('a shadow-tls key: the ShadowTLS endpoint, UoT v2 for UDP, a next hop, the path it takes', () => {
  const ep = endpointFromKey(key('host=www.example.com;password=stls-pass;version=3'), 'local');
  assert.deepEqual(ep.shadowTls, {
    address: '203.0.113.5',
    port: 443,
    sni: 'www.example.com',
    password: 'stls-pass',
  });
  assert.equal(ep.method, '2022-blake3-aes-128-gcm');
  assert.equal(ep.udpOverTcp, 2);
  assert.equal(typeof ep.nextHop, 'function');
  assert.equal(pathKey(ep), 'shadowtls 203.0.113.5:443 www.example.com');
  assert.equal(ep.pluginNotes, undefined);
  (ep.nextHop as unknown as { close(): void }).close();
});

test('a key with uot=1 keeps it; fp= is a note', () => {
  const ep = endpointFromKey(
    `${key('host=a.test;password=p;version=3;fp=chrome').replace('#node', '')}&uot=1`,
    'local',
  );
  assert.equal(ep.udpOverTcp, 1);
  assert.match(ep.pluginNotes?.[0] ?? '', /"fp" is ignored/);
  const warned: string[] = [];
  warnPluginNotes([ep], { warn: (_o: unknown, msg: string) => warned.push(msg) } as unknown as Logger);
  assert.deepEqual(warned, [
    'key of endpoint 1: shadow-tls option "fp" is ignored (the ClientHello is always Chrome-shaped)',
  ]);
});

test('bad shadow-tls fields: one line, no password of either layer', () => {
  for (const [opts, re] of [
    ['host=a.test;password=stls-pass', /invalid ss:\/\/ URL: shadow-tls plugin without version=/],
    ['host=a.test;password=stls-pass;version=2', /version=2 is not supported/],
    ['password=stls-pass;version=3', /without host=/],
    ['host=a.test;version=3', /without password=/],
  ] as const) {
    assert.throws(
      () => endpointFromKey(key(opts), 'local'),
      (err: Error) =>
        re.test(err.message) &&
        !err.message.includes('stls-pass') &&
        !err.message.includes('AAECAwQF') &&
        !err.message.includes('\n'),
      opts,
    );
  }
});
