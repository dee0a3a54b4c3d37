/**
 * A block route (`block`, or Clash's REJECT) answers the application at once and dials nothing:
 * SOCKS5 reply 2 ("connection not allowed by ruleset"), HTTP 403 for CONNECT and http:// URLs.
 * Control: a destination the rules do not block goes through the tunnel (a real Ladder data plane
 * and an echo server on loopback), and no connection reaches the server for a blocked one.
 * Each connection evaluates the rules once: the inbound's block check decides the route the
 * dial then takes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startClient } from '../../src/client/index.js';
import { endpointFromKey } from '../../src/client/key.js';
import { parseRuleList } from '../../src/client/routing/rules.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { startDataPlane } from '../../src/server/index.js';
import { startEcho } from '../helpers/net.js';
import { socks5Connect, Socks5Error } from '../helpers/socks5.js';

const SECRET = 'block-route-secret';

/** The status line an HTTP proxy answers `CONNECT target`. */
function connectStatus(proxyPort: number, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, method: 'CONNECT', path: target });
    req.on('connect', (res, socket) => {
      socket.destroy();
      resolve(`${res.statusCode}`);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Status and body of GET `url` through the HTTP proxy. */
function proxiedGet(proxyPort: number, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: proxyPort, path: url }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

for (const nativeSocks of [true, false]) {
  test(`block route: SOCKS5 reply 2, HTTP 403, nothing dialled; the rest tunnelled (native SOCKS5 front asked: ${nativeSocks})`, async (t) => {
    const plane = await startDataPlane({
      keys: [{ id: 'k', method: 'aes-256-gcm', secret: SECRET }],
      port: 0,
      host: '127.0.0.1',
      allowPrivateDestinations: true,
    });
    // A counting forwarder in front of the server: how many connections the client made.
    let serverConnections = 0;
    const open = new Set<net.Socket>();
    const counter = net.createServer((app) => {
      serverConnections++;
      open.add(app);
      app.once('close', () => open.delete(app));
      const up = net.connect(plane.address.port, '127.0.0.1');
      app.on('error', () => up.destroy());
      up.on('error', () => app.destroy());
      app.pipe(up).pipe(app);
    });
    await new Promise<void>((r) => counter.listen(0, '127.0.0.1', r));
    const echo = await startEcho();
    const key = formatSsUrl({
      method: 'aes-256-gcm',
      password: SECRET,
      host: '127.0.0.1',
      port: (counter.address() as net.AddressInfo).port,
    });
    const rules = parseRuleList('domain-suffix,ads.example,block\ndomain,track.example,REJECT\n', 'my.rules');
    // How many times the rules are evaluated (Router.decide asks matchRule once a decision).
    let evaluated = 0;
    const matchRule = rules.matchRule.bind(rules);
    rules.matchRule = (host) => (evaluated++, matchRule(host));
    const once = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
      const before = evaluated;
      const r = await run();
      assert.equal(evaluated - before, 1, `${what}: the rules evaluated once`);
      return r;
    };
    const client = await startClient({
      keys: [endpointFromKey(key, 'local')],
      socks: { host: '127.0.0.1', port: 0 },
      http: { host: '127.0.0.1', port: 0 },
      rules,
      nativeSocks,
    });
    // Closed in this order: the client, the forwarder's connections, then the server.
    t.after(async () => {
      await client.close();
      for (const c of open) c.destroy();
      counter.close();
      await echo.close();
      await plane.close();
    });
    const socksPort = client.socksAddress!.port;
    const httpPort = client.httpAddress!.port;

    for (const host of ['x.ads.example', 'track.example']) {
      const err = await once(host, () => socks5Connect({ proxyPort: socksPort, host, port: 443 })).then(
        (s) => {
          s.destroy();
          return assert.fail(`${host}: SOCKS5 CONNECT succeeded`);
        },
        (e: unknown) => e,
      );
      assert.ok(err instanceof Socks5Error && err.reply === 2, `${host}: ${String(err)}`);
    }
    assert.equal(await once('CONNECT', () => connectStatus(httpPort, 'ads.example:443')), '403');
    const get = await once('GET', () => proxiedGet(httpPort, 'http://ads.example/x'));
    assert.equal(get.status, 403);
    assert.match(get.body, /blocked by the proxy rules/);
    assert.equal(serverConnections, 0, 'nothing dialled for blocked destinations');

    // Control: an unblocked destination is tunnelled.
    const before = evaluated;
    const s = await socks5Connect({
      proxyPort: socksPort,
      host: '127.0.0.1',
      port: echo.port,
      earlyData: Buffer.from('ping'),
    });
    const got = new Promise<string>((r) => s.once('data', (d: Buffer) => r(d.toString())));
    s.resume();
    assert.equal(await got, 'ping');
    s.destroy();
    assert.ok(serverConnections >= 1);
    assert.equal(evaluated - before, 1, 'a tunnelled connection: the rules evaluated once');
    // The same through the HTTP proxy's CONNECT.
    const before2 = evaluated;
    assert.equal(await connectStatus(httpPort, `127.0.0.1:${echo.port}`), '200');
    assert.equal(evaluated - before2, 1, 'HTTP CONNECT: the rules evaluated once');
  });
}
