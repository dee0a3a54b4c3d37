import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { chooseMode, startManaged, type ManagedServer } from '../../src/cli/managed.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { startClient } from '../../src/client/index.js';
import { socks5Connect } from '../helpers/socks5.js';
import { silentLogger } from '../../src/shared/logger.js';
import { tempDir } from './helpers.js';
import { api, echoServer, flags, type Json } from './managed-helpers.js';
import { sleep, waitFor } from '../helpers/wait.js';

test('managed server end to end: API key -> traffic -> usage and Prometheus -> limit refuses -> delete closes -> restart keeps all', async (t) => {
  const dir = tempDir(t);
  const echoPort = await echoServer(t);
  let m: ManagedServer = await startManaged({ ...flags(dir), dynamicListen: '127.0.0.1:0' }, silentLogger, {
    usageFlushMs: 200,
    enforceIntervalMs: 300,
  });
  let closed = false;
  t.after(async () => {
    if (!closed) await m.close();
  });

  const line = m.banner.split('\n').find((l) => l.startsWith('{"apiUrl":'));
  assert.ok(line, 'banner prints the Outline access config line');
  assert.equal(m.firstStart, true);
  const cfg = JSON.parse(line) as { apiUrl: string; certSha256: string };
  assert.match(m.banner, /ss:\/\/[A-Za-z0-9_-]+@127\.0\.0\.1:\d+\/\?outline=1#Initial%20key/);
  assert.match(m.banner, /ssconf:\/\/127\.0\.0\.1:\d+\/access\//);
  assert.match(m.banner, /subscription \(every app[^\n]*\): https:\/\/127\.0\.0\.1:\d+\/sub\//);
  assert.match(m.banner, /[▀▄█]/, 'QR code printed');
  assert.equal(await m.store.countKeys(), 1, 'one initial key');

  // The plain-HTTP dynamic-key listener (for a TLS proxy in front) serves /access/ only.
  assert.ok(m.dynamicAddress);
  const first = (await m.store.listKeys())[0]!;
  const doc = (await (await fetch(`${m.dynamicAddress}/access/${first.accessToken}`)).json()) as Json;
  assert.deepEqual(Object.keys(doc).sort(), ['method', 'password', 'prefix', 'server', 'server_port']);
  const nf = await fetch(`${m.dynamicAddress}/server`);
  assert.equal(nf.status, 404);
  assert.deepEqual(await nf.json(), { code: 'ResourceNotFound', message: 'Not found' });

  const created = await api(cfg, 'POST', '/access-keys', { name: 'e2e' });
  assert.equal(created.status, 201);
  const key = JSON.parse(created.body) as { id: string; password: string; port: number; method: string };
  assert.equal(key.port, m.plane.address.port);
  await sleep(50);
  const tunnel = () =>
    openTestTunnel({
      port: key.port,
      host: '127.0.0.1',
      method: key.method,
      password: key.password,
      target: { host: '127.0.0.1', port: echoPort },
    });

  // Traffic through the real client (SOCKS5 in, Shadowsocks out) with the API's access URL.
  const client = await startClient({
    key: (JSON.parse(created.body) as { accessUrl: string }).accessUrl,
    socks: '127.0.0.1:0',
  });
  t.after(() => client.close());
  const viaClient = async () => {
    const s = await socks5Connect({
      proxyPort: client.socksAddress!.port,
      host: '127.0.0.1',
      port: echoPort,
    });
    s.resume();
    return s;
  };
  const payload = Buffer.alloc(50_000, 7);
  const s1 = await viaClient();
  let got = 0;
  await new Promise<void>((resolve, reject) => {
    s1.on('data', (c: Buffer) => {
      got += c.length;
      if (got >= payload.length) resolve();
    });
    s1.on('error', reject);
    s1.write(payload);
  });
  s1.destroy();

  let used = 0;
  await waitFor(
    async () => {
      const tr = JSON.parse((await api(cfg, 'GET', '/metrics/transfer')).body) as {
        bytesTransferredByUserId: Record<string, number>;
      };
      used = tr.bytesTransferredByUserId[key.id] ?? 0;
      return used >= 2 * payload.length;
    },
    { timeoutMs: 5000, intervalMs: 100, message: () => `usage counted in /metrics/transfer (${used})` },
  );
  assert.ok(used >= 2 * payload.length, `usage counted in /metrics/transfer (${used})`);
  // Workers post connection events in batches (every reportMs): the closed counter may lag usage.
  let prom = '';
  await waitFor(
    async () => {
      prom = await (await fetch(m.metricsServer!.url)).text();
      return /ladder_tcp_connections_closed_total\{status="OK"\} \d+/.test(prom);
    },
    { timeoutMs: 5000, intervalMs: 100, message: () => `the closed connection in the metrics:\n${prom}` },
  );
  assert.match(prom, new RegExp(`ladder_data_bytes_total\\{access_key="${key.id}",dir="up"\\} \\d+`));
  assert.match(prom, /ladder_tcp_connections_closed_total\{status="OK"\} \d+/);
  assert.match(prom, /ladder_time_to_auth_seconds_count [1-9]/);

  // Limit below what was used: new connections refused (no echo comes back).
  assert.equal(
    (await api(cfg, 'PUT', `/access-keys/${key.id}/data-limit`, { limit: { bytes: 1000 } })).status,
    204,
  );
  const refused = await tunnel();
  refused.send(Buffer.from('ping'));
  await assert.rejects(refused.read(4, 1500));
  refused.destroy();
  const dyn = JSON.parse((await api(cfg, 'GET', `/access-keys/${key.id}`)).body) as Json;
  assert.equal(dyn.state, 'over_limit');

  // Lift the limit; an open connection of a deleted key is closed within 10 s.
  assert.equal((await api(cfg, 'DELETE', `/access-keys/${key.id}/data-limit`)).status, 204);
  const s2 = await viaClient();
  const echoed = new Promise<string>((resolve) => s2.once('data', (c: Buffer) => resolve(c.toString())));
  s2.write('hello');
  assert.equal(await echoed, 'hello');
  const s2closed = new Promise<boolean>((resolve) => s2.once('close', () => resolve(true)));
  const before = Date.now();
  assert.equal((await api(cfg, 'DELETE', `/access-keys/${key.id}`)).status, 204);
  const outcome = await Promise.race([s2closed, sleep(10_000).then(() => false)]);
  assert.ok(
    outcome,
    'open connection of the deleted key closed (seen by the application through ladder client)',
  );
  assert.ok(Date.now() - before < 10_000);

  // Outline semantics: a key may name its own port, and the port for new keys can change; the
  // pool opens listeners for them without a restart.
  const spare = await new Promise<number>((resolve) => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1', () => {
      const p = (probe.address() as AddressInfo).port;
      probe.close(() => resolve(p));
    });
  });
  const own = JSON.parse(
    (await api(cfg, 'PUT', '/access-keys/own-port', { name: 'own', port: spare })).body,
  ) as typeof key;
  assert.equal(own.port, spare);
  const t3 = await waitFor(
    () =>
      openTestTunnel({
        port: spare,
        host: '127.0.0.1',
        method: own.method,
        password: own.password,
        target: { host: '127.0.0.1', port: echoPort },
      }).catch(() => undefined),
    { timeoutMs: 2000, intervalMs: 50, message: 'listener opened for the key port' },
  );
  assert.ok(t3, 'listener opened for the key port');
  t3.send(Buffer.from('own port'));
  assert.equal((await t3.read(8, 5000)).toString(), 'own port');
  t3.destroy();
  assert.ok(m.pool.ports.includes(spare));

  // Restart: keys, usage, API URL and certificate intact.
  const keep = JSON.parse((await api(cfg, 'POST', '/access-keys', { name: 'kept' })).body) as { id: string };
  m.store.addBytes(keep.id, 5, 6);
  const apiPort = m.api!.port;
  await m.close();
  closed = true;
  m = await startManaged({ ...flags(dir), apiPort: undefined } as never, silentLogger);
  closed = false;
  assert.equal(m.api!.port, apiPort, 'API port kept across restarts');
  assert.equal(m.firstStart, false);
  assert.ok(
    !m.publicBanner.includes('apiUrl') && !m.publicBanner.includes('ss://'),
    'no secrets in the restart log text',
  );
  assert.match(m.publicBanner, /ladder keys url/);
  const line2 = m.banner.split('\n').find((l) => l.startsWith('{"apiUrl":'));
  assert.equal(line2, line, 'same access config after restart');
  const list = JSON.parse((await api(cfg, 'GET', '/access-keys')).body) as {
    accessKeys: { id: string; name: string }[];
  };
  assert.deepEqual(
    list.accessKeys.map((k) => k.name),
    ['Initial key', 'own', 'kept'],
  );
  const tr = JSON.parse((await api(cfg, 'GET', '/metrics/transfer')).body) as {
    bytesTransferredByUserId: Record<string, number>;
  };
  assert.equal(tr.bytesTransferredByUserId[keep.id], 11);
  // The primary port changed (--port 0), so the old keys' port gets its own listener again.
  const keptPort = (list.accessKeys.find((k) => k.name === 'kept') as unknown as { port: number }).port;
  await waitFor(() => m.pool.ports.includes(keptPort), {
    timeoutMs: 2000,
    intervalMs: 50,
    message: 'listener for the stored keys port after restart',
  });
  assert.ok(m.pool.ports.includes(keptPort), 'listener for the stored keys port after restart');
});

test('mode selection: managed unless a key source is named; data-plane flags keep it managed; flags of the other mode refused', () => {
  const saved = process.env.LADDER_PASSWORD;
  delete process.env.LADDER_PASSWORD;
  try {
    assert.equal(chooseMode({ metrics: true }), 'managed', 'npm start');
    assert.equal(chooseMode({ metrics: true, logLevel: 'debug', publicHost: 'x.example' }), 'managed');
    assert.equal(chooseMode({ metrics: true, dataDir: '/tmp/x', port: '443' }), 'managed');
    assert.equal(chooseMode({ metrics: false }), 'managed');
    for (const extra of [
      { allowPrivate: true },
      { port: '0', host: '127.0.0.1' },
      { udp: false },
      { idleTimeout: '30' },
      { method: 'aes-256-gcm' },
      { replayState: 'r.bin' },
    ])
      assert.equal(chooseMode({ metrics: true, ...extra }), 'managed', JSON.stringify(extra));
    assert.equal(chooseMode({ metrics: true, password: 'p' }), 'unmanaged');
    assert.equal(
      chooseMode({ metrics: true, password: 'p', method: 'aes-128-gcm', allowPrivate: true }),
      'unmanaged',
    );
    assert.equal(chooseMode({ metrics: true, config: 'f.json' }), 'unmanaged');
    assert.throws(
      () => chooseMode({ metrics: true, config: 'f.json', dataDir: 'd' }),
      /--data-dir is for the managed server/,
    );
    assert.throws(
      () => chooseMode({ metrics: false, password: 'p' }),
      /--no-metrics is for the managed server/,
    );
    assert.throws(
      () => chooseMode({ metrics: true, config: 'f', password: 'p' }),
      /cannot be combined with --config/,
    );
    assert.throws(
      () => chooseMode({ metrics: true, showUrls: true }),
      /--show-urls is for the unmanaged server/,
    );
    process.env.LADDER_PASSWORD = 'x';
    assert.equal(chooseMode({ metrics: true }), 'unmanaged');
    assert.throws(
      () => chooseMode({ metrics: true, config: 'f' }),
      /LADDER_PASSWORD cannot be combined with --config/,
    );
  } finally {
    if (saved === undefined) delete process.env.LADDER_PASSWORD;
    else process.env.LADDER_PASSWORD = saved;
  }
});

test('managed banner: mode, store, ports, private policy; --method sets the initial key; the QR code only in the terminal text', async (t) => {
  const dir = tempDir(t);
  const m = await startManaged(
    { ...flags(dir), allowPrivate: undefined, method: 'aes-256-gcm' } as never,
    silentLogger,
  );
  try {
    for (const text of [m.banner, m.logBanner, m.publicBanner]) {
      assert.match(text, /^Ladder server — managed mode \(key store, management API, metrics\)\n/);
      assert.ok(text.includes(`store: ${dir}/ladder.db (SQLite)`), text);
      assert.match(text, new RegExp(`Shadowsocks on port ${m.plane.address.port} `));
      assert.match(text, new RegExp(`management API on port ${m.api!.port} `));
      assert.match(text, /private\/loopback destinations refused \(a local test needs --allow-private\)/);
    }
    assert.match(m.banner, /[▀▄█]/);
    assert.doesNotMatch(m.logBanner, /[▀▄█]/);
    assert.ok(!m.logBanner.includes('\u001b'), 'no escape codes');
    assert.match(m.logBanner, /ss:\/\/\S+/);
    assert.match(m.logBanner, /--qr-png FILE/);
    assert.equal((await m.store.listKeys())[0]!.method, 'aes-256-gcm');
  } finally {
    await m.close();
  }
  await assert.rejects(
    startManaged({ ...flags(tempDir(t)), method: 'rc4-md5' } as never, silentLogger),
    /--method: method "rc4-md5" is a stream cipher/,
  );
});

test('managed mode relays UDP for its keys by default, like Outline; --no-udp turns it off (negative control)', async (t) => {
  const { UdpTunnel } = await import('../../src/transport/udp-tunnel.js');
  const { startUdpEcho } = await import('../../src/transport/udp-socks5.js');
  const echo = await startUdpEcho();
  t.after(() => echo.close());
  for (const udp of [undefined, false] as const) {
    const m = await startManaged({ ...flags(tempDir(t)), ...(udp === false ? { udp } : {}) }, silentLogger);
    try {
      assert.match(m.publicBanner, udp === false ? /\(TCP; UDP off\)/ : /\(TCP and UDP\)/);
      const k = (await m.store.listKeys())[0]!;
      const tunnel = await UdpTunnel.open({
        host: '127.0.0.1',
        port: m.plane.address.port,
        method: k.method,
        password: k.secret,
      });
      try {
        const got: Buffer[] = [];
        tunnel.onMessage = (_from, payload) => got.push(payload);
        for (let i = 0; i < 5; i++) {
          tunnel.send({ type: 'ipv4', host: '127.0.0.1', port: echo.port }, Buffer.from(`dgram ${i}`));
          await sleep(40);
        }
        // The first datagram starts the data-plane workers (from src/ through tsx: seconds); the
        // datagrams wait in the socket buffer until worker 0 takes the socket over.
        if (udp !== false)
          await waitFor(() => got.length >= 5 || undefined, { timeoutMs: 20_000, message: '5 replies' });
        await sleep(200);
        if (udp === false) assert.equal(got.length, 0, 'no UDP relay with --no-udp');
        else
          assert.deepEqual(
            got.map(String).sort(),
            [0, 1, 2, 3, 4].map((i) => `dgram ${i}`),
          );
      } finally {
        tunnel.close();
      }
    } finally {
      await m.close();
    }
  }
});
