/**
 * Per-key speed limits in the data plane (src/server/speed-limits.ts), on an in-process server
 * with the default paths (native accept, lean path, native relay) and shared replay filters as
 * the workers have them (so the addon's lean-path checks run): a limited key's download and
 * upload take at least (size - burst) / rate, the same transfer without the limit is much faster
 * and stays on the lean path and native relay, a limit changed mid-transfer takes effect, and
 * UDP datagrams over the rate are dropped. Key ids are fresh per test: the buckets are the
 * process's (one table for every server and thread).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { decodeUdp2017, encodeUdp2017 } from '../../src/protocol/shadowsocks/udp.js';
import { encodeUotDatagram, encodeUotRequest, UOT_MAGIC_V2 } from '../../src/protocol/uot.js';
import { createMetrics } from '../../src/metrics/index.js';
import { leanPathServed } from '../../src/server/lean-path.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { burstBytes, throttledRelays } from '../../src/server/speed-limits.js';
import { speedLimitStats } from '../../src/server/workers/shared-buckets.js';
import { createSharedReplay, sharedReplayFilters } from '../../src/server/workers/shared-salts.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { silentLogger } from '../../src/shared/logger.js';
import { startUdpEcho } from '../../src/transport/udp-socks5.js';
import { nativeAccept } from '../../src/transport/native-stream.js';
import { startSink, startSource, u64, type TestServer } from '../helpers/net.js';
import { openTestTunnel, type TestTunnel } from '../helpers/test-client.js';
import { sleep } from '../helpers/wait.js';

const METHOD = 'aes-128-gcm';
const RATE = 512 * 1024; // bytes per second
const SIZE = 1536 * 1024;
/** The least time a limited transfer of SIZE may take. */
const BOUND_MS = ((SIZE - burstBytes(RATE)) / RATE) * 1000;

const newKey = (speedLimit?: number): RuntimeKey => ({
  id: `speed-${randomBytes(4).toString('hex')}`,
  method: METHOD,
  secret: `pw-${randomBytes(6).toString('hex')}`,
  ...(speedLimit !== undefined ? { speedLimit } : {}),
});

let server: ShadowsocksServer;
let port: number;
let source: TestServer;
let sink: TestServer;
const keys: RuntimeKey[] = [];

function setKeys(...ks: RuntimeKey[]): void {
  keys.splice(0, keys.length, ...ks);
  server.setKeys(keys);
}

before(async () => {
  server = new ShadowsocksServer({
    allowPrivateDestinations: true,
    replayFilters: sharedReplayFilters(createSharedReplay(1000)),
    timeouts: { idleMs: 20_000 },
    logger: silentLogger,
    udp: true,
  });
  port = (await server.listen({ port: 0, host: '127.0.0.1' })).port;
  [source, sink] = await Promise.all([startSource({ hash: false }), startSink({ hash: false })]);
});
after(async () => {
  await Promise.all([server.close(), source.close(), sink.close()]);
});

function tunnel(k: RuntimeKey, to: TestServer, initial: Buffer): Promise<TestTunnel> {
  return openTestTunnel({
    port,
    method: k.method,
    password: k.secret,
    target: { host: '127.0.0.1', port: to.port },
    initial,
  });
}

/** Download `size` bytes from the source through key `k`: the ms it took. */
async function download(
  k: RuntimeKey,
  size = SIZE,
  during?: (t: TestTunnel) => Promise<void>,
): Promise<number> {
  const t0 = Date.now();
  const t = await tunnel(k, source, u64(size));
  try {
    await Promise.all([t.read(size, 20_000), during?.(t)]);
    return Date.now() - t0;
  } finally {
    t.destroy();
  }
}

/** Upload `size` bytes to the sink through key `k`: the ms until the sink's answer. */
async function upload(k: RuntimeKey, size = SIZE): Promise<number> {
  const t0 = Date.now();
  const t = await tunnel(k, sink, u64(size));
  try {
    for (let sent = 0; sent < size; sent += 16_000) t.send(randomBytes(Math.min(16_000, size - sent)));
    await t.read(1, 20_000);
    return Date.now() - t0;
  } finally {
    t.destroy();
  }
}

describe('speed limits, TCP', () => {
  it('a download through a limited key takes at least (size - burst) / rate; without the limit, much less, on the lean path', async () => {
    const k = newKey(RATE);
    setKeys(k);
    const relays = throttledRelays();
    const ms = await download(k);
    assert.ok(ms >= BOUND_MS, `limited download took ${ms} ms, at least ${BOUND_MS} expected`);
    assert.ok(ms < BOUND_MS + 6000, `limited download took ${ms} ms`);
    assert.equal(throttledRelays(), relays + 1, 'the throttled relay carried it');
    const text = await createMetrics({ processMetrics: false, speedStats: speedLimitStats }).render();
    const held = new RegExp(
      `^ladder_key_speed_limited_seconds_total\\{access_key="${k.id}",dir="down"\\} (\\S+)$`,
      'm',
    );
    assert.ok(Number(held.exec(text)?.[1]) > 0, `time held back is counted (down):\n${text}`);

    // The negative control: the same key, its limit removed (a delta, as the enforcer sends).
    const free = { id: k.id, method: k.method, secret: k.secret };
    server.applyKeyDelta({ upsert: [free], remove: [] });
    const lean = leanPathServed();
    const fast = await download(k);
    assert.ok(fast < BOUND_MS / 2, `unlimited download took ${fast} ms`);
    assert.equal(throttledRelays(), relays + 1, 'no throttled relay without a limit');
    if (nativeAccept()) assert.equal(leanPathServed(), lean + 1, 'a key without a limit keeps the lean path');
  });

  it('an upload through a limited key takes at least (size - burst) / rate; without the limit, much less', async () => {
    const k = newKey(RATE);
    setKeys(k);
    const ms = await upload(k);
    assert.ok(ms >= BOUND_MS, `limited upload took ${ms} ms, at least ${BOUND_MS} expected`);
    assert.ok(ms < BOUND_MS + 6000, `limited upload took ${ms} ms`);
    setKeys({ id: k.id, method: k.method, secret: k.secret });
    const fast = await upload(k);
    assert.ok(fast < BOUND_MS / 2, `unlimited upload took ${fast} ms`);
  });

  it('a limit changed mid-transfer applies to the open connection within about a second', async () => {
    const slow = 128 * 1024;
    const size = 2 * 1024 * 1024; // 16 s at the first rate
    const k = newKey(slow);
    setKeys(k);
    let atChange = 0;
    const ms = await download(k, size, async (t) => {
      await sleep(1500);
      atChange = Buffer.concat(t.receivedWire).length;
      server.applyKeyDelta({ upsert: [{ ...k, speedLimit: 8 * 1024 * 1024 }], remove: [] });
    });
    // By the change: the burst and 1.5 s at the first rate (and a chunk in flight), far from all.
    assert.ok(atChange <= burstBytes(slow) + slow * 1.5 + 2 * 65_536, `${atChange} bytes before the change`);
    assert.ok(ms < 6000, `the rest at the new rate: took ${ms} ms`);
  });

  it('a limit removed mid-transfer releases the waiting connection at once', async () => {
    const slow = 64 * 1024;
    const size = 1024 * 1024; // 15 s at the rate
    const k = newKey(slow);
    setKeys(k);
    let atChange = 0;
    let changedAt = 0;
    const t0 = Date.now();
    await download(k, size, async (t) => {
      await sleep(1000);
      atChange = Buffer.concat(t.receivedWire).length;
      changedAt = Date.now();
      server.applyKeyDelta({ upsert: [{ id: k.id, method: k.method, secret: k.secret }], remove: [] });
    });
    assert.ok(atChange <= burstBytes(slow) + slow * 1.0 + 2 * 65_536, `${atChange} bytes before the change`);
    assert.ok(
      Date.now() - changedAt < 3000,
      `the rest took ${Date.now() - changedAt} ms (in all ${Date.now() - t0})`,
    );
  });

  it('a key that gains a limit has its open connections closed (they ran on the fast paths); the next is throttled', async () => {
    const k = newKey();
    setKeys(k);
    const open = await tunnel(k, sink, u64(64 * 1024 * 1024));
    try {
      open.send(randomBytes(16_000));
      await sleep(200);
      server.applyKeyDelta({ upsert: [{ ...k, speedLimit: RATE }], remove: [] });
      const how = await Promise.race([open.closed, sleep(3000).then(() => undefined)]);
      assert.ok(how !== undefined, 'the connection opened before the limit was closed');
    } finally {
      open.destroy();
    }
    const relays = throttledRelays();
    const ms = await download(k);
    assert.ok(ms >= BOUND_MS, `the next download took ${ms} ms, at least ${BOUND_MS} expected`);
    assert.equal(throttledRelays(), relays + 1, 'the throttled relay carried it');
  });

  it('two connections of one key share its rate (their sum)', async () => {
    const k = newKey(RATE);
    setKeys(k);
    const half = SIZE / 2;
    const t0 = Date.now();
    await Promise.all([download(k, half), download(k, half)]);
    const ms = Date.now() - t0;
    assert.ok(ms >= BOUND_MS, `two downloads of ${half} took ${ms} ms, at least ${BOUND_MS} expected`);
  });

  it('a low rate (8 KiB/s) delivers steadily: past the burst, no gap much longer than a piece (1/8 s)', async () => {
    const rate = 8 * 1024;
    const k = newKey(rate);
    setKeys(k);
    const size = burstBytes(rate) + 24 * 1024;
    const t = await tunnel(k, source, u64(size));
    const arrivals: { at: number; wire: number }[] = [];
    let wire = 0;
    t.socket.on('data', (d: Buffer) => arrivals.push({ at: Date.now(), wire: (wire += d.length) }));
    try {
      const t0 = Date.now();
      await t.read(size, 15_000);
      const ms = Date.now() - t0;
      const bound = ((size - burstBytes(rate)) / rate) * 1000;
      assert.ok(ms >= bound * 0.9, `took ${ms} ms, about ${bound} expected at the rate`);
      // Past the burst (and a piece), the gaps between arrivals: a piece is 1 KiB, 125 ms.
      const late = arrivals.filter((a) => a.wire > burstBytes(rate) + 2048);
      let gap = 0;
      for (let i = 1; i < late.length; i++) gap = Math.max(gap, late[i]!.at - late[i - 1]!.at);
      assert.ok(late.length >= 10, `${late.length} arrivals past the burst`);
      assert.ok(gap < 700, `the longest gap past the burst was ${gap} ms (a piece is 125 ms)`);
    } finally {
      t.destroy();
    }
  });
});

describe('speed limits, UDP', () => {
  let echo: { port: number; close(): Promise<void> };
  before(async () => {
    echo = await startUdpEcho();
  });
  after(() => echo.close());

  /** Send `n` datagrams of `size` at once through key `k`; the replies back within 1.5 s. */
  async function burst(k: RuntimeKey, n: number, size: number): Promise<number> {
    const m = getAeadMethod(k.method);
    const master = evpBytesToKey(k.secret, m.keySize);
    const sock = dgram.createSocket('udp4');
    let got = 0;
    sock.on('message', (msg) => {
      decodeUdp2017(m, master, msg);
      got++;
    });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    try {
      const to = { type: 'ipv4' as const, host: '127.0.0.1', port: echo.port };
      for (let i = 0; i < n; i++) {
        sock.send(encodeUdp2017(m, master, to, randomBytes(size)), port, '127.0.0.1');
        if (i % 20 === 19) await sleep(1); // no loss in the socket buffers themselves
      }
      await sleep(1500);
      return got;
    } finally {
      sock.close();
    }
  }

  it('datagrams over the rate are dropped and counted; without the limit they pass', async () => {
    const rate = 64 * 1024; // the burst is 64 KiB: about 60 datagrams of 1 KiB, 64 more a second
    const k = newKey(rate);
    setKeys(k);
    const got = await burst(k, 300, 1000);
    assert.ok(got > 20, `${got} replies`);
    assert.ok(got <= 64 + 110, `${got} of 300 replies through a 64 KiB/s limit`);
    const text = await createMetrics({ processMetrics: false, speedStats: speedLimitStats }).render();
    const dropped = new RegExp(
      `^ladder_key_speed_dropped_datagrams_total\\{access_key="${k.id}"\\} (\\S+)$`,
      'm',
    );
    assert.ok(Number(dropped.exec(text)?.[1]) >= 300 - got - 1, `dropped datagrams are counted:\n${text}`);
    setKeys({ id: k.id, method: k.method, secret: k.secret });
    const free = await burst(k, 300, 1000);
    assert.ok(free >= 280, `${free} of 300 replies without the limit`);
  });

  /** Send `n` datagrams of `size` over UDP-over-TCP (v2, connect mode) through key `k`; the replies in 1.5 s. */
  async function uotBurst(k: RuntimeKey, n: number, size: number): Promise<number> {
    const to = { type: 'ipv4' as const, host: '127.0.0.1', port: echo.port };
    const t = await openTestTunnel({
      port,
      method: k.method,
      password: k.secret,
      target: { host: UOT_MAGIC_V2, port: 0 },
      initial: encodeUotRequest({ connect: true, destination: to }),
    });
    try {
      for (let i = 0; i < n; i++) {
        t.send(encodeUotDatagram(undefined, randomBytes(size)));
        if (i % 20 === 19) await sleep(1);
      }
      await sleep(1500);
      return Math.floor((await t.read(0)).length / (size + 2));
    } finally {
      t.destroy();
    }
  }

  it('UDP over TCP: datagrams over the rate are dropped, as plain UDP; without the limit they pass', async () => {
    const k = newKey(64 * 1024);
    setKeys(k);
    const got = await uotBurst(k, 300, 1000);
    assert.ok(got > 20, `${got} replies`);
    assert.ok(got <= 64 + 110, `${got} of 300 replies through a 64 KiB/s limit`);
    setKeys({ id: k.id, method: k.method, secret: k.secret });
    const free = await uotBurst(k, 300, 1000);
    assert.ok(free >= 280, `${free} of 300 replies without the limit`);
  });
});
