import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from '../errors.js';
import { formatSsUrl, parseSsUrl, type SsKey } from './index.js';

test('SIP002 spec examples', () => {
  assert.deepEqual(parseSsUrl('ss://YWVzLTEyOC1nY206dGVzdA@192.168.100.1:8888#Example1'), {
    method: 'aes-128-gcm',
    password: 'test',
    host: '192.168.100.1',
    port: 8888,
    tag: 'Example1',
  });
  assert.deepEqual(parseSsUrl('ss://cmM0LW1kNTpwYXNzd2Q@192.168.100.1:8888/?plugin=obfs-local%3Bobfs%3Dhttp#Example2'), {
    method: 'rc4-md5',
    password: 'passwd',
    host: '192.168.100.1',
    port: 8888,
    plugin: 'obfs-local',
    pluginOptions: 'obfs=http',
    tag: 'Example2',
  });
  const k3 = {
    method: '2022-blake3-aes-256-gcm',
    password: 'YctPZ6U7xPPcU+gp3u+0tx/tRizJN9K8y+uKlW2qjlI=',
    host: '192.168.100.1',
    port: 8888,
    tag: 'Example3',
  };
  const u3 = 'ss://2022-blake3-aes-256-gcm:YctPZ6U7xPPcU%2Bgp3u%2B0tx%2FtRizJN9K8y%2BuKlW2qjlI%3D@192.168.100.1:8888#Example3';
  assert.deepEqual(parseSsUrl(u3), k3);
  assert.equal(formatSsUrl(k3), u3);
  assert.deepEqual(parseSsUrl('ss://2022-blake3-aes-256-gcm:YctPZ6U7xPPcU%2Bgp3u%2B0tx%2FtRizJN9K8y%2BuKlW2qjlI%3D@192.168.100.1:8888/?plugin=v2ray-plugin%3Bserver#Example3'), {
    ...k3,
    plugin: 'v2ray-plugin',
    pluginOptions: 'server',
  });
  assert.equal(formatSsUrl({ method: 'aes-128-gcm', password: 'test', host: '192.168.100.1', port: 8888, tag: 'Example1' }), 'ss://YWVzLTEyOC1nY206dGVzdA@192.168.100.1:8888#Example1');
});

test('legacy whole-base64 form (password not encoded, may contain @ : # /)', () => {
  assert.deepEqual(parseSsUrl('ss://YmYtY2ZiOnRlc3QvIUAjOkAxOTIuMTY4LjEwMC4xOjg4ODg#example-server'), {
    method: 'bf-cfb',
    password: 'test/!@#:',
    host: '192.168.100.1',
    port: 8888,
    tag: 'example-server',
  });
});

test('Outline prefix: code points 0..255 are bytes', () => {
  const k = parseSsUrl('ss://Y2hhY2hhMjAtaWV0Zi1wb2x5MTMwNTpwYXNz@[::1]:8388/?outline=1&prefix=%16%03%01%00%C2%A8%01%01#x%20y');
  assert.deepEqual(k, {
    method: 'chacha20-ietf-poly1305',
    password: 'pass',
    host: '::1',
    port: 8388,
    prefix: Uint8Array.from([0x16, 0x03, 0x01, 0x00, 0xa8, 0x01, 0x01]),
    tag: 'x y',
  });
  assert.deepEqual(parseSsUrl(formatSsUrl(k)), k);
  assert.deepEqual(parseSsUrl('ss://YWVzLTEyOC1nY206dGVzdA@h:1/?prefix=POST%20').prefix, Uint8Array.from(Buffer.from('POST ')));
});

test('round trip of generated keys', () => {
  const key: fc.Arbitrary<SsKey> = fc.record(
    {
      method: fc.oneof(fc.constantFrom('aes-128-gcm', 'aes-256-gcm', 'chacha20-ietf-poly1305', '2022-blake3-aes-128-gcm'), fc.stringMatching(/^[A-Za-z0-9._+-]{1,20}$/)),
      password: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
      host: fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6()),
      port: fc.integer({ min: 1, max: 65535 }),
      tag: fc.string({ unit: 'grapheme', maxLength: 20 }),
      plugin: fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/),
      pluginOptions: fc.string({ unit: 'grapheme', maxLength: 30 }),
      prefix: fc.uint8Array({ maxLength: 16 }),
    },
    { requiredKeys: ['method', 'password', 'host', 'port'], noNullPrototype: true },
  ).filter((k) => k.pluginOptions === undefined || k.plugin !== undefined);
  fc.assert(
    fc.property(key, fc.constantFrom<'base64' | 'plain' | undefined>('base64', 'plain', undefined), (k, form) => {
      if (form === 'base64' && k.method.startsWith('2022-')) form = 'plain';
      const url = formatSsUrl(k, form === undefined ? {} : { form });
      assert.deepEqual(parseSsUrl(url), k);
    }),
    { numRuns: 500 },
  );
});

test('bad URLs: ERR_URL naming the part, never echoing the password', () => {
  const secret = 'S3cr3tPw';
  const b64 = (s: string) => Buffer.from(s).toString('base64url');
  const cases: Array<[string, RegExp]> = [
    ['http://x', /scheme/],
    ['ss://', /nothing after/],
    [`ss://${b64('aes-128-gcm:' + secret)}@host`, /port/],
    [`ss://${b64('aes-128-gcm:' + secret)}@host:0`, /port/],
    [`ss://${b64('aes-128-gcm:' + secret)}@host:65536`, /port/],
    [`ss://${b64('aes-128-gcm:' + secret)}@host:8x`, /port/],
    [`ss://${b64('aes-128-gcm:' + secret)}@:8388`, /host/],
    [`ss://${b64('aes-128-gcm:' + secret)}@2001:db8::1:8388`, /IPv6.*brackets/],
    [`ss://${b64('aes-128-gcm:' + secret)}@[2001:db8::1:8388`, /\]/],
    [`ss://${b64('aes-128-gcm:' + secret)}@[not-ipv6]:8388`, /IPv6/],
    [`ss://${b64('aes-128-gcm' + secret)}@h:1`, /":"/],
    [`ss://${b64(':' + secret)}@h:1`, /method is empty/],
    [`ss://${b64('aes-128-gcm:')}@h:1`, /password is empty/],
    [`ss://aes-128-gcm:${secret}%ZZ@h:1`, /password.*percent/],
    [`ss://@h:1`, /userinfo/],
    [`ss://${b64('aes-128-gcm:' + secret)}@h:1/path`, /path/],
    [`ss://${b64('aes-128-gcm:' + secret)}@h:1#%E0%A4%A`, /tag/],
    [`ss://${b64('aes-128-gcm:' + secret)}@h:1/?prefix=%E2%82%AC`, /prefix/],
    [`ss://${b64('aes-128-gcm:' + secret)}@h:1/?prefix=%G1`, /prefix/],
    [`ss://${b64('aes-128-gcm:' + secret)}@h:1/?plugin=%3Bopts`, /plugin/],
    [`ss://!!!${secret}@h:1`, /userinfo/],
    [`ss://${b64('aes-128-gcm:' + secret + '@h')}`, /port/],
    [`ss://${b64('a b:' + secret)}@h:1`, /method/],
  ];
  for (const [url, re] of cases) {
    assert.throws(
      () => parseSsUrl(url),
      (err: unknown) => {
        assert.ok(err instanceof ProtocolError, `${url}: ${String(err)}`);
        assert.equal(err.code, 'ERR_URL');
        assert.match(err.message, re, url);
        assert.ok(!err.message.includes(secret), `message echoes the password: ${err.message}`);
        return true;
      },
    );
  }
});
