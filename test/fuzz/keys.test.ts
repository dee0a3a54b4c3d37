/**
 * Fuzzing the access-key parsers (outside input: keys users paste, bodies dynamic-key servers
 * send): ss:// SIP002 with plugin parameters, v2ray-plugin options, ssconf:// bodies (Outline
 * legacy JSON, Outline YAML transport configs, SIP008, ss:// lists and base64 of them). Contract:
 * a key parses or is refused with a one-line ProtocolError that names the part and never echoes
 * the password; what is accepted is usable (round-trips, a WebSocket URL that parses, headers
 * without control characters). Method and counts: test/fuzz/fuzz.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isProtocolError } from '../../src/protocol/errors.js';
import { formatSsUrl, parseSsUrl, type SsKey } from '../../src/protocol/sip002/index.js';
import { parsePluginOptions, parseV2rayPluginOptions } from '../../src/protocol/sip002/plugin-opts.js';
import { endpointFromKey, type KeyEndpoint } from '../../src/client/key.js';
import { parseDynamicKeyBody } from '../../src/client/dynamic-key.js';
import { fuzz, textCases } from './fuzz.js';

const PSK16 = Buffer.alloc(16, 7).toString('base64');
const PSK32 = Buffer.alloc(32, 9).toString('base64');
const SECRET = 'Sekrit-pa55word';

const SS_SAMPLES = [
  `ss://${Buffer.from(`chacha20-ietf-poly1305:${SECRET}`).toString('base64url')}@192.0.2.1:8388#Tag%20one`,
  `ss://${Buffer.from(`aes-256-gcm:${SECRET}`).toString('base64url')}@example.com:443/?plugin=v2ray-plugin%3Bmode%3Dwebsocket%3Bpath%3D%2Fws%3Bhost%3Dexample.com%3Btls&prefix=%16%03%01`,
  `ss://2022-blake3-aes-128-gcm:${encodeURIComponent(PSK16)}@[2001:db8::1]:8388/?uot=2#v6`,
  `ss://2022-blake3-chacha20-poly1305:${encodeURIComponent(`${PSK32}:${PSK32}`)}@h.example:1?udp-over-tcp=true`,
  `ss://${Buffer.from(`aes-128-gcm:${SECRET}@10.0.0.1:8443`).toString('base64')}#legacy`,
  `ss://aes-256-gcm:${SECRET}@host.example:65535?plugin=ss-v2ray-plugin%3Bpath%3D%2Fa%5C%3Bb%3Bmux%3D0`,
];

const PLUGIN_SAMPLES = [
  'mode=websocket;path=/ws;host=example.com;tls',
  'path=/a\\;b\\=c;mux=0;loglevel=none',
  'tls;cert=/etc/ssl/x.pem;host=h',
  'mode=quic',
];

function noSecret(input: string, err: Error): void {
  assert.ok(!err.message.includes(SECRET), `error echoes the password: ${err.message} (input ${input})`);
}

/** Control characters have no business in a header, a host or a URL that reached a dialler. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

function usable(ep: KeyEndpoint, input: string): void {
  assert.ok(Number.isInteger(ep.port) && ep.port >= 1 && ep.port <= 65535, `port ${ep.port} from ${input}`);
  assert.ok(ep.host.length > 0 && !CONTROL.test(ep.host), `host ${JSON.stringify(ep.host)} from ${input}`);
  if (ep.websocket) {
    const ws = ep.websocket;
    assert.doesNotThrow(() => new URL(ws.url), `WebSocket URL ${JSON.stringify(ws.url)} from ${input}`);
    assert.ok(!CONTROL.test(ws.url), `WebSocket URL with a control character from ${input}`);
    assert.ok(!CONTROL.test(ws.host ?? ''), `WebSocket Host ${JSON.stringify(ws.host)} from ${input}`);
  }
}

test('fuzz: parseSsUrl refuses garbage with one-line ERR_URL, round-trips what it accepts', () => {
  const s = fuzz('parseSsUrl', textCases('ss-url', SS_SAMPLES, 3000), parseSsUrl, {
    typed: isProtocolError,
    oneLine: true,
    refused: noSecret,
    accepted: (input: string, out) => {
      const key = out as SsKey;
      let again: string;
      try {
        again = formatSsUrl(key);
      } catch (err) {
        // formatSsUrl is stricter on purpose (e.g. a legacy key's odd password): typed, then.
        assert.ok(isProtocolError(err), `formatSsUrl threw untyped for ${input}: ${String(err)}`);
        return;
      }
      const back = parseSsUrl(again);
      assert.deepEqual(
        { ...back, prefix: back.prefix && [...back.prefix] },
        {
          ...key,
          prefix: key.prefix && [...key.prefix],
        },
        `round trip of ${input} via ${again}`,
      );
    },
  });
  assert.ok(s.accepted > 100 && s.refused > 100, JSON.stringify(s));
});

test('fuzz: plugin options parse or refuse with ERR_URL', () => {
  const cases = textCases('plugin-opts', PLUGIN_SAMPLES, 1500);
  fuzz('parsePluginOptions', cases, parsePluginOptions, { typed: isProtocolError, oneLine: true });
  fuzz('parseV2rayPluginOptions', textCases('v2ray-opts', PLUGIN_SAMPLES, 1500), parseV2rayPluginOptions, {
    typed: isProtocolError,
    oneLine: true,
  });
});

test('fuzz: endpointFromKey gives a usable endpoint or one safe line', () => {
  const s = fuzz(
    'endpointFromKey',
    textCases('endpoint', SS_SAMPLES, 3000),
    (k) => endpointFromKey(k, 'fetched'),
    {
      typed: isProtocolError,
      oneLine: true,
      refused: noSecret,
      accepted: (input: string, out) => usable(out as KeyEndpoint, input),
    },
  );
  assert.ok(s.accepted > 50, JSON.stringify(s));
});

const BODY_SAMPLES = [
  JSON.stringify({
    server: 'example.com',
    server_port: 8388,
    method: 'chacha20-ietf-poly1305',
    password: SECRET,
    prefix: '\u0016\u0003\u0001',
  }),
  JSON.stringify({
    version: 1,
    servers: [
      { server: '192.0.2.2', server_port: '443', method: 'aes-256-gcm', password: SECRET, remarks: 'a' },
      {
        server: 'h.example',
        server_port: 80,
        method: 'aes-128-gcm',
        password: SECRET,
        plugin: 'v2ray-plugin',
        plugin_opts: 'path=/x;host=h.example',
      },
    ],
  }),
  [
    'transport:',
    '  $type: tcpudp',
    '  tcp: &shared',
    '    $type: shadowsocks',
    '    endpoint:',
    '      $type: first-supported',
    '      options:',
    '        - $type: websocket',
    '          url: wss://cdn.example/path?x=1',
    '          endpoint: 192.0.2.3:443',
    '        - example.com:8388',
    '    cipher: chacha20-ietf-poly1305',
    `    secret: ${SECRET}`,
    '    prefix: "\\x16\\x03"',
    '  udp:',
    '    <<: *shared',
    '    endpoint: "[2001:db8::2]:8388"',
  ].join('\n'),
  'error:\n  message: Quota exceeded\n  details: "Used 1 GiB"\n',
  `${SS_SAMPLES[0]}\n${SS_SAMPLES[2]}\n`,
  Buffer.from(`${SS_SAMPLES[1]}\r\n${SS_SAMPLES[4]}`).toString('base64'),
];

test('fuzz: dynamic key bodies (ssconf://, Outline YAML, SIP008) parse or refuse in one line', () => {
  const s = fuzz('parseDynamicKeyBody', textCases('dynamic', BODY_SAMPLES, 1500), parseDynamicKeyBody, {
    typed: isProtocolError,
    oneLine: true,
    maxMs: 500,
    refused: noSecret,
    accepted: (input: string, out) => {
      const body = out as ReturnType<typeof parseDynamicKeyBody>;
      if (body.kind === 'error') {
        assert.ok(!CONTROL.test(body.message), `refusal text with a control character from ${input}`);
        return;
      }
      assert.ok(body.endpoints.length > 0 && body.endpoints.length <= 32, `endpoint count from ${input}`);
      for (const ep of body.endpoints) usable(ep, input);
    },
  });
  assert.ok(s.accepted > 50 && s.refused > 50, JSON.stringify(s));
});

test('fuzz: YAML bombs and deep nesting in a dynamic key are refused quickly', () => {
  const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < 12; i++) {
    const prev = String.fromCharCode(96 + i);
    const cur = String.fromCharCode(97 + i);
    bomb.push(
      `${cur}: &${cur} [*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev}]`,
    );
  }
  const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
  const deepMap = `transport: ${'{$type: first-supported, options: ['.repeat(200)}x${']}'.repeat(200)}`;
  const deepJson = `{"transport":${'{"$type":"first-supported","options":['.repeat(3000)}1${']}'.repeat(3000)}}`;
  fuzz(
    'dynamic-key bombs',
    [bomb.join('\n'), deep, deepMap, deepJson, '{'.repeat(100_000)],
    parseDynamicKeyBody,
    {
      typed: isProtocolError,
      oneLine: true,
      maxMs: 2000,
    },
  );
});

test('regressions found by the fuzzer: keys', () => {
  const ui = Buffer.from(`aes-256-gcm:${SECRET}`).toString('base64url');
  const refusedOneLine = (f: () => unknown, want: RegExp): void => {
    assert.throws(
      f,
      (err: Error) => isProtocolError(err) && !/[\r\n]/.test(err.message) && want.test(err.message),
    );
  };
  // Control characters in a plugin path or host went into the WebSocket URL and Host header.
  refusedOneLine(
    () => endpointFromKey(`ss://${ui}@h.example:443?plugin=ss-v2ray-plugin%3Bpath%3D%2Fa%0Bb`, 'local'),
    /option "path" contains/,
  );
  refusedOneLine(() => parseV2rayPluginOptions('host=a\r\nX-Injected: 1'), /option "host" contains/);
  // Raw option values and plugin names in messages split them over lines.
  refusedOneLine(() => parseV2rayPluginOptions('mode=quic\nx'), /mode "quic\\nx" is not supported/);
  refusedOneLine(
    () => endpointFromKey(`ss://${ui}@h.example:1?plugin=obfs%0Alocal`, 'local'),
    /plugin "obfs\\nlocal"/,
  );
  // A lone surrogate in a host was accepted (no URL can hold it).
  refusedOneLine(() => endpointFromKey(`ss://${ui}@\udc00ost.example:443`, 'local'), /host contains/);
  // Hosts no URL can hold were accepted, and a WebSocket key failed at its first dial instead.
  refusedOneLine(() => endpointFromKey(`ss://${ui}@^host.example:443`, 'local'), /not a valid host name/);
  refusedOneLine(() => endpointFromKey(`ss://${ui}@192A.0.2.3:443`, 'local'), /not a valid host name/);
  refusedOneLine(
    () => endpointFromKey(`ss://${ui}@ho%C2%A8st.example:443`, 'local'),
    /not a valid host name/,
  );
  // A SIP008 server entry's host was not checked at all.
  refusedOneLine(
    () =>
      parseDynamicKeyBody(
        JSON.stringify({
          version: 1,
          servers: [{ server: 'h.example\t', server_port: 80, method: 'aes-128-gcm', password: SECRET }],
        }),
      ),
    /servers\[0\]: host contains/,
  );
  assert.throws(
    () =>
      parseDynamicKeyBody(
        JSON.stringify({ server: 'a\u0000b', server_port: 1, method: 'aes-128-gcm', password: SECRET }),
      ),
    /host contains/,
  );
  // What stays accepted: IPv6 with a zone, an IDN, a path with a query.
  assert.equal(endpointFromKey(`ss://${ui}@[fe80::1%25eth0]:8388`, 'local').host, 'fe80::1%eth0');
  assert.equal(endpointFromKey(`ss://${ui}@b\u00fccher.example:8388`, 'local').host, 'b\u00fccher.example');
  assert.equal(
    endpointFromKey(`ss://${ui}@h.example:443?plugin=v2ray-plugin%3Bpath%3D%2Fws%3Fed%3D2048`, 'local')
      .websocket?.url,
    'ws://h.example:443/ws?ed=2048',
  );
});
