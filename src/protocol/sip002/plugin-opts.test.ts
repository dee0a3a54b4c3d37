import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProtocolError } from '../errors.js';
import { parseSsUrl } from './index.js';
import { formatV2rayPluginOptions, parsePluginOptions, parseV2rayPluginOptions, webKeyUrlFor } from './plugin-opts.js';

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
  });
  assert.throws(() => parseV2rayPluginOptions('mode=quic'), /quic/);
  assert.throws(() => parseV2rayPluginOptions('server;mode=websocket'), /server/);
  assert.throws(() => parseV2rayPluginOptions('mux=x'), /mux/);
});

test('a web endpoint formats as options v2ray-plugin (and our parser) read back, escapes included', () => {
  const ep = { host: 'cdn.example', port: 443, path: '/a;b=c\\d', tls: true, mux: true };
  const text = formatV2rayPluginOptions(ep);
  assert.equal(text, 'mode=websocket;path=/a\\;b\\=c\\\\d;host=cdn.example;tls');
  assert.deepEqual(parseV2rayPluginOptions(text), { tls: true, host: 'cdn.example', path: '/a;b=c\\d', mux: true });
  const url = parseSsUrl(webKeyUrlFor({ method: 'aes-128-gcm', secret: 'pw' }, { ...ep, tls: false }, 'web'));
  assert.deepEqual([url.host, url.port, url.password, url.plugin, url.tag], ['cdn.example', 443, 'pw', 'v2ray-plugin', 'web']);
  assert.equal(parseV2rayPluginOptions(url.pluginOptions).tls, false);
});
