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
  assert.deepEqual(
    parseSsUrl('ss://cmM0LW1kNTpwYXNzd2Q@192.168.100.1:8888/?plugin=obfs-local%3Bobfs%3Dhttp#Example2'),
    {
      method: 'rc4-md5',
      password: 'passwd',
      host: '192.168.100.1',
      port: 8888,
      plugin: 'obfs-local',
      pluginOptions: 'obfs=http',
      tag: 'Example2',
    },
  );
  const k3 = {
    method: '2022-blake3-aes-256-gcm',
    password: 'YctPZ6U7xPPcU+gp3u+0tx/tRizJN9K8y+uKlW2qjlI=',
    host: '192.168.100.1',
    port: 8888,
    tag: 'Example3',
  };
  const u3 =
    'ss://2022-blake3-aes-256-gcm:YctPZ6U7xPPcU%2Bgp3u%2B0tx%2FtRizJN9K8y%2BuKlW2qjlI%3D@192.168.100.1:8888#Example3';
  assert.deepEqual(parseSsUrl(u3), k3);
  assert.equal(formatSsUrl(k3), u3);
  assert.deepEqual(
    parseSsUrl(
      'ss://2022-blake3-aes-256-gcm:YctPZ6U7xPPcU%2Bgp3u%2B0tx%2FtRizJN9K8y%2BuKlW2qjlI%3D@192.168.100.1:8888/?plugin=v2ray-plugin%3Bserver#Example3',
    ),
    {
      ...k3,
      plugin: 'v2ray-plugin',
      pluginOptions: 'server',
    },
  );
  assert.equal(
    formatSsUrl({
      method: 'aes-128-gcm',
      password: 'test',
      host: '192.168.100.1',
      port: 8888,
      tag: 'Example1',
    }),
    'ss://YWVzLTEyOC1nY206dGVzdA@192.168.100.1:8888#Example1',
  );
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
  const k = parseSsUrl(
    'ss://Y2hhY2hhMjAtaWV0Zi1wb2x5MTMwNTpwYXNz@[::1]:8388/?outline=1&prefix=%16%03%01%00%C2%A8%01%01#x%20y',
  );
  assert.deepEqual(k, {
    method: 'chacha20-ietf-poly1305',
    password: 'pass',
    host: '::1',
    port: 8388,
    prefix: Uint8Array.from([0x16, 0x03, 0x01, 0x00, 0xa8, 0x01, 0x01]),
    tag: 'x y',
  });
  assert.deepEqual(parseSsUrl(formatSsUrl(k)), k);
  assert.deepEqual(
    parseSsUrl('ss://YWVzLTEyOC1nY206dGVzdA@h:1/?prefix=POST%20').prefix,
    Uint8Array.from(Buffer.from('POST ')),
  );
});

test("UDP-over-TCP: uot=1|2 and mihomo's udp-over-tcp=true (version 1); other values ignored", () => {
  const base = 'ss://YWVzLTEyOC1nY206dGVzdA@h:1/?plugin=v2ray-plugin%3Bmode%3Dwebsocket';
  assert.equal(parseSsUrl(`${base}&uot=2`).uot, 2);
  assert.equal(parseSsUrl(`${base}&uot=1`).uot, 1);
  assert.equal(parseSsUrl(`${base}&udp-over-tcp=true`).uot, 1);
  assert.equal(parseSsUrl(`${base}&udp-over-tcp=true&uot=2`).uot, 2);
  assert.equal(parseSsUrl(`${base}&uot=3`).uot, undefined);
  assert.equal(parseSsUrl(`${base}&udp-over-tcp=false`).uot, undefined);
  assert.equal(parseSsUrl(base).uot, undefined);
  const k = parseSsUrl(`${base}&uot=2#t`);
  assert.match(formatSsUrl(k), /&uot=2#t$/);
  assert.deepEqual(parseSsUrl(formatSsUrl(k)), k);
});

test('round trip of generated keys', () => {
  const key: fc.Arbitrary<SsKey> = fc
    .record(
      {
        method: fc.oneof(
          fc.constantFrom('aes-128-gcm', 'aes-256-gcm', 'chacha20-ietf-poly1305', '2022-blake3-aes-128-gcm'),
          fc.stringMatching(/^[A-Za-z0-9._+-]{1,20}$/),
        ),
        password: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
        host: fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6()),
        port: fc.integer({ min: 1, max: 65535 }),
        tag: fc.string({ unit: 'grapheme', maxLength: 20 }),
        plugin: fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/),
        pluginOptions: fc.string({ unit: 'grapheme', maxLength: 30 }),
        prefix: fc.uint8Array({ maxLength: 16 }),
      },
      { requiredKeys: ['method', 'password', 'host', 'port'], noNullPrototype: true },
    )
    .filter((k) => k.pluginOptions === undefined || k.plugin !== undefined);
  fc.assert(
    fc.property(
      key,
      fc.constantFrom<'base64' | 'plain' | undefined>('base64', 'plain', undefined),
      (k, form) => {
        if (form === 'base64' && k.method.startsWith('2022-')) form = 'plain';
        const url = formatSsUrl(k, form === undefined ? {} : { form });
        assert.deepEqual(parseSsUrl(url), k);
      },
    ),
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

const AES = { method: 'aes-256-gcm', password: 'pa/ss+w=rd?', host: 'example.com', port: 8388 };

test('userinfo variants: base64url, standard base64 padded or not, %3D padding, plain', () => {
  const text = `${AES.method}:${AES.password}`;
  const std = Buffer.from(text).toString('base64'); // contains "/" or "+" and "=" padding
  const forms = [
    Buffer.from(text).toString('base64url'),
    std,
    std.replace(/=+$/, ''),
    std.replace(/=/g, '%3D'),
    `${AES.method}:${encodeURIComponent(AES.password)}`,
    `${encodeURIComponent(AES.method)}%3A${encodeURIComponent(AES.password)}`, // whole userinfo encoded
  ];
  for (const ui of forms) {
    assert.deepEqual(parseSsUrl(`ss://${ui}@example.com:8388`), AES, ui);
    assert.deepEqual(parseSsUrl(`SS://${ui}@example.com:8388/`), AES, ui);
  }
  assert.deepEqual(parseSsUrl(`  ss://${forms[0]}@example.com:8388\n`), AES);
});

test('2022 keys: plain userinfo, iPSK:uPSK passwords with ":" raw or encoded', () => {
  const pw = 'AAAAAAAAAAAAAAAAAAAAAA==:BBBBBBBBBBBBBBBBBBBBBB==';
  const k = { method: '2022-blake3-aes-128-gcm', password: pw, host: '2001:db8::1', port: 443 };
  const url = formatSsUrl(k);
  assert.equal(
    url,
    'ss://2022-blake3-aes-128-gcm:AAAAAAAAAAAAAAAAAAAAAA%3D%3D%3ABBBBBBBBBBBBBBBBBBBBBB%3D%3D@[2001:db8::1]:443',
  );
  assert.deepEqual(parseSsUrl(url), k);
  assert.deepEqual(parseSsUrl(`ss://2022-blake3-aes-128-gcm:${pw}@[2001:db8::1]:443`), k);
  assert.throws(
    () => formatSsUrl(k, { form: 'base64' }),
    (e: unknown) => e instanceof ProtocolError && e.code === 'ERR_URL' && /2022/.test(e.message),
  );
  // Explicit plain form for a 2017 method.
  assert.equal(
    formatSsUrl({ ...AES, host: 'h' }, { form: 'plain' }),
    'ss://aes-256-gcm:pa%2Fss%2Bw%3Drd%3F@h:8388',
  );
});

test('legacy form: standard base64 with "/" and "+", padding, trailing slash, IPv6, query', () => {
  const cases: Array<[string, SsKey]> = [
    [
      'aes-128-gcm:p/a+s?s@1.2.3.4:443',
      { method: 'aes-128-gcm', password: 'p/a+s?s', host: '1.2.3.4', port: 443 },
    ],
    [
      'chacha20-ietf-poly1305:x@[::1]:8388',
      { method: 'chacha20-ietf-poly1305', password: 'x', host: '::1', port: 8388 },
    ],
    [
      'aes-256-gcm:>>>???@h.example:1',
      { method: 'aes-256-gcm', password: '>>>???', host: 'h.example', port: 1 },
    ],
  ];
  for (const [plain, key] of cases) {
    const std = Buffer.from(plain).toString('base64');
    for (const body of [std, std.replace(/=+$/, ''), Buffer.from(plain).toString('base64url'), std + '/']) {
      assert.deepEqual(parseSsUrl(`ss://${body}`), key, body);
      assert.deepEqual(parseSsUrl(`ss://${body}#t%20x`), { ...key, tag: 't x' }, body);
    }
    assert.deepEqual(parseSsUrl(`ss://${Buffer.from(plain).toString('base64url')}/?plugin=p%3Bo`), {
      ...key,
      plugin: 'p',
      pluginOptions: 'o',
    });
  }
});

test('query details: plugin forms, unknown and repeated parameters, "+" as space, raw prefix bytes', () => {
  const base = 'ss://YWVzLTEyOC1nY206dGVzdA@h:1';
  const k = { method: 'aes-128-gcm', password: 'test', host: 'h', port: 1 };
  assert.deepEqual(parseSsUrl(`${base}/?plugin=v2ray-plugin`), { ...k, plugin: 'v2ray-plugin' });
  assert.deepEqual(parseSsUrl(`${base}?plugin=v2ray-plugin`), { ...k, plugin: 'v2ray-plugin' }); // "/" optional
  assert.deepEqual(parseSsUrl(`${base}/?plugin=obfs-local;obfs=http;obfs-host=a.b`), {
    ...k,
    plugin: 'obfs-local',
    pluginOptions: 'obfs=http;obfs-host=a.b',
  });
  assert.deepEqual(parseSsUrl(`${base}/?plugin=x%3B`), { ...k, plugin: 'x', pluginOptions: '' });
  assert.deepEqual(parseSsUrl(`${base}/?plugin=x%3Bpath%3D%2Fa+b`), {
    ...k,
    plugin: 'x',
    pluginOptions: 'path=/a b',
  });
  assert.deepEqual(parseSsUrl(`${base}/?plugin=`), k);
  assert.deepEqual(parseSsUrl(`${base}/?unsupported-arguments=should-be-ignored&&plugin=a&plugin=b`), {
    ...k,
    plugin: 'a',
  });
  assert.deepEqual(parseSsUrl(`${base}/?prefix=%16%03%01`).prefix, Uint8Array.of(0x16, 3, 1));
  assert.deepEqual(parseSsUrl(`${base}/?prefix=%A8%FF`).prefix, Uint8Array.of(0xa8, 0xff)); // not UTF-8: raw bytes
  assert.deepEqual(parseSsUrl(`${base}/?prefix=`).prefix, new Uint8Array(0));
  assert.deepEqual(parseSsUrl(`${base}#a+b%2Bc`).tag, 'a+b+c'); // fragment: "+" is literal
  assert.deepEqual(parseSsUrl(`${base}#`).tag, '');
  // Every prefix byte 0..255 survives the Outline encoding.
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.deepEqual(parseSsUrl(formatSsUrl({ ...k, prefix: all })).prefix, all);
  assert.match(formatSsUrl({ ...k, prefix: Uint8Array.of(0xa8) }), /prefix=%C2%A8/);
});

test('formatSsUrl refuses keys it cannot write faithfully', () => {
  const k = { method: 'aes-128-gcm', password: 'test', host: 'h', port: 1 };
  const bad: SsKey[] = [
    { ...k, method: '' },
    { ...k, method: 'a:b' },
    { ...k, password: '' },
    { ...k, port: 0 },
    { ...k, port: 65536 },
    { ...k, host: '' },
    { ...k, host: 'a/b' },
    { ...k, host: '1:2' },
    { ...k, plugin: '' },
    { ...k, plugin: 'a;b' },
    { ...k, pluginOptions: 'x' },
    { ...k, tag: '\ud800' },
    { ...k, password: 'x\udc00' },
  ];
  for (const key of bad) {
    assert.throws(
      () => formatSsUrl(key),
      (e: unknown) => e instanceof ProtocolError && e.code === 'ERR_URL' && !e.message.includes('test'),
      JSON.stringify(key),
    );
  }
});

test('garbage and mutated URLs only ever throw ERR_URL, and never echo the password', () => {
  const secret = 'Zq7Secret9Kx';
  const valid = [
    formatSsUrl({
      method: 'aes-256-gcm',
      password: secret,
      host: 'example.com',
      port: 8388,
      tag: 'T',
      plugin: 'p',
      pluginOptions: 'o=1',
    }),
    formatSsUrl({
      method: '2022-blake3-aes-256-gcm',
      password: secret,
      host: '::1',
      port: 1,
      prefix: Uint8Array.of(1, 2),
    }),
    'ss://' + Buffer.from(`aes-128-gcm:${secret}@1.2.3.4:5`).toString('base64'),
  ];
  const check = (url: string) => {
    try {
      parseSsUrl(url);
    } catch (err) {
      assert.ok(err instanceof ProtocolError, `${url}: ${String(err)}`);
      assert.equal(err.code, 'ERR_URL');
      assert.ok(!err.message.includes(secret), err.message);
    }
  };
  fc.assert(
    fc.property(
      fc.constantFrom(...valid),
      fc.array(fc.tuple(fc.nat(), fc.nat(), fc.string({ maxLength: 3 })), { maxLength: 4 }),
      (url, edits) => {
        let u = url;
        for (const [pos, del, ins] of edits) {
          const p = pos % (u.length + 1);
          u = u.slice(0, p) + ins + u.slice(p + (del % 4));
        }
        check(u);
      },
    ),
    { numRuns: 1500 },
  );
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (s) => {
      check(s);
      check('ss://' + s);
    }),
    { numRuns: 1000 },
  );
  // A non-string (from untyped JSON) is also an ERR_URL.
  assert.throws(
    () => parseSsUrl(42 as unknown as string),
    (e: unknown) => e instanceof ProtocolError && e.code === 'ERR_URL',
  );
});
