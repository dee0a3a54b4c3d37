/**
 * How many times one short connection through the client's SOCKS5 front enters JavaScript: the
 * addon's calls into JS (the front's onConn, tcpConnect's onDone, the relay's onFirst and
 * onClose, tunnelConnect's onFail), counted by wrapping them, in-process, against ss-server
 * (aes-256-gcm): 300 connections of SOCKS5 CONNECT, 32 bytes, echo, close.
 *
 *   node --import tsx bench/client-js-entries.ts          # tunnels set up in the addon
 *   LADDER_NATIVE_TUNNEL=0 node --import tsx bench/client-js-entries.ts   # the dial path
 */
import net from 'node:net';
import { nativeSocksFront } from '../src/transport/native-sockets.js';
import { NativeSocks, nativeTunnelFromEnv } from '../src/client/native-socks.js';
import { AnswerWatchDialer } from '../src/client/answer-watch.js';
import { createTunnelDialer } from '../src/client/index.js';
import { endpointFromKey } from '../src/client/key.js';
import { silentLogger } from '../src/shared/logger.js';
import { startUpstream } from '../test/helpers/client-upstream.js';
import { serve } from '../test/helpers/net.js';
import { socks5Connect } from '../test/helpers/socks5.js';
type F = (...x: unknown[]) => unknown;
const a = nativeSocksFront() as unknown as Record<string, F>;
const counts: Record<string, number> = {};
const wrapCb = (name: string, f: unknown): unknown =>
  typeof f === 'function'
    ? (...x: unknown[]) => ((counts[name] = (counts[name] ?? 0) + 1), (f as F)(...x))
    : f;
const over: Record<string, F> = {
  socks5Front: (fd, w, h, cb, lean) => a.socks5Front!(fd, w, h, wrapCb('front.onConn', cb), lean),
  tcpConnect: (ip, port, cb) => a.tcpConnect!(ip, port, wrapCb('tcpConnect.onDone', cb)),
  tunnelConnect: (ip, port, t, _rp, args, cb) => {
    const arr = args as unknown[];
    arr[6] = wrapCb('relay.onClose', arr[6]);
    arr[8] = wrapCb('relay.onFirst', arr[8]);
    return a.tunnelConnect!(ip, port, t, a.relayPair, args, wrapCb('tunnel.onFail', cb));
  },
  relayPair: (...x: unknown[]) => {
    x[6] = wrapCb('relay.onClose', x[6]);
    x[8] = wrapCb('relay.onFirst', x[8]);
    return a.relayPair!(...x);
  },
};
const fns = { ...a, ...over } as never;
const up = await startUpstream('ss-server', 'entries-pw');
const echo = await serve((s) => s.pipe(s));
const dialer = new AnswerWatchDialer(createTunnelDialer(endpointFromKey(up.url, 'local')), {
  log: silentLogger,
});
const srv = net.createServer();
await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
const port = (srv.address() as net.AddressInfo).port;
const front = new NativeSocks(
  fns,
  {
    dialer,
    firstDataWaitMs: 50,
    idleTimeoutMs: 60_000,
    log: silentLogger,
    track: () => {},
    host: '127.0.0.1',
    port,
  },
  nativeTunnelFromEnv(),
);
if (!front.adopt(srv)) throw new Error('no front');
const N = 300;
for (let i = 0; i < N; i++) {
  const s = await socks5Connect({ proxyPort: port, host: '127.0.0.1', port: echo.port });
  const got = new Promise((r) => s.once('data', r));
  s.resume();
  s.write('x'.repeat(32));
  await got;
  s.end();
  await new Promise((r) => s.once('close', r));
}
await new Promise((r) => setTimeout(r, 300));
const total = Object.values(counts).reduce((x, y) => x + y, 0);
console.log(
  !nativeTunnelFromEnv() ? 'dial path  ' : 'addon setup',
  JSON.stringify(Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / N]))),
  'total per connection',
  total / N,
  'tunnelled',
  front.tunnelled,
);
front.close();
await up.close();
await echo.close();
