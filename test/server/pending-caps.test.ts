/**
 * The caps on connections not yet authenticated (pending-limits.ts): over the per-address cap the
 * OLDEST pending connection of that address is closed as the pre-relay deadline closes it (FIN,
 * nothing written), over the total cap the oldest of all; a new connection is never refused, so a
 * real client at a flooded address still gets through. Before the caps every held connection
 * stayed for the whole idle timeout (300 s by default). On the JS listener, the native accept,
 * and the native accept's wait for first bytes (a silent connection the addon holds before JS
 * hears of it; bounded there too).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it, test } from 'node:test';
import {
  addressKey,
  DEFAULT_MAX_PENDING,
  DEFAULT_MAX_PENDING_PER_ADDRESS,
  PendingLimits,
} from '../../src/server/pending-limits.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { builtinDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFrontOptions } from '../../src/server/web/front.js';
import { WebSocket } from 'ws';
import { echoEndpoint } from '../web/fixtures.js';
import { parseServerConfig } from '../../src/config/server.js';
import { startLadderServer } from '../helpers/peers.js';
import { runLadder } from '../helpers/ladder-run.js';
import { nativeAccept } from '../../src/transport/native-stream.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { sleep, waitFor } from '../helpers/wait.js';

const KEY = { id: 'k', method: 'aes-256-gcm', secret: 'pending-caps-pw' };

interface Held {
  readonly socket: net.Socket;
  fin: boolean;
  reset: boolean;
  bytesBack: number;
}

/** A connection from `from` that sends `first` (nothing: a silent one) and then just waits. */
async function hold(port: number, from: string, first: Buffer | undefined): Promise<Held> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: from, allowHalfOpen: true });
  const h: Held = { socket, fin: false, reset: false, bytesBack: 0 };
  socket.on('data', (d: Buffer) => (h.bytesBack += d.length));
  socket.on('end', () => {
    h.fin = true;
    socket.end();
  });
  socket.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'ECONNRESET' || e.code === 'EPIPE') h.reset = true;
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  if (first) socket.write(first);
  return h;
}

test('addressKey: IPv4 as is, IPv4-mapped as IPv4, IPv6 by its /64', () => {
  assert.equal(addressKey('203.0.113.9'), '203.0.113.9');
  assert.equal(addressKey('::ffff:203.0.113.9'), '203.0.113.9');
  assert.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:DB8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(addressKey('::1'), '0:0:0:0::/64');
  assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
});

test('PendingLimits: the oldest of the address, then the oldest of all, goes; removed ones never', () => {
  const gone: string[] = [];
  const p = new PendingLimits({ perAddress: 2, total: 3 });
  const a1 = p.add('10.0.0.1', () => gone.push('a1'));
  p.add('10.0.0.1', () => gone.push('a2'));
  a1.remove();
  p.add('10.0.0.1', () => gone.push('a3'));
  assert.equal(gone.length, 0, 'a1 left before the cap was reached');
  p.add('10.0.0.1', () => gone.push('a4'));
  assert.deepEqual(gone, ['a2'], 'the address over its cap: its oldest');
  p.add('10.0.0.2', () => gone.push('b1'));
  p.add('', () => gone.push('unknown'));
  assert.deepEqual(gone, ['a2', 'a3'], 'over the total: the oldest of all');
  assert.equal(p.size, 3);
  assert.equal(p.evicted, 2);
  assert.throws(() => new PendingLimits({ total: -1 }), /integer >= 0/);
  const none = new PendingLimits({ perAddress: 0, total: 0 });
  for (let i = 0; i < 1000; i++) none.add('10.0.0.1', () => assert.fail('no cap'));
});

const variants: [string, { nativeAccept: boolean; nativeHandshake?: boolean }, boolean][] = [
  ['JS listener', { nativeAccept: false }, true],
  ['native accept', { nativeAccept: true }, nativeAccept() !== undefined],
  [
    'native accept, no handshake wait',
    { nativeAccept: true, nativeHandshake: false },
    nativeAccept() !== undefined,
  ],
];

describe('caps on pending connections', () => {
  let echo: TestServer;
  const open: Held[] = [];
  const servers: ShadowsocksServer[] = [];
  before(async () => {
    echo = await startEcho();
  });
  after(async () => {
    for (const h of open) h.socket.destroy();
    for (const s of servers) await s.close();
    await echo.close();
  });

  async function start(opts: object, caps: { perAddress?: number; total?: number }): Promise<number> {
    const server = new ShadowsocksServer({
      keys: [KEY],
      allowPrivateDestinations: true,
      timeouts: { idleMs: 60_000 },
      pending: caps,
      ...opts,
    });
    servers.push(server);
    return (await server.listen({ port: 0, host: '127.0.0.1' })).port;
  }

  async function echoes(port: number): Promise<void> {
    const t = await openTestTunnel({
      port,
      host: '127.0.0.1',
      method: KEY.method,
      password: KEY.secret,
      target: { host: '127.0.0.1', port: echo.port },
      initial: Buffer.from('through'),
    });
    try {
      assert.equal((await t.read(7, 10_000)).toString(), 'through');
    } finally {
      t.destroy();
    }
  }

  for (const [name, opts, ok] of variants) {
    it(
      `${name}: per address, the oldest held connection gets the deadline's FIN; a real client still gets through`,
      {
        skip: skipUnless(ok, 'the native addon with acceptListen'),
      },
      async () => {
        const port = await start(opts, { perAddress: 4, total: 0 });
        const a: Held[] = [];
        for (let i = 0; i < 6; i++) {
          a.push(await hold(port, '127.0.0.1', randomBytes(100)));
          await sleep(30); // in order: the oldest is a[0]
        }
        // Another address is not touched by this one's cap.
        const b = [
          await hold(port, '127.0.0.2', randomBytes(100)),
          await hold(port, '127.0.0.2', randomBytes(100)),
        ];
        open.push(...a, ...b);
        await waitFor(() => a[0]!.fin && a[1]!.fin, { timeoutMs: 5000 });
        await sleep(200);
        for (const [i, h] of a.entries()) {
          assert.equal(h.bytesBack, 0, `a${i}: nothing written`);
          assert.equal(h.reset, false, `a${i}: a FIN, not a reset`);
          assert.equal(h.fin, i < 2, `a${i}: ${i < 2 ? 'evicted' : 'still held'}`);
        }
        assert.ok(
          b.every((h) => !h.fin && !h.reset),
          'the other address keeps its connections',
        );
        // The flooded address still connects: the real client's connection is never refused. On the
        // JS listener it counts from its accept (taking the place of the address's oldest held
        // one); the native accept counts only what is still pending after the first delivery,
        // which authenticates it.
        await echoes(port);
        await sleep(200);
        assert.ok(
          a.slice(3).every((h) => !h.fin),
          'at most the oldest went',
        );
      },
    );
  }

  for (const [name, opts, ok] of variants) {
    it(
      `${name}: silent connections count too, and the total cap takes the oldest of all`,
      {
        skip: skipUnless(ok, 'the native addon with acceptListen'),
      },
      async () => {
        const port = await start(opts, { perAddress: 0, total: 5 });
        const all: Held[] = [];
        for (let i = 0; i < 8; i++) {
          all.push(await hold(port, i % 2 === 0 ? '127.0.0.3' : '127.0.0.4', undefined));
          await sleep(30);
        }
        open.push(...all);
        // 8 silent connections, 5 at most pending: with the addon's wait list (up to the cap again)
        // in front of JS the first ones to go may come later, but by 2 x 5 at the latest.
        const extra: Held[] = [];
        for (let i = 0; i < 5; i++) {
          extra.push(await hold(port, '127.0.0.5', undefined));
          await sleep(30);
        }
        open.push(...extra);
        await waitFor(() => all[0]!.fin && all[1]!.fin && all[2]!.fin, { timeoutMs: 5000 });
        const closed = [...all, ...extra].map((h) => h.fin);
        const n = closed.filter(Boolean).length;
        assert.ok(n >= 3 && n <= 8, `closed ${n} of 13`);
        // Oldest first: every closed one is older than every open one.
        assert.equal(closed.indexOf(false), n, `oldest first: ${closed.join(',')}`);
        assert.ok([...all, ...extra].every((h) => !h.reset && h.bytesBack === 0));
        await echoes(port);
      },
    );
  }
});

describe('caps on the web front: connections not upgraded on the secret path', () => {
  const SECRET = '/pc-secret';
  const open: Held[] = [];
  const fronts: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const h of open) h.socket.destroy();
    for (const f of fronts) await f.close();
  });

  async function front(
    opts: Partial<WebFrontOptions>,
  ): Promise<{ port: number; seen: string[]; caps: PendingLimits | undefined }> {
    const seen: string[] = [];
    const endpoint = echoEndpoint(SECRET, seen);
    const f = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: SECRET,
      decoy: builtinDecoy({ seed: 'caps' }),
      onUpgrade: endpoint.onUpgrade,
      ...opts,
    });
    fronts.push({ close: async () => (endpoint.close(), await f.close()) });
    return { port: f.port, seen, caps: f.pending };
  }

  it('the oldest idle connection of an address goes; an upgraded WebSocket no longer counts', async () => {
    const { port, seen } = await front({ pending: { perAddress: 3 } });
    const ws = new WebSocket(`ws://127.0.0.1:${port}${SECRET}/tcp`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    let wsClosed = false;
    ws.on('close', () => (wsClosed = true));
    const idle: Held[] = [];
    for (let i = 0; i < 5; i++) {
      idle.push(await hold(port, '127.0.0.1', undefined));
      await sleep(30);
    }
    open.push(...idle);
    await waitFor(() => idle[0]!.fin && idle[1]!.fin, { timeoutMs: 5000 });
    await sleep(200);
    assert.deepEqual(
      idle.map((h) => h.fin),
      [true, true, false, false, false],
    );
    assert.ok(
      idle.every((h) => h.bytesBack === 0),
      'closed without a byte, as an idle connection is',
    );
    assert.equal(wsClosed, false, 'the WebSocket upgraded on the secret path is not pending');
    assert.equal(seen.length, 1);
    ws.terminate();
  });

  it('with trusted proxies no per-address cap (a CDN edge is many users) unless one is given', async () => {
    const proxied = await front({ trustProxy: ['127.0.0.0/8'] });
    const many: Held[] = [];
    for (let i = 0; i < 12; i++) many.push(await hold(proxied.port, '127.0.0.1', undefined));
    open.push(...many);
    const asked = await front({ trustProxy: ['127.0.0.0/8'], pending: { perAddress: 10 } });
    const capped: Held[] = [];
    for (let i = 0; i < 12; i++) capped.push(await hold(asked.port, '127.0.0.1', undefined));
    open.push(...capped);
    await waitFor(() => capped.filter((h) => h.fin).length === 2, { timeoutMs: 5000 });
    await sleep(200);
    assert.ok(
      many.every((h) => !h.fin),
      'no cap of its own behind a proxy',
    );
    assert.equal(proxied.caps?.perAddress, 0);
    assert.equal(proxied.caps?.total, DEFAULT_MAX_PENDING, 'the total cap stays');
    const direct = await front({});
    assert.equal(direct.caps?.perAddress, DEFAULT_MAX_PENDING_PER_ADDRESS);
    assert.equal((await front({ pending: false })).caps, undefined);
  });
});

describe('configuration: --max-pending-per-ip, --max-pending and the config file', () => {
  it('the CLI flag caps a running server (one worker): the oldest of the address gets FIN', async (t) => {
    const server = await startLadderServer({
      method: 'aes-256-gcm',
      password: 'pending-cli-pw',
      extraArgs: ['--max-pending-per-ip', '2', '--max-pending', '100', '--workers', '1'],
    });
    t.after(() => server.stop());
    const held: Held[] = [];
    t.after(() => held.forEach((h) => h.socket.destroy()));
    for (let i = 0; i < 4; i++) {
      held.push(await hold(server.port, '127.0.0.1', randomBytes(100)));
      await sleep(50);
    }
    await waitFor(() => held[0]!.fin && held[1]!.fin, { timeoutMs: 10_000 });
    await sleep(200);
    assert.deepEqual(
      held.map((h) => h.fin),
      [true, true, false, false],
    );
  });

  it('bad values are refused in one line; the config file takes maxPendingPerIp and maxPending', async () => {
    const r = await runLadder(['server', '--password', 'x', '--max-pending-per-ip', '-1']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--max-pending-per-ip/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    const key = { id: 'a', method: 'aes-256-gcm', password: 'p' };
    const c = parseServerConfig({ keys: [key], maxPendingPerIp: 0, maxPending: 50 });
    assert.deepEqual(c.pending, { perAddress: 0, total: 50 });
    assert.equal(parseServerConfig({ keys: [key] }).pending, undefined, 'unset: the defaults');
    assert.throws(() => parseServerConfig({ keys: [key], maxPending: -1 }), /maxPending.*at least 0/);
  });
});
