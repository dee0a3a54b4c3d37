import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endpointFromKey } from '../../client/key.js';
import { formatSsUrl, parseSsUrl } from './index.js';
import { grpcKeyUrlFor } from './plugin-opts.js';
import type { SsGrpcTransport } from './transport.js';
import { grpcRequestHeaders } from '../../transport/grpc-dialer.js';

const BASE = 'ss://YWVzLTI1Ni1nY206cHc@front.example:443/';

test('type=grpc with serviceName, security, sni and authority (Xray share-link names)', () => {
  const k = parseSsUrl(
    `${BASE}?type=grpc&serviceName=S3cr%2Bt&security=tls&sni=cdn.example&authority=site.example&mode=gun#t`,
  );
  assert.deepEqual(k.transport, {
    type: 'grpc',
    serviceName: 'S3cr+t',
    tls: true,
    sni: 'cdn.example',
    authority: 'site.example',
  });
  // Round trip through formatSsUrl.
  assert.deepEqual(parseSsUrl(formatSsUrl(k)).transport, k.transport);
  assert.match(
    formatSsUrl(k),
    /\/\?type=grpc&serviceName=S3cr%2Bt&authority=site\.example&security=tls&sni=cdn\.example#t$/,
  );
});

test('gRPC defaults to TLS; security=none is h2c; type=tcp or no type is no transport', () => {
  assert.equal(parseSsUrl(`${BASE}?type=grpc&serviceName=s`).transport?.tls, true);
  assert.equal(parseSsUrl(`${BASE}?type=grpc&serviceName=s&security=none`).transport?.tls, false);
  assert.equal(parseSsUrl(`${BASE}?type=tcp`).transport, undefined);
  assert.equal(parseSsUrl(`${BASE}?sni=x`).transport, undefined);
});

test('what cannot be honoured is refused in one line, never dialled as plain Shadowsocks', () => {
  assert.throws(
    () => parseSsUrl(`${BASE}?type=xhttp&path=/x`),
    /type="xhttp" is not supported \(grpc, ws or httpupgrade\)/,
  );
  assert.throws(
    () => parseSsUrl(`${BASE}?type=ws&path=/x&security=reality`),
    /security="reality" is not supported with type=ws/,
  );
  assert.throws(
    () => parseSsUrl(`${BASE}?type=httpupgrade&path=x`),
    /type=httpupgrade path must start with "\/"/,
  );
  assert.throws(
    () => parseSsUrl(`${BASE}?type=ws&path=/a%20b`),
    /path contains a character not allowed there/,
  );
  assert.throws(
    () => parseSsUrl(`${BASE}?type=ws&path=/x&plugin=v2ray-plugin`),
    /type=ws and plugin= together/,
  );
  assert.throws(() => parseSsUrl(`${BASE}?type=grpc`), /type=grpc needs serviceName/);
  assert.throws(() => parseSsUrl(`${BASE}?type=grpc&serviceName=a%20b`), /serviceName is empty or contains/);
  assert.throws(
    () => parseSsUrl(`${BASE}?type=grpc&serviceName=s&security=reality`),
    /security="reality" is not supported/,
  );
  assert.throws(
    () => parseSsUrl(`${BASE}?type=grpc&serviceName=s&plugin=v2ray-plugin`),
    /type=grpc and plugin= together/,
  );
});

test('a type=grpc key gives the client a gRPC endpoint (address, service, SNI, authority)', () => {
  const ep = endpointFromKey(
    `${BASE}?type=grpc&serviceName=svc&sni=cdn.example&authority=site.example`,
    'local',
  );
  assert.deepEqual(ep.grpc, {
    address: 'front.example',
    port: 443,
    tls: true,
    serviceName: 'svc',
    host: 'site.example',
    servername: 'cdn.example',
  });
  assert.equal(typeof ep.nextHop, 'function');
  assert.equal(ep.websocket, undefined);
});

test("grpcKeyUrlFor: the front's gRPC key as ladder client reads it; none without TLS or h2", () => {
  const ep = { host: 'cdn.example', port: 443, path: '/S3cret', tls: true, mux: true };
  const url = grpcKeyUrlFor({ method: 'aes-128-gcm', secret: 'pw' }, ep, 'k (gRPC)');
  assert.ok(url);
  assert.match(url, /\/\?type=grpc&serviceName=S3cret&security=tls&sni=cdn\.example#k%20\(gRPC\)$/);
  const back = endpointFromKey(url, 'local');
  assert.deepEqual(back.grpc, {
    address: 'cdn.example',
    port: 443,
    tls: true,
    serviceName: 'S3cret',
    servername: 'cdn.example',
  });
  assert.equal(grpcKeyUrlFor({ method: 'aes-128-gcm', secret: 'pw' }, { ...ep, tls: false }), undefined);
  assert.equal(grpcKeyUrlFor({ method: 'aes-128-gcm', secret: 'pw' }, { ...ep, grpc: false }), undefined);
});

test('hostile type=grpc values: an overlong serviceName and an authority no URL can hold are refused when the key is read', () => {
  assert.throws(
    () => parseSsUrl(`${BASE}?type=grpc&serviceName=${'x'.repeat(1025)}`),
    /serviceName is longer than 1024/,
  );
  assert.equal(
    (parseSsUrl(`${BASE}?type=grpc&serviceName=${'x'.repeat(1024)}`).transport as SsGrpcTransport).serviceName
      .length,
    1024,
  );
  for (const a of ['%5Bzz%5D', 'a:b:c', '%5B::1'])
    assert.throws(
      () => parseSsUrl(`${BASE}?type=grpc&serviceName=s&authority=${a}`),
      /authority is not a host name/,
      a,
    );
  // The service name is path-escaped into :path: '/', '..' and '%' stay inside one segment.
  const k = parseSsUrl(`${BASE}?type=grpc&serviceName=..%2F..%2Fadmin%25`);
  assert.equal(
    grpcRequestHeaders({
      address: '127.0.0.1',
      port: 1,
      tls: false,
      serviceName: (k.transport as SsGrpcTransport).serviceName,
    })[':path'],
    '/..%2F..%2Fadmin%25/Tun',
  );
});

test("type=ws and type=httpupgrade (3x-ui's links for Xray's Shadowsocks inbounds): path, host, security, sni", () => {
  const ws = parseSsUrl(
    `${BASE}?type=ws&path=%2Fs3c%3Fed%3D2048&host=site.example&security=tls&sni=cdn.example&fp=&alpn=h2%2Chttp%2F1.1#t`,
  );
  assert.deepEqual(ws.transport, {
    type: 'ws',
    path: '/s3c?ed=2048',
    host: 'site.example',
    tls: true,
    sni: 'cdn.example',
  });
  assert.deepEqual(parseSsUrl(formatSsUrl(ws)).transport, ws.transport);
  // No security: none (the standard's default); no path: '/'.
  assert.deepEqual(parseSsUrl(`${BASE}?type=httpupgrade`).transport, {
    type: 'httpupgrade',
    path: '/',
    tls: false,
  });
  const ep = endpointFromKey(
    `${BASE}?type=ws&path=%2Fs3c&host=site.example&security=tls&sni=cdn.example`,
    'local',
  );
  assert.deepEqual(ep.websocket, {
    url: 'wss://front.example:443/s3c',
    host: 'site.example',
    servername: 'cdn.example',
    mux: false,
  });
  assert.equal(ep.grpc, undefined);
  const up = endpointFromKey(
    `ss://YWVzLTI1Ni1nY206cHc@[2001:db8::1]:8080/?type=httpupgrade&path=%2Fs%2Fup`,
    'local',
  );
  assert.deepEqual(up.websocket, { url: 'ws://[2001:db8::1]:8080/s/up', mux: false, httpUpgrade: true });
});
