import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProtocolError } from '../errors.js';
import { parseSsUrl } from './index.js';
import {
  formatV2rayPluginOptions,
  parsePluginOptions,
  parseV2rayPluginOptions,
  webKeyUrlFor,
} from './plugin-opts.js';

test('SIP003 options: pairs, flags, escapes', () => {
  assert.deepEqual(
    [...parsePluginOptions('mode=websocket;tls;host=a\\;b.example;path=/x\\=y;;mux=0')],
    [
      ['mode', 'websocket'],
      ['tls', true],
      ['host', 'a;b.example'],
      ['path', '/x=y'],
      ['mux', '0'],
    ],
  );
  assert.deepEqual([...parsePluginOptions('')], []);
  assert.throws(() => parsePluginOptions('=x'), ProtocolError);
  assert.throws(() => parsePluginOptions('a\\'), ProtocolError);
});

test('v2ray-plugin options with its defaults', () => {
  assert.deepEqual(parseV2rayPluginOptions(undefined), {
    tls: false,
    host: 'cloudfront.com',
    path: '/',
    mux: true,
  });
  assert.deepEqual(parseV2rayPluginOptions('mode=websocket;tls;host=cdn.example;path=/s3cret;mux=0'), {
    tls: true,
    host: 'cdn.example',
    path: '/s3cret',
    mux: false,
  });
  assert.deepEqual(parseV2rayPluginOptions('path=abc;mux=4;loglevel=none'), {
    tls: false,
    host: 'cloudfront.com',
    path: '/abc',
    mux: true,
    notes: ['option "loglevel" is ignored (it only matters to v2ray-plugin\'s own process)'],
  });
  assert.throws(() => parseV2rayPluginOptions('mode=quic'), /quic/);
  assert.throws(() => parseV2rayPluginOptions('server;mode=websocket'), /server/);
  assert.throws(() => parseV2rayPluginOptions('mux=x'), /mux/);
});

test('a web endpoint formats as options v2ray-plugin (and our parser) read back, escapes included', () => {
  const ep = { host: 'cdn.example', port: 443, path: '/a;b=c\\d', tls: true, mux: true };
  const text = formatV2rayPluginOptions(ep);
  assert.equal(text, 'mode=websocket;path=/a\\;b\\=c\\\\d;host=cdn.example;tls');
  assert.deepEqual(parseV2rayPluginOptions(text), {
    tls: true,
    host: 'cdn.example',
    path: '/a;b=c\\d',
    mux: true,
  });
  const url = parseSsUrl(webKeyUrlFor({ method: 'aes-128-gcm', secret: 'pw' }, { ...ep, tls: false }, 'web'));
  assert.deepEqual(
    [url.host, url.port, url.password, url.plugin, url.tag],
    ['cdn.example', 443, 'pw', 'v2ray-plugin', 'web'],
  );
  assert.equal(parseV2rayPluginOptions(url.pluginOptions).tls, false);
});

test('v2ray-plugin options: a near miss of one we read is refused with "did you mean"; others are named, never their values', () => {
  const refused: Array<[string, string]> = [
    ['hots=127.0.0.1', 'host'],
    ['Host=cdn.example', 'host'],
    ['pth=/s3cret', 'path'],
    ['paths=/s3cret', 'path'],
    ['tsl', 'tls'],
    ['TLS', 'tls'],
    ['mox=0', 'mux'],
    ['mod=websocket', 'mode'],
  ];
  for (const [text, near] of refused)
    assert.throws(
      () => parseV2rayPluginOptions(`host=a.example;${text}`),
      (e: Error) => {
        assert.ok(e instanceof ProtocolError);
        assert.match(
          e.message,
          new RegExp(`^v2ray-plugin option "[^"]+" is unknown: did you mean "${near}"\\?$`),
        );
        assert.ok(!e.message.includes('s3cret') && !e.message.includes('127.0.0.1'));
        return true;
      },
      text,
    );
  // Known to v2ray-plugin, unused here; and names it does not know that are no near miss (other
  // tools' extras): kept, each named once, the value never.
  const o = parseV2rayPluginOptions(
    'tls;host=a.example;fastOpen;cert=/etc/s3cret.pem;skip-cert-verify=true;x=s3cret',
  );
  assert.equal(o.host, 'a.example');
  assert.equal(o.cert, '/etc/s3cret.pem', 'cert=PATH: the file the TLS connection trusts');
  assert.deepEqual(o.notes, [
    'option "fastOpen" is ignored (it only matters to v2ray-plugin\'s own process)',
    'option "skip-cert-verify" is not a v2ray-plugin option; ignored',
    'option "x" is not a v2ray-plugin option; ignored',
  ]);
  assert.ok(!JSON.stringify(o.notes).includes('s3cret'));
  assert.deepEqual(parseV2rayPluginOptions('cert=/a.pem').notes, ['option "cert" is ignored without "tls"']);
  assert.equal(parseV2rayPluginOptions('cert=/a.pem').cert, undefined);
  assert.throws(() => parseV2rayPluginOptions('tls;cert'), /"cert" needs a file path/);
  assert.throws(() => parseV2rayPluginOptions('tls;cret=/a.pem'), /did you mean "cert"/);
  // Control: the options we read, spelt right, give no notes and no error.
  assert.equal(parseV2rayPluginOptions('mode=websocket;host=a;path=/p;tls;mux=0').notes, undefined);
});

test("v2ray-plugin options: mihomo's v2ray-http-upgrade (HTTPUpgrade) and its fast-open", () => {
  for (const flag of ['v2ray-http-upgrade', 'v2ray-http-upgrade=true', 'v2ray-http-upgrade=1'])
    assert.equal(parseV2rayPluginOptions(`mode=websocket;path=/s/up;${flag}`).httpUpgrade, true, flag);
  for (const flag of ['v2ray-http-upgrade=false', 'v2ray-http-upgrade=0', 'host=a'])
    assert.equal(parseV2rayPluginOptions(`mode=websocket;path=/s/up;${flag}`).httpUpgrade, undefined, flag);
  assert.throws(
    () => parseV2rayPluginOptions('mode=websocket;v2ray-http-upgrade=yes'),
    /v2ray-plugin option "v2ray-http-upgrade" must be true or false/,
  );
  const fast = parseV2rayPluginOptions('v2ray-http-upgrade;v2ray-http-upgrade-fast-open=true');
  assert.equal(fast.httpUpgradeFastOpen, true);
  assert.equal(fast.notes, undefined);
  assert.deepEqual(parseV2rayPluginOptions('v2ray-http-upgrade-fast-open').notes, [
    'option "v2ray-http-upgrade-fast-open" is ignored without "v2ray-http-upgrade"',
  ]);
  assert.throws(
    () => parseV2rayPluginOptions('v2ray-http-upgrade;v2ray-http-upgrade-fast-open=2'),
    /must be true or false/,
  );
});
