import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDynamicKeyBody, refusalText } from '../../src/client/dynamic-key.js';
import { parseDynamicKeyUrl } from '../../src/client/dynamic-fetch.js';

const PW = 'TopSecretPw42';
const b64 = (s: string): string => Buffer.from(s).toString('base64url');
const ss = (port: number, extra = ''): string =>
  `ss://${b64(`chacha20-ietf-poly1305:${PW}`)}@198.51.100.7:${port}${extra}`;

function endpoints(body: string) {
  const r = parseDynamicKeyBody(body);
  assert.equal(r.kind, 'endpoints', JSON.stringify(r));
  return r.kind === 'endpoints' ? r : assert.fail();
}

test('Outline legacy JSON, with a prefix whose characters are bytes', () => {
  const r = endpoints(
    JSON.stringify({
      server: '198.51.100.7',
      server_port: 8388,
      method: 'chacha20-ietf-poly1305',
      password: PW,
      prefix: '\u0016\u0003\u0001\u00ff',
    }),
  );
  assert.equal(r.format, 'outline-json');
  const [e] = r.endpoints;
  assert.deepEqual(
    [e!.host, e!.port, e!.method, e!.password],
    ['198.51.100.7', 8388, 'chacha20-ietf-poly1305', PW],
  );
  assert.deepEqual([...e!.prefix!], [0x16, 0x03, 0x01, 0xff]);
});

test('a bare ss:// URL with ?prefix, and a list of links, plain or base64', () => {
  const one = endpoints(ss(443, '/?prefix=POST%20'));
  assert.equal(one.format, 'ss-url');
  assert.equal(Buffer.from(one.endpoints[0]!.prefix!).toString(), 'POST ');
  const list = `${ss(443)}#a\n${ss(8388)}#b\n`;
  const plain = endpoints(list);
  assert.equal(plain.format, 'ss-list');
  assert.deepEqual(
    plain.endpoints.map((e) => [e.port, e.tag]),
    [
      [443, 'a'],
      [8388, 'b'],
    ],
  );
  const enc = endpoints(Buffer.from(list).toString('base64'));
  assert.deepEqual(
    enc.endpoints.map((e) => e.port),
    [443, 8388],
  );
});

test('SIP008: every server in order, v2ray-plugin entries become WebSocket endpoints', () => {
  const r = endpoints(
    JSON.stringify({
      version: 1,
      servers: [
        { server: 'a.example', server_port: 443, method: 'aes-256-gcm', password: PW, remarks: 'one' },
        {
          server: 'b.example',
          server_port: 443,
          method: 'aes-256-gcm',
          password: PW,
          plugin: 'v2ray-plugin',
          plugin_opts: 'tls;host=cdn.example;path=/ws;mux=0',
        },
      ],
    }),
  );
  assert.equal(r.format, 'sip008');
  assert.equal(r.endpoints[0]!.tag, 'one');
  assert.equal(r.endpoints[1]!.websocket?.url, 'wss://b.example:443/ws');
  assert.equal(typeof r.endpoints[1]!.nextHop, 'function');
});

test('Outline YAML: tcpudp with anchors and <<, prefix, udp side kept', () => {
  const r = endpoints(`
transport:
  $type: tcpudp
  tcp:
    <<: &shared
      $type: shadowsocks
      endpoint: ss.example.com:4321
      cipher: chacha20-ietf-poly1305
      secret: ${PW}
    prefix: "POST "
  udp: *shared
`);
  assert.equal(r.format, 'outline-yaml');
  assert.equal(r.endpoints.length, 1);
  assert.equal(r.endpoints[0]!.host, 'ss.example.com');
  assert.equal(Buffer.from(r.endpoints[0]!.prefix!).toString(), 'POST ');
  assert.equal(r.udp?.port, 4321);
  assert.equal(r.udp?.prefix, undefined);
});

test('Outline YAML: first-supported WebSocket (with a fronting endpoint) then raw Shadowsocks, in order', () => {
  const r = endpoints(`
transport:
  $type: tcpudp
  tcp:
    $type: shadowsocks
    endpoint:
      $type: first-supported
      options:
        - $type: websocket
          url: wss://front.example/SECRET_PATH/tcp
          endpoint: edge.cdn.example:443
        - $type: websocket
          url: https://origin.example:8443/SECRET_PATH/tcp
        - $type: dial
          address: ss.example.com:4321
        - $type: dial
          address: exit.example:1
          dialer: { $type: shadowsocks, endpoint: entry.example:2, cipher: aes-256-gcm, secret: x }
        - ss.example.com:443
    cipher: chacha20-ietf-poly1305
    secret: ${PW}
`);
  // The multi-hop option is skipped; the rest keep their order.
  assert.deepEqual(
    r.endpoints.map((e) => e.websocket?.url ?? `${e.host}:${e.port}`),
    [
      'wss://edge.cdn.example:443/SECRET_PATH/tcp',
      'wss://origin.example:8443/SECRET_PATH/tcp',
      'ss.example.com:4321',
      'ss.example.com:443',
    ],
  );
  assert.equal(r.endpoints[0]!.websocket?.host, 'front.example', 'Host header: the URL host, not the edge');
  assert.equal(r.endpoints[0]!.websocket?.servername, 'front.example');
  assert.equal(r.endpoints[0]!.websocket?.mux, false, "Outline's dialect: no mux");
});

test('first-supported at the transport level; JSON form of the YAML config', () => {
  const r = endpoints(
    JSON.stringify({
      transport: {
        $type: 'first-supported',
        options: [
          { $type: 'quic-magic' },
          {
            $type: 'tcpudp',
            tcp: { $type: 'shadowsocks', endpoint: '[2001:db8::1]:8388', cipher: 'aes-128-gcm', secret: PW },
          },
        ],
      },
    }),
  );
  assert.deepEqual([r.endpoints[0]!.host, r.endpoints[0]!.port], ['2001:db8::1', 8388]);
});

test('error bodies: the server message in plain words, YAML or JSON', () => {
  const y = parseDynamicKeyBody(
    'error:\n  message: Quota exceeded\n  details: Used 1.00 GiB out of 1.00 GiB\n',
  );
  assert.deepEqual(y, { kind: 'error', message: 'Quota exceeded', details: 'Used 1.00 GiB out of 1.00 GiB' });
  assert.equal(refusalText(y as never), 'server says: Quota exceeded — Used 1.00 GiB out of 1.00 GiB');
  const j = parseDynamicKeyBody('{"error":{"message":"Access key\\u001b[31m expired"}}');
  assert.deepEqual(
    j,
    { kind: 'error', message: 'Access key [31m expired' },
    'control characters do not reach the terminal',
  );
});

const malformed: Array<[string, string, RegExp]> = [
  ['empty', '  \n', /empty body/],
  ['HTML page', '<html><body>Blocked</body></html>', /expected an object/],
  ['broken JSON', '{"server": "a", ', /not JSON or YAML/],
  ['number', '42', /expected an object/],
  ['unknown object', '{"hello": 1}', /no "transport", "error", "server" or "servers"/],
  [
    'legacy without password',
    '{"server":"a.example","server_port":1,"method":"aes-256-gcm"}',
    /"password" must be/,
  ],
  [
    'legacy bad port',
    `{"server":"a.example","server_port":70000,"method":"aes-256-gcm","password":"${PW}"}`,
    /server_port: port must be/,
  ],
  [
    'stream cipher',
    `{"server":"a.example","server_port":1,"method":"rc4-md5","password":"${PW}"}`,
    /stream cipher|rc4-md5/,
  ],
  [
    'prefix above a byte',
    `{"server":"a.example","server_port":1,"method":"aes-256-gcm","password":"${PW}","prefix":"\\u0100"}`,
    /prefix character 1 is above U\+00FF/,
  ],
  [
    'prefix longer than the salt',
    `{"server":"a.example","server_port":1,"method":"aes-128-gcm","password":"${PW}","prefix":"${'x'.repeat(17)}"}`,
    /longer than the 16-byte salt/,
  ],
  ['SIP008 empty', '{"version":1,"servers":[]}', /servers: the list is empty/],
  ['error without message', '{"error":{"details":"x"}}', /error: must be an object with a "message"/],
  [
    'transport of unknown type',
    `transport: {$type: quic, secret: ${PW}}`,
    /transport: \$type "quic" is not supported/,
  ],
  [
    'endpoint not host:port',
    `transport: {$type: shadowsocks, endpoint: nowhere, cipher: aes-256-gcm, secret: ${PW}}`,
    /transport\.endpoint: endpoint must be "host:port"/,
  ],
  [
    'websocket ftp url',
    `transport: {$type: shadowsocks, endpoint: {$type: websocket, url: "ftp://x/y"}, cipher: aes-256-gcm, secret: ${PW}}`,
    /endpoint\.url: scheme must be/,
  ],
  [
    'first-supported all unusable',
    `transport: {$type: first-supported, options: [{$type: nope}]}`,
    /options\[0\]: \$type "nope"/,
  ],
  ['bad ss link', 'ss://!!notbase64!!@127.0.0.1:1', /userinfo/],
];
for (const [name, body, re] of malformed) {
  test(`malformed body (${name}): one line naming what is wrong, no password`, () => {
    let msg = '';
    assert.throws(
      () => parseDynamicKeyBody(body),
      (err: Error) => {
        msg = err.message;
        return true;
      },
    );
    assert.match(msg, re);
    assert.ok(!msg.includes('\n'), `one line: ${msg}`);
    assert.ok(!msg.includes(PW), `no password: ${msg}`);
  });
}

test('key URLs: ssconf:// becomes https://, the certSha256 pin is taken out, the tag kept; http:// refused', () => {
  const pin = 'AB:'.repeat(31) + 'AB';
  const k = parseDynamicKeyUrl(`ssconf://127.0.0.1:8443/access/TOKEN?certSha256=${pin}#My%20key`);
  assert.equal(k.url.toString(), 'https://127.0.0.1:8443/access/TOKEN');
  assert.equal(k.pinSha256, 'ab'.repeat(32));
  assert.equal(k.tag, 'My key');
  assert.throws(() => parseDynamicKeyUrl('http://x.example/access/TOKEN'), /in clear/);
  assert.throws(() => parseDynamicKeyUrl('ssconf://x.example/a?certSha256=12'), /64 hex digits/);
  const plain = parseDynamicKeyUrl('https://x.example/sub/TOKEN?format=sip008');
  assert.equal(plain.pinSha256, undefined);
  assert.equal(plain.url.search, '?format=sip008', 'other query parameters are kept');
});

test('a fetched key may not name a file on this machine: cert= is ignored with a note (the same option in a local key reads the file)', async () => {
  const { endpointFromKey } = await import('../../src/client/key.js');
  const url = `ss://${Buffer.from('chacha20-ietf-poly1305:pw-fetched').toString('base64url')}@cdn.example.net:443/?plugin=${encodeURIComponent('v2ray-plugin;tls;host=cdn.example.net;path=/s;cert=/nonexistent/ca.pem')}`;
  const body = parseDynamicKeyBody(url);
  assert.equal(body.kind, 'endpoints');
  const [ep] = body.kind === 'endpoints' ? body.endpoints : [];
  assert.equal(ep?.websocket?.ca, undefined, 'no trust anchor from a fetched key');
  assert.ok(ep?.pluginNotes?.some((n) => /cert.*ignored in a fetched key/.test(n)));
  // The control: typed by the user, the same key reads the file (and fails on a missing one).
  assert.throws(() => endpointFromKey(url, 'local'), /no such file/);
  // Every caller says where its key came from (tsc checks this file: without a required `from`
  // the directive below is unused and the type check fails). Never called.
  // @ts-expect-error -- the source ('local' or 'fetched') decides whether cert=PATH is read
  void (() => endpointFromKey(url));
});
