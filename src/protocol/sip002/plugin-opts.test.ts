import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProtocolError } from '../errors.js';
import { parsePluginOptions, parseV2rayPluginOptions } from './plugin-opts.js';

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
