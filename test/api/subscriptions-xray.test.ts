// The v2ray-json subscription (/sub/{token}/v2ray-json): whole Xray configs for v2rayNG/v2rayN,
// Happ and Streisand, the one format that carries Shadowsocks over gRPC to them. Each config is
// checked by Debian's v2ray 4.34 (`v2ray -test`) where its transport exists there (ws, tcp); the
// gRPC one cannot be, v2ray 4.34 predates gRPC (4.36) and says so, which the test also pins.
// Only the raw and WebSocket formats mention no gRPC: sing-box's and mihomo's shadowsocks
// outbounds have no gRPC transport, so their formats must not offer one.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { WebEndpoint } from '../../src/api/index.js';
import { which } from '../helpers/peers.js';
import { requireOrSkip } from '../helpers/prereq.js';
import { keySubscription } from './helpers.js';

type Json = Record<string, unknown>;
type Config = {
  remarks: string;
  outbounds: Array<{ tag: string; protocol: string; settings?: { servers: Json[] }; streamSettings?: Json }>;
};

function subscription(
  t: TestContext,
  web: WebEndpoint | undefined,
): Promise<{ get: (f: string) => Promise<string>; dir: string }> {
  return keySubscription(t, { webEndpoint: () => web });
}

const WEB: WebEndpoint = { host: 'cdn.example.net', port: 443, path: '/S3cret', tls: true, udp: true };

test("v2ray-json: gRPC, WebSocket, HTTPUpgrade, raw, in that order; the gRPC one is Xray's grpc transport on the secret service", async (t) => {
  const { get, dir } = await subscription(t, WEB);
  const configs = JSON.parse(await get('v2ray-json')) as Config[];
  assert.deepEqual(
    configs.map((c) => [c.remarks, c.outbounds[0]!.streamSettings?.network]),
    [
      ['Alice (gRPC)', 'grpc'],
      ['Alice (web)', 'ws'],
      ['Alice (HTTPUpgrade)', 'httpupgrade'],
      ['Alice', 'tcp'],
    ],
  );
  const grpc = configs[0]!.outbounds[0]!;
  assert.equal(grpc.protocol, 'shadowsocks');
  assert.deepEqual(grpc.streamSettings, {
    network: 'grpc',
    security: 'tls',
    tlsSettings: { serverName: 'cdn.example.net', alpn: ['h2'] },
    grpcSettings: { serviceName: 'S3cret', multiMode: false },
  });
  const server = grpc.settings!.servers[0]!;
  assert.deepEqual(
    [server.address, server.port, server.uot, server.UoTVersion],
    ['cdn.example.net', 443, true, 2],
  );
  assert.deepEqual(configs[1]!.outbounds[0]!.streamSettings!.wsSettings, {
    path: '/S3cret',
    headers: { Host: 'cdn.example.net' },
  });
  // Xray's httpupgrade transport at the front's /SECRET/up, TLS as the WebSocket entry's, UDP as UoT v2.
  assert.deepEqual(configs[2]!.outbounds[0]!.streamSettings, {
    network: 'httpupgrade',
    security: 'tls',
    tlsSettings: { serverName: 'cdn.example.net' },
    httpupgradeSettings: { path: '/S3cret/up', host: 'cdn.example.net' },
  });
  const up = configs[2]!.outbounds[0]!.settings!.servers[0]!;
  assert.deepEqual([up.uot, up.UoTVersion], [true, 2]);

  if (!requireOrSkip(t, which('v2ray') !== undefined, 'v2ray missing (apt-get install v2ray)')) return;
  const check = (c: Config): string => {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify(c));
    try {
      return execFileSync('v2ray', ['-test', '-config', file], {
        encoding: 'utf8',
        stdio: 'pipe',
        timeout: 20_000,
      });
    } catch (err) {
      return (
        String((err as { stdout?: string }).stdout ?? '') + String((err as { stderr?: string }).stderr ?? '')
      );
    }
  };
  for (const c of [configs[1]!, configs[3]!]) assert.match(check(c), /Configuration OK/, c.remarks);
  // Nor HTTPUpgrade (Xray 1.8.9, v2ray v5): test/web/httpupgrade.test.ts replays Xray's bytes instead.
  assert.match(check(configs[2]!), /unknown transport protocol: httpupgrade/);
  // Debian's v2ray (4.34) predates gRPC: the reason no Debian peer runs the gRPC entry.
  assert.match(check(configs[0]!), /unknown transport protocol: grpc/);
});

test('no gRPC entry where the front cannot take it (plain HTTP, or TLS without h2), and none in other formats', async (t) => {
  for (const web of [
    { ...WEB, tls: false },
    { ...WEB, grpc: false },
  ]) {
    const { get } = await subscription(t, web);
    const configs = JSON.parse(await get('v2ray-json')) as Config[];
    assert.deepEqual(
      configs.map((c) => c.remarks),
      ['Alice (web)', 'Alice (HTTPUpgrade)', 'Alice'],
      JSON.stringify(web),
    );
  }
  const { get } = await subscription(t, WEB);
  for (const f of ['clash', 'sing-box', 'base64', 'sip008', 'outline']) {
    const body = await get(f);
    const text = f === 'base64' ? Buffer.from(body, 'base64').toString() : body;
    assert.doesNotMatch(text, /grpc/i, f);
  }
});

test('a key without a web front: one raw config', async (t) => {
  const { get } = await subscription(t, undefined);
  const configs = JSON.parse(await get('v2ray-json')) as Config[];
  assert.deepEqual(
    configs.map((c) => [c.remarks, c.outbounds[0]!.streamSettings]),
    [['Alice', { network: 'tcp' }]],
  );
});
