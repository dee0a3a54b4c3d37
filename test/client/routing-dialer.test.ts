import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { SocksAddress } from '../../src/protocol/socks5/address.js';
import { ManualClock, systemClock } from '../../src/shared/clock.js';
import { DirectDialer, type UpstreamDialError, type Dialer } from '../../src/transport/dialer.js';
import { RoutingDialer, type RouteEvent } from '../../src/client/routing-dialer.js';
import { Router } from '../../src/client/routing/router.js';
import { parseRuleList } from '../../src/client/routing/rules.js';

const HELLO = Buffer.from([0x16, 3, 1, 0, 4, 1, 0, 0, 0]);

let replying: net.Server;
let resetting: net.Server;
let port = (s: net.Server): number => (s.address() as net.AddressInfo).port;
let refusedPort: number;

const open = new Set<net.Socket>();
const track = (s: net.Socket): void => {
  open.add(s);
  s.on('error', () => {});
  s.once('close', () => open.delete(s));
};

before(async () => {
  replying = net.createServer((s) => {
    track(s);
    s.once('data', () => s.end('reply'));
  });
  resetting = net.createServer((s) => {
    track(s);
    s.on('error', () => {});
    s.once('data', () => s.resetAndDestroy());
  });
  await Promise.all([replying, resetting].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  const tmp = net.createServer();
  await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
  refusedPort = port(tmp);
  await new Promise<void>((r) => tmp.close(() => r()));
});
after(async () => {
  for (const s of open) s.destroy();
  await Promise.all([replying, resetting].map((s) => new Promise<void>((r) => s.close(() => r()))));
  port = () => 0;
});

const dest = (p: number, host = '127.0.0.1'): SocksAddress => ({ type: 'ipv4', host, port: p });

function fakeTunnel(log: SocksAddress[]): Dialer {
  const direct = new DirectDialer();
  return { dial: (d, f, s) => (log.push(d), direct.dial(dest(port(replying)), f, s)) };
}

test('proxy mode without rules goes straight to the tunnel, first data untouched', async () => {
  const seen: SocksAddress[] = [];
  const d = new RoutingDialer({
    router: new Router({ mode: 'proxy', clock: systemClock }),
    tunnel: fakeTunnel(seen),
  });
  const c = await d.dial({ type: 'domain', host: 'x.example', port: 443 }, HELLO);
  c.socket.destroy();
  assert.deepEqual(seen, [{ type: 'domain', host: 'x.example', port: 443 }]);
});

test('auto: the held reply is put back for the application', async () => {
  const events: RouteEvent[] = [];
  const d = new RoutingDialer({
    router: new Router({ mode: 'auto', clock: systemClock }),
    tunnel: fakeTunnel([]),
    onRoute: (e) => events.push(e),
  });
  const c = await d.dial(dest(port(replying)), HELLO);
  const got: Buffer[] = [];
  c.socket.on('data', (b: Buffer) => got.push(b));
  c.socket.resume();
  await new Promise((r) => c.socket.once('end', r));
  assert.equal(Buffer.concat(got).toString(), 'reply');
  assert.deepEqual(events, [{ route: 'direct', outcome: 'ok' }]);
});

test('auto: ECONNREFUSED is the site itself: no escalation, the error is passed on', async () => {
  const seen: SocksAddress[] = [];
  const router = new Router({ mode: 'auto', clock: systemClock });
  const d = new RoutingDialer({ router, tunnel: fakeTunnel(seen) });
  await assert.rejects(d.dial(dest(refusedPort), HELLO), (e: UpstreamDialError) => e.code === 'ERR_CONNECT');
  assert.equal(seen.length, 0);
  assert.equal(router.decide('127.0.0.1').route, 'direct');
});

test('auto: a reset after the ClientHello goes to fragment; with fragment also reset, to the tunnel', async () => {
  const seen: SocksAddress[] = [];
  const events: RouteEvent[] = [];
  const clock = new ManualClock();
  const router = new Router({ mode: 'auto', clock });
  const toResetting: Dialer = { dial: (_d, f, s) => new DirectDialer().dial(dest(port(resetting)), f, s) };
  const d = new RoutingDialer({
    router,
    tunnel: fakeTunnel(seen),
    direct: toResetting,
    fragment: toResetting,
    clock,
    onRoute: (e) => events.push(e),
  });
  const c = await d.dial(dest(443, '192.0.2.1'), HELLO);
  c.socket.destroy();
  assert.deepEqual(
    events.map((e) => [e.route, e.outcome, e.kind, e.retry]),
    [
      ['direct', 'failed', 'reset-after-clienthello', 'fragment'],
      ['fragment', 'failed', 'reset-after-clienthello', 'proxy'],
      ['proxy', 'ok', undefined, undefined],
    ],
  );
  assert.equal(seen.length, 1);
  assert.deepEqual(router.decide('192.0.2.1'), {
    route: 'proxy',
    source: 'learned',
    reason: 'reset-after-clienthello',
  });
  // The learned route expires (30 min): direct is tried again.
  clock.advance(30 * 60_000 + 1);
  assert.equal(router.decide('192.0.2.1').route, 'direct');
});

test('rules: a direct rule in proxy mode dials direct; a lookup error is reported, NXDOMAIN not escalated', async () => {
  const seen: SocksAddress[] = [];
  const directSeen: SocksAddress[] = [];
  const rules = parseRuleList('domain-suffix,home.example,direct\n', 'r');
  const direct: Dialer = {
    dial: (d, f, s) => (directSeen.push(d), new DirectDialer().dial(dest(port(replying)), f, s)),
  };
  const d1 = new RoutingDialer({
    router: new Router({ mode: 'proxy', rules, clock: systemClock }),
    tunnel: fakeTunnel(seen),
    direct,
    lookup: async () => ({ address: '127.0.0.9' }),
  });
  (await d1.dial({ type: 'domain', host: 'nas.home.example', port: 80 }, HELLO)).socket.destroy();
  assert.deepEqual(directSeen, [{ type: 'ipv4', host: '127.0.0.9', port: 80 }]);
  assert.equal(seen.length, 0);

  const d2 = new RoutingDialer({
    router: new Router({ mode: 'auto', clock: systemClock }),
    tunnel: fakeTunnel(seen),
    direct,
    lookup: async () => ({ error: 'NXDOMAIN' }),
  });
  await assert.rejects(d2.dial({ type: 'domain', host: 'typo.example', port: 80 }, HELLO), /NXDOMAIN/);
  assert.equal(seen.length, 0);

  const d3 = new RoutingDialer({
    router: new Router({ mode: 'auto', clock: systemClock }),
    tunnel: fakeTunnel(seen),
    direct,
    lookup: async () => ({ error: 'SERVFAIL' }),
  });
  (await d3.dial({ type: 'domain', host: 'dns-blocked.example', port: 80 }, HELLO)).socket.destroy();
  assert.deepEqual(
    seen.map((s) => s.host),
    ['dns-blocked.example'],
    'no answer at all: through the tunnel, by name',
  );
});

test('auto: an abort while holding destroys the attempt and does not escalate', async () => {
  const silent = net.createServer((s) => {
    track(s);
    s.resume();
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const seen: SocksAddress[] = [];
  const router = new Router({ mode: 'auto', clock: systemClock });
  const d = new RoutingDialer({ router, tunnel: fakeTunnel(seen), probeTimeoutMs: 10_000 });
  const ac = new AbortController();
  const p = d.dial(dest(port(silent)), HELLO, ac.signal);
  setTimeout(() => ac.abort(), 100);
  await assert.rejects(p, (e: UpstreamDialError) => e.code === 'ERR_ABORTED');
  assert.equal(seen.length, 0);
  assert.equal(router.decide('127.0.0.1').route, 'direct');
  for (const s of open) s.destroy();
  await new Promise<void>((r) => silent.close(() => r()));
});
