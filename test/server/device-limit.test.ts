/**
 * Per-key device limits in the data plane (docs/limits.md, "Device limits"), on in-process
 * servers with real loopback sockets from several source addresses (127.0.0.2, .3, .4): a second
 * address over the limit gets a wrong key's reaction (nothing back, the connection held), the
 * first address's connections are never cut, a freed place is taken at once, an address whose
 * connections all went silent stops counting (a phone that changed network), live changes of the
 * limit, UDP datagrams, the WebSocket front, and the /64 grouping of IPv6 addresses.
 *
 * Silence counts after LADDER_DEVICE_SILENT_MS (1.5 s here instead of 30 s), read when each
 * server is made.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import WebSocket from 'ws';
import { ShadowsocksServer } from '../../src/server/server.js';
import { DeviceLimits, deviceGroup, processDeviceCounts } from '../../src/server/device-limits.js';
import { KeyRing } from '../../src/server/keys.js';
import { createMetrics } from '../../src/metrics/index.js';
import { leanPathServed } from '../../src/server/lean-path.js';
import { nativeAvailable } from '../../src/protocol/shadowsocks/native.js';
import { nativeAccept } from '../../src/transport/native-stream.js';
import { SharedDevices, createSharedDevices } from '../../src/server/workers/shared-devices.js';
import { AeadDecoder, AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { Aead2022RequestEncoder, Aead2022ResponseDecoder } from '../../src/protocol/shadowsocks/aead2022.js';
import { getAead2022Method } from '../../src/protocol/shadowsocks/methods2022.js';
import { burstBytes } from '../../src/server/speed-limits.js';
import { decodeUdp2017, encodeUdp2017 } from '../../src/protocol/shadowsocks/udp.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { encodeAddress, toSocksAddress } from '../../src/protocol/socks5/address.js';
import { startUdpEcho } from '../../src/transport/udp-socks5.js';
import { ManualClock } from '../../src/shared/clock.js';
import { createLogger } from '../../src/shared/logger.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { tryStream, udpClient, type DeviceStream } from '../helpers/device-client.js';
import { startWsTestServer } from '../helpers/web-server.js';
import { sleep, waitFor } from '../helpers/wait.js';

const SILENT_MS = 1500;
process.env['LADDER_DEVICE_SILENT_MS'] = String(SILENT_MS);
const METHOD = 'aes-256-gcm';

let echo: TestServer;
before(async () => {
  echo = await startEcho();
});
after(async () => {
  await echo.close();
});

function key(id: string, deviceLimit?: number): RuntimeKey & { password: string } {
  const secret = `${id}-${randomBytes(6).toString('hex')}`;
  return {
    id,
    method: METHOD,
    secret,
    password: secret,
    ...(deviceLimit !== undefined ? { deviceLimit } : {}),
  };
}

/** A log destination that keeps its lines. */
function logLines(): { lines: string[]; destination: Writable } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _e, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { lines, destination };
}

/** A server on 127.0.0.1 whose info lines are kept. */
async function server(
  keys: RuntimeKey[],
  extra: Partial<ConstructorParameters<typeof ShadowsocksServer>[0]> = {},
  silentMs = SILENT_MS,
): Promise<{ s: ShadowsocksServer; port: number; lines: () => string[] }> {
  process.env['LADDER_DEVICE_SILENT_MS'] = String(silentMs);
  const { lines, destination } = logLines();
  const s = new ShadowsocksServer({
    keys,
    allowPrivateDestinations: true,
    logger: createLogger({ level: 'info', destination }),
    ...extra,
  });
  const addr = await s.listen({ port: 0, host: '127.0.0.1' });
  return { s, port: addr.port, lines: () => lines };
}

const closeAll = (streams: DeviceStream[]): void => streams.forEach((x) => x.close());

for (const lean of [true, false]) {
  test(`limit 1 (${lean ? 'default paths' : 'no lean path'}): a second address is held as a wrong key, takes the place once the first closes`, async () => {
    const k = key(`one-${lean}`, 1);
    const free = key(`free-${lean}`);
    const statuses: string[] = [];
    const hooks = { onConnectionClosed: (e: { status: string }) => void statuses.push(e.status) };
    const { s, port, lines } = await server([k, free], { leanPath: lean, hooks }, 30_000);
    const open: DeviceStream[] = [];
    try {
      const leanBefore = leanPathServed();
      const a = await tryStream(port, '127.0.0.2', k, echo.port);
      open.push(a.stream);
      assert.equal(a.outcome, 'echo');
      // With the addon, the default paths take the lean path: its own check is the one tested.
      if (lean && nativeAvailable() && nativeAccept()?.acceptKeys !== undefined)
        assert.equal(leanPathServed() - leanBefore, 1, 'the lean path served the first connection');
      const a2 = await tryStream(port, '127.0.0.2', k, echo.port);
      open.push(a2.stream);
      assert.equal(a2.outcome, 'echo', 'the same address opens more connections');
      const b = await tryStream(port, '127.0.0.3', k, echo.port, 1500);
      open.push(b.stream);
      assert.equal(b.outcome, 'held', 'over the limit: no reply, the connection held open (as a wrong key)');
      // What a wrong password gets, for comparison: the same.
      const wrong = await tryStream(
        port,
        '127.0.0.3',
        { method: METHOD, password: 'not-a-key' },
        echo.port,
        1500,
      );
      open.push(wrong.stream);
      assert.equal(wrong.outcome, 'held');
      // A key without a limit is not affected.
      const other = await tryStream(port, '127.0.0.3', free, echo.port);
      open.push(other.stream);
      assert.equal(other.outcome, 'echo');
      assert.deepEqual(
        [...s.devicesInUse()].filter(([id]) => id === k.id),
        [[k.id, 1]],
      );
      // The metrics read the same table: addresses in use and refusals per key, no address.
      const metrics = createMetrics({ processMetrics: false });
      metrics.watchDevices(processDeviceCounts);
      const text = await metrics.render();
      assert.match(text, new RegExp(`ladder_key_devices_in_use\\{access_key="${k.id}"\\} 1`));
      assert.match(text, new RegExp(`ladder_key_device_refusals_total\\{access_key="${k.id}"\\} 1`));
      assert.doesNotMatch(text, /127\.0\.0/);
      const said = lines().filter((l) => l.includes('device limit') && l.includes(`key ${k.id}:`));
      assert.equal(said.length, 1, said.join(''));
      assert.match(
        said[0]!,
        new RegExp(
          `key ${k.id}: connections from another address refused: device limit 1 reached \\(1 refused in the last minute\\)`,
        ),
      );
      assert.doesNotMatch(said[0]!, /127\.0\.0/, 'no address in the line');
      // The first address's connections still work; once both close, the second address gets in.
      a.stream.send(' more');
      await waitFor(() => a.stream.text().endsWith(' more'));
      a.stream.close();
      a2.stream.close();
      await sleep(200);
      const b2 = await tryStream(port, '127.0.0.3', k, echo.port);
      open.push(b2.stream);
      assert.equal(b2.outcome, 'echo');
      const a3 = await tryStream(port, '127.0.0.2', k, echo.port, 1500);
      open.push(a3.stream);
      assert.equal(a3.outcome, 'held', 'now the first address waits');
    } finally {
      closeAll(open);
      await s.close();
    }
    // Refused as no key matched (never counted as a replay, although the lean path's check
    // already put the salt in the filter).
    assert.equal(statuses.filter((x) => x === 'ERR_CIPHER').length, 3, statuses.join());
    assert.ok(!statuses.includes('ERR_REPLAY_CLIENT'), statuses.join());
  });
}

test('a phone that changed network: its silent connections stop counting; an active address keeps its place', async () => {
  const k = key('phone', 1);
  const { s, port } = await server([k]);
  const open: DeviceStream[] = [];
  try {
    // Active on 127.0.0.2 (bytes every 300 ms): 127.0.0.3 stays out well past the silence.
    const a = await tryStream(port, '127.0.0.2', k, echo.port);
    open.push(a.stream);
    assert.equal(a.outcome, 'echo');
    const ticker = setInterval(() => a.stream.send('.'), 300);
    try {
      await sleep(SILENT_MS * 2);
      const b = await tryStream(port, '127.0.0.3', k, echo.port, 800);
      open.push(b.stream);
      assert.equal(b.outcome, 'held', 'an address still moving bytes keeps the place');
    } finally {
      clearInterval(ticker);
    }
    // The phone moves: its old connection goes silent without a FIN (it stays open here).
    const moved = Date.now();
    let outcome = 'held';
    for (let i = 0; i < 20 && outcome !== 'echo'; i++) {
      const c = await tryStream(port, '127.0.0.3', k, echo.port, 400);
      open.push(c.stream);
      outcome = c.outcome;
    }
    assert.equal(outcome, 'echo', 'the new address gets in once the old one is silent');
    const took = Date.now() - moved;
    assert.ok(took >= SILENT_MS - 400 && took < SILENT_MS * 4, `took ${took} ms`);
    assert.equal(a.stream.closed(), false, 'the silent connection is not cut');
  } finally {
    closeAll(open);
    await s.close();
  }
});

test('a limit changed live: raised at once, lowered without cutting, removed at once', async () => {
  const k = key('live', 1);
  const { s, port } = await server([k], {}, 30_000);
  const open: DeviceStream[] = [];
  const at = async (ip: string): Promise<string> => {
    const r = await tryStream(port, ip, k, echo.port, 1500);
    open.push(r.stream);
    return r.outcome;
  };
  try {
    assert.equal(await at('127.0.0.2'), 'echo');
    assert.equal(await at('127.0.0.3'), 'held');
    s.applyKeyDelta({ upsert: [{ ...k, deviceLimit: 2 }], remove: [] });
    assert.equal(await at('127.0.0.3'), 'echo', 'raised: at once');
    s.setKeys([{ ...k, deviceLimit: 1 }]);
    for (const x of open) x.send('!');
    await sleep(300);
    const live = open.filter((x) => x.text().length > 0 && !x.closed());
    assert.equal(live.length, 2, 'lowered: both addresses keep their connections');
    assert.equal(await at('127.0.0.4'), 'held', 'lowered: a new address waits');
    s.applyKeyDelta({ upsert: [{ id: k.id, method: k.method, secret: k.secret }], remove: [] });
    assert.equal(await at('127.0.0.4'), 'echo', 'removed: at once');
  } finally {
    closeAll(open);
    await s.close();
  }
});

test('UDP: a datagram from another address over the limit is dropped; the place frees when the first goes silent', async () => {
  const k = key('udp', 1);
  const udpEcho = await startUdpEcho('127.0.0.1');
  const { s, port } = await server([k], { udp: true });
  const a = await udpClient(port, '127.0.0.2', k, udpEcho.port);
  const b = await udpClient(port, '127.0.0.3', k, udpEcho.port);
  try {
    assert.equal(await a.echoes(), true);
    assert.equal(await b.echoes(600), false, 'over the limit: dropped');
    assert.equal(await a.echoes(), true);
    await sleep(SILENT_MS + 600);
    let got = false;
    for (let i = 0; i < 10 && !got; i++) got = await b.echoes(400);
    assert.equal(got, true, 'the silent address no longer counts');
    assert.equal(await a.echoes(), true, "the first address's own session goes on (never cut)");
    const a2 = await udpClient(port, '127.0.0.2', k, udpEcho.port);
    assert.equal(await a2.echoes(600), false, 'a new session from the first address waits');
    a2.close();
  } finally {
    a.close();
    b.close();
    await s.close();
    await udpEcho.close();
  }
});

test('WebSocket front: the address the front sees counts; a second one is held as a wrong key', async () => {
  const k = key('ws', 1);
  process.env['LADDER_DEVICE_SILENT_MS'] = '30000';
  const srv = await startWsTestServer({ keys: [k] });
  const m = getAeadMethod(METHOD);
  const master = evpBytesToKey(k.password, m.keySize);
  const through = async (localAddress: string): Promise<{ ws: WebSocket; echoed: boolean }> => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.webPort}/secret-path/tcp`, [], {
      perMessageDeflate: false,
      localAddress,
    });
    const dec = new AeadDecoder(m, master);
    let text = '';
    ws.on('message', (d: Buffer) => {
      for (const p of dec.push(d)) text += p.toString();
    });
    ws.on('error', () => {});
    await once(ws, 'open');
    const payload = `ws ${localAddress}`;
    ws.send(
      new AeadEncoder(m, master).encode(
        Buffer.concat([encodeAddress(toSocksAddress('127.0.0.1', echo.port)), Buffer.from(payload)]),
      ),
    );
    const until = Date.now() + 1200;
    while (Date.now() < until && text !== payload) await sleep(20);
    return { ws, echoed: text === payload };
  };
  const open: WebSocket[] = [];
  try {
    const a = await through('127.0.0.2');
    open.push(a.ws);
    assert.equal(a.echoed, true);
    const b = await through('127.0.0.3');
    open.push(b.ws);
    assert.equal(b.echoed, false);
    assert.equal(b.ws.readyState, WebSocket.OPEN, 'held open, as a wrong key');
    a.ws.terminate();
    await sleep(300);
    const c = await through('127.0.0.3');
    open.push(c.ws);
    assert.equal(c.echoed, true);
  } finally {
    for (const w of open) w.terminate();
    await srv.close();
  }
});

test('address groups: IPv4 exactly, IPv4-mapped as IPv4, IPv6 by its /64', () => {
  assert.equal(deviceGroup('203.0.113.7'), '203.0.113.7');
  assert.equal(deviceGroup('::ffff:203.0.113.7'), '203.0.113.7');
  assert.equal(deviceGroup('::FFFF:203.0.113.7'), '203.0.113.7');
  assert.equal(deviceGroup('2001:db8:1:2::a'), '2001:db8:1:2::/64');
  assert.equal(deviceGroup('2001:0db8:0001:0002:ffff:1:2:3'), '2001:db8:1:2::/64');
  assert.equal(deviceGroup('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(deviceGroup('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.notEqual(deviceGroup('2001:db8:1:3::a'), deviceGroup('2001:db8:1:2::a'));
});

test('the /64 grouping holds in the table: two privacy addresses of one /64 are one device', () => {
  const clock = new ManualClock(1_000_000);
  const ring = new KeyRing();
  ring.set([{ id: 'v6', method: METHOD, secret: 'x', deviceLimit: 1 }]);
  const d = new DeviceLimits({
    keys: ring,
    clock,
    log: silentLogger,
    table: new SharedDevices(createSharedDevices()),
    enabled: true,
    silentMs: 30_000,
  });
  const owner = (): { activity(): number } => ({ activity: () => 0 });
  const [p1, p2, p3, p4] = [owner(), owner(), owner(), owner()];
  assert.equal(d.admit(p1, 'v6', '2001:db8:1:2:aaaa::1'), true);
  assert.equal(d.admit(p2, 'v6', '2001:db8:1:2:bbbb::2'), true, 'same /64');
  assert.equal(d.admit(p3, 'v6', '2001:db8:1:3::1'), false, 'another /64');
  assert.equal(d.admit(p4, 'v6', '::ffff:198.51.100.1'), false);
  assert.deepEqual([...d.inUse()], [['v6', 1]]);
  d.release(p1);
  assert.equal(d.admit(p3, 'v6', '2001:db8:1:3::1'), false, 'one connection of the /64 still open');
  d.release(p2);
  assert.equal(d.admit(p3, 'v6', '2001:db8:1:3::1'), true);
  // Silence: 30 s later without a byte the /64 stops counting.
  clock.advance(30_001);
  assert.equal(d.admit(p4, 'v6', '198.51.100.1'), true);
  d.close();
});

for (const whole of [false, true]) {
  test(`a key whose secret changed and that gained a limit (${whole ? 'setKeys' : 'applyKeyDelta'}): its connection is closed once`, async () => {
    const k = key(`regain-${whole}`);
    const { lines, destination } = logLines();
    const s = new ShadowsocksServer({
      keys: [k],
      allowPrivateDestinations: true,
      logger: createLogger({ level: 'debug', destination }),
    });
    const { port } = await s.listen({ port: 0, host: '127.0.0.1' });
    const open: DeviceStream[] = [];
    try {
      const a = await tryStream(port, '127.0.0.2', k, echo.port);
      open.push(a.stream);
      assert.equal(a.outcome, 'echo');
      const changed = {
        ...k,
        secret: `${k.secret}-new`,
        password: `${k.secret}-new`,
        deviceLimit: 1,
        speedLimit: 1 << 20,
      };
      lines.length = 0;
      if (whole) s.setKeys([changed]);
      else s.applyKeyDelta({ upsert: [changed], remove: [] });
      const line = lines
        .map((l) => JSON.parse(l) as { msg: string; closedConnections?: number })
        .find((l) => l.msg === (whole ? 'keys set' : 'keys changed'));
      assert.equal(line?.closedConnections, 1, `closed once: ${JSON.stringify(line)}`);
      await waitFor(() => a.stream.closed());
      const b = await tryStream(port, '127.0.0.3', changed, echo.port);
      open.push(b.stream);
      assert.equal(b.outcome, 'echo', 'the new secret works, under its limit');
    } finally {
      closeAll(open);
      await s.close();
    }
  });
}

test('UDP over WebSocket: a refused association is answered from memory for a second (one refusal counted, not one per datagram), then asks again', async () => {
  const k = key('wsudp', 1);
  process.env['LADDER_DEVICE_SILENT_MS'] = '30000';
  const srv = await startWsTestServer({ keys: [k] });
  const udpEcho = await startUdpEcho();
  const m = getAeadMethod(METHOD);
  const master = evpBytesToKey(k.password, m.keySize);
  const to = toSocksAddress('127.0.0.1', udpEcho.port);
  const assoc = async (localAddress: string): Promise<{ ws: WebSocket; replies: () => number }> => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.webPort}/secret-path/udp`, [], {
      perMessageDeflate: false,
      localAddress,
    });
    let replies = 0;
    ws.on('message', (d: Buffer) => {
      decodeUdp2017(m, master, d);
      replies++;
    });
    ws.on('error', () => {});
    await once(ws, 'open');
    return { ws, replies: () => replies };
  };
  const send = (ws: WebSocket): void => ws.send(encodeUdp2017(m, master, to, randomBytes(32)));
  const refusals = (): number => processDeviceCounts().refused.get(k.id) ?? 0;
  const open: WebSocket[] = [];
  try {
    const a = await assoc('127.0.0.2');
    open.push(a.ws);
    send(a.ws);
    await waitFor(() => a.replies() > 0);
    const b = await assoc('127.0.0.3');
    open.push(b.ws);
    const before = refusals();
    for (let i = 0; i < 30; i++) {
      send(b.ws);
      await sleep(10);
    }
    await sleep(200);
    assert.equal(b.replies(), 0, 'over the limit: dropped');
    assert.equal(
      refusals() - before,
      1,
      'the first datagram asked the table; the rest were answered from memory',
    );
    a.ws.terminate();
    await sleep(1100); // the place is free and the refusal forgotten
    send(b.ws);
    await waitFor(() => b.replies() > 0, { message: 'admitted once the place is free' });
  } finally {
    for (const w of open) w.terminate();
    await srv.close();
    await udpEcho.close();
  }
});

test('a 2022 key (2022-blake3-aes-256-gcm) on TCP: a second address is held as a wrong key; its transfers keep the speed limit', async () => {
  const rate = 64 * 1024;
  const k: RuntimeKey = {
    id: `k2022-${randomBytes(3).toString('hex')}`,
    method: '2022-blake3-aes-256-gcm',
    secret: randomBytes(32).toString('base64'),
    deviceLimit: 1,
    speedLimit: rate,
  };
  const { s, port } = await server([k], {}, 30_000);
  const method = getAead2022Method(k.method);
  const psk = Buffer.from(k.secret, 'base64');
  const open: net.Socket[] = [];
  /** A 2022 stream from `localAddress` to the echo with `hello`: what came back after `ms`, and the rest. */
  const dial = (localAddress: string, hello: Buffer) => {
    const enc = new Aead2022RequestEncoder(method, psk, { identityKeys: [] });
    const dec = new Aead2022ResponseDecoder(method, psk, enc.salt);
    const sock = net.connect({ port, host: '127.0.0.1', localAddress });
    open.push(sock);
    let got = 0;
    sock.on('data', (d: Buffer) => {
      for (const p of dec.push(d, Date.now())) got += p.length;
    });
    sock.on('error', () => {});
    sock.write(enc.encodeHeader({ type: 'ipv4', host: '127.0.0.1', port: echo.port }, hello, Date.now()));
    return { sock, enc, got: () => got };
  };
  try {
    const a = dial('127.0.0.2', randomBytes(100));
    await waitFor(() => a.got() >= 100);
    const b = dial('127.0.0.3', randomBytes(100));
    await sleep(1200);
    assert.equal(b.got(), 0, 'another address: nothing back');
    assert.equal(b.sock.destroyed, false, 'held open, as a wrong key');
    // The admitted address: 160 KiB through the echo take at least (size - burst) / rate.
    const size = 160 * 1024;
    const t0 = Date.now();
    for (let sent = 0; sent < size; sent += 16 * 1024) a.sock.write(a.enc.encode(randomBytes(16 * 1024)));
    await waitFor(() => a.got() >= 100 + size, { timeoutMs: 15_000 });
    const ms = Date.now() - t0;
    const bound = ((size - burstBytes(rate)) / rate) * 1000;
    assert.ok(ms >= bound * 0.9, `160 KiB took ${ms} ms; at least ${bound} expected at the rate`);
  } finally {
    for (const x of open) x.destroy();
    await s.close();
  }
});

test('HTTPUpgrade front: the same device check: a second address is held as a wrong key', async () => {
  const k = key('hu', 1);
  process.env['LADDER_DEVICE_SILENT_MS'] = '30000';
  const srv = await startWsTestServer({ keys: [k] });
  const m = getAeadMethod(METHOD);
  const master = evpBytesToKey(k.password, m.keySize);
  const open: net.Socket[] = [];
  /** sing-box's httpupgrade request with the tunnel's first bytes; true when the payload echoes. */
  const through = async (localAddress: string): Promise<{ sock: net.Socket; echoed: boolean }> => {
    const sock = net.connect({ port: srv.webPort, host: '127.0.0.1', localAddress });
    open.push(sock);
    sock.on('error', () => {});
    await once(sock, 'connect');
    const payload = `hu ${localAddress}`;
    const dec = new AeadDecoder(m, master);
    let head = Buffer.alloc(0);
    let upgraded = false;
    let text = '';
    sock.on('data', (d: Buffer) => {
      if (!upgraded) {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        upgraded = /^HTTP\/1\.1 101 /.test(head.toString('latin1'));
        d = head.subarray(end + 4);
      }
      for (const p of dec.push(d)) text += p.toString();
    });
    const req = `GET ${srv.secretPath}/up HTTP/1.1\r\nHost: cdn.test\r\nUser-Agent: Go-http-client/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`;
    const first = new AeadEncoder(m, master).encode(
      Buffer.concat([encodeAddress(toSocksAddress('127.0.0.1', echo.port)), Buffer.from(payload)]),
    );
    sock.write(Buffer.concat([Buffer.from(req, 'latin1'), first]));
    const until = Date.now() + 1200;
    while (Date.now() < until && text !== payload) await sleep(20);
    return { sock, echoed: text === payload };
  };
  try {
    const a = await through('127.0.0.2');
    assert.equal(a.echoed, true);
    const b = await through('127.0.0.3');
    assert.equal(b.echoed, false, 'over the limit: nothing back');
    assert.equal(b.sock.destroyed, false, 'held open, as a wrong key');
    a.sock.destroy();
    await sleep(300);
    const c = await through('127.0.0.3');
    assert.equal(c.echoed, true, 'the place freed');
  } finally {
    for (const x of open) x.destroy();
    await srv.close();
  }
});
