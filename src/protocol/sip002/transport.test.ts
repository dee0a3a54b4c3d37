import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endpointFromKey } from '../../client/key.js';
import { formatSsUrl, parseSsUrl } from './index.js';
import { grpcKeyUrlFor } from './plugin-opts.js';

const BASE = 'ss://YWVzLTI1Ni1nY206cHc@front.example:443/';

test('type=grpc with serviceName, security, sni and authority (Xray share-link names)', () => {
  const k = parseSsUrl(`${BASE}?type=grpc&serviceName=S3cr%2Bt&security=tls&sni=cdn.example&authority=site.example&mode=gun#t`);
  assert.deepEqual(k.transport, { type: 'grpc', serviceName: 'S3cr+t', tls: true, sni: 'cdn.example', authority: 'site.example' });
  // Round trip through formatSsUrl.
  assert.deepEqual(parseSsUrl(formatSsUrl(k)).transport, k.transport);
  assert.match(formatSsUrl(k), /\/\?type=grpc&serviceName=S3cr%2Bt&authority=site\.example&security=tls&sni=cdn\.example#t$/);
});

test('gRPC defaults to TLS; security=none is h2c; type=tcp or no type is no transport', () => {
  assert.equal(parseSsUrl(`${BASE}?type=grpc&serviceName=s`).transport?.tls, true);
  assert.equal(parseSsUrl(`${BASE}?type=grpc&serviceName=s&security=none`).transport?.tls, false);
  assert.equal(parseSsUrl(`${BASE}?type=tcp`).transport, undefined);
  assert.equal(parseSsUrl(`${BASE}?sni=x`).transport, undefined);
});

test('what cannot be honoured is refused in one line, never dialled as plain Shadowsocks', () => {
  assert.throws(() => parseSsUrl(`${BASE}?type=ws&path=/x`), /type="ws" is not supported/);
  assert.throws(() => parseSsUrl(`${BASE}?type=grpc`), /type=grpc needs serviceName/);
  assert.throws(() => parseSsUrl(`${BASE}?type=grpc&serviceName=a%20b`), /serviceName is empty or contains/);
  assert.throws(() => parseSsUrl(`${BASE}?type=grpc&serviceName=s&security=reality`), /security="reality" is not supported/);
  assert.throws(() => parseSsUrl(`${BASE}?type=grpc&serviceName=s&plugin=v2ray-plugin`), /type=grpc and plugin= together/);
});

test('a type=grpc key gives the client a gRPC endpoint (address, service, SNI, authority)', () => {
  const ep = endpointFromKey(`${BASE}?type=grpc&serviceName=svc&sni=cdn.example&authority=site.example`, 'local');
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

test('grpcKeyUrlFor: the front\'s gRPC key as ladder client reads it; none without TLS or h2', () => {
  const ep = { host: 'cdn.example', port: 443, path: '/S3cret', tls: true, mux: true };
  const url = grpcKeyUrlFor({ method: 'aes-128-gcm', secret: 'pw' }, ep, 'k (gRPC)');
  assert.ok(url);
  assert.match(url, /\/\?type=grpc&serviceName=S3cret&security=tls&sni=cdn\.example#k%20\(gRPC\)$/);
  const back = endpointFromKey(url, 'local');
  assert.deepEqual(back.grpc, { address: 'cdn.example', port: 443, tls: true, serviceName: 'S3cret', servername: 'cdn.example' });
  assert.equal(grpcKeyUrlFor({ method: 'aes-128-gcm', secret: 'pw' }, { ...ep, tls: false }), undefined);
  assert.equal(grpcKeyUrlFor({ method: 'aes-128-gcm', secret: 'pw' }, { ...ep, grpc: false }), undefined);
});
