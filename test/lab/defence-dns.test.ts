/**
 * D11 in the lab, with DNS injection on (profile lab-det: C2 injects a forged A/AAAA for
 * *.blocked.lab on UDP/53 at the path resolver; the genuine answer follows 50 ms later).
 *
 * The shipped client (`startClient`) runs with `dns: { listen, mode: 'tunnel' }`: its DNS
 * forwarder (TunnelDnsResolver) sends each query as DNS over TCP through the Ladder tunnel, whose
 * server sits behind the censor path, to the lab's genuine resolver (ZoneServer, reachable from
 * the remote side on TCP). The tunnel dialer is the one startClient builds for the key
 * (`createTunnelDialer`), wrapped only to record every destination the client dials.
 *
 *  - The client's DNS answers blocked names correctly (A = the site, TXT = the zone's text,
 *    AAAA empty), none from the forged pool.
 *  - At the censor path: zero port-53 packets from the client, zero C2 decisions; the queries
 *    travelled inside tunnel flows (logical port 8388).
 *  - Every destination the client dialled: the DNS upstream (by address) and, for the
 *    application's request, the domain itself (socks5h semantics): the client never resolves a
 *    proxied name locally, so it has no forged address to connect to.
 *  - Stub mode (plain DNS through the path, FilteringUdpResolver): the forged first answer is
 *    dropped and the late genuine one returned.
 *  - Negative control: a plain resolver through the censor path takes the forged address.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dnsQuery, socksConnect } from '../../src/lab/client-ops.js';
import { ADDR, BLOCKED_NAME, OPEN_NAME } from '../../src/lab/world.js';
import { createTunnelDialer, startClient } from '../../src/client/index.js';
import { startDataPlane } from '../../src/server/index.js';
import type { SocksAddress } from '../../src/protocol/socks5/address.js';
import type { Dialer } from '../../src/transport/dialer.js';
import { startWorld } from './helpers.js';
import { waitFor } from '../helpers/wait.js';

const METHOD = 'chacha20-ietf-poly1305';
const PASSWORD = 'lab-dns-password';

test('D11: with C2 injection on, the client resolves blocked names through the tunnel (no port-53 packet at the path, no forged address); plain DNS through the path gets the forged one (control)', async () => {
  const w = await startWorld('lab-det');
  const plane = await startDataPlane({
    port: 0,
    host: '127.0.0.1',
    keys: [{ id: 'lab', method: METHOD, secret: PASSWORD }],
    allowPrivateDestinations: true,
  });
  const dialled: SocksAddress[] = [];
  try {
    const front = await w.addRemoteHost(
      { host: '127.0.0.1', port: plane.address.port },
      { logicalPort: 8388 },
    );
    const inner = createTunnelDialer({
      host: front.tcp.host,
      port: front.tcp.port,
      method: METHOD,
      password: PASSWORD,
    });
    const recording: Dialer = {
      dial: (dest, first, signal) => {
        dialled.push(dest);
        return inner.dial(dest, first, signal);
      },
    };
    const client = await startClient({
      socks: { host: '127.0.0.1', port: 0 },
      dialer: recording,
      dns: { listen: '127.0.0.1:0', mode: 'tunnel', upstream: w.zone.tcpAddress },
    });
    try {
      const local = { host: client.dnsAddress!.host, port: client.dnsAddress!.udpPort };
      const ask = (name: string, type: 'A' | 'AAAA' | 'TXT') =>
        dnsQuery(local, name, type, { clock: w.clock, timeoutMs: 20_000, minRealMs: 1_000, collectMs: 150 });
      const a = await ask(BLOCKED_NAME, 'A');
      assert.deepEqual(a.replies, [[{ type: 'A', data: ADDR.blockedSite }]], 'one genuine A answer');
      const txt = await ask(BLOCKED_NAME, 'TXT');
      assert.deepEqual(txt.replies, [[{ type: 'TXT', data: 'lab blocked site' }]]);
      const aaaa = await ask(BLOCKED_NAME, 'AAAA');
      assert.deepEqual(aaaa.replies, [[]], 'no AAAA exists: an empty answer, not a forged one');
      const open = await ask(OPEN_NAME, 'A');
      assert.deepEqual(open.replies, [[{ type: 'A', data: ADDR.openSite }]]);
      for (const r of [a, txt, aaaa, open])
        for (const rr of r.replies.flat()) assert.ok(!w.censor.isForgedAddress(rr.data), rr.data);

      // The application's request for the blocked name goes out by name through the tunnel. It
      // sends its first bytes (a browser's ClientHello would): the client dials when the
      // application has spoken or its first-data wait is over, not for one that hangs up first.
      const s = await socksConnect(
        { host: '127.0.0.1', port: client.socksAddress!.port },
        { host: BLOCKED_NAME, port: 443 },
      ).catch(() => undefined);
      s?.write(Buffer.from([0x16, 0x03, 0x01]));
      await waitFor(() => dialled.some((d) => d.type === 'domain' && d.host === BLOCKED_NAME), {
        timeoutMs: 10_000,
        message: () => `dials so far: ${dialled.map((d) => `${d.type} ${d.host}`).join(', ')}`,
      }).catch(() => undefined); // asserted below
      s?.destroy();

      // At the censor path: nothing on port 53, no C2 decision; DNS rode tunnel flows.
      const port53 = w.log.records.filter((d) => d.flow && (d.flow.sPort === 53 || d.flow.proto === 'udp'));
      assert.equal(port53.length, 0, 'zero port-53 packets from the client at the path');
      assert.equal(w.log.filter({ behaviour: 'C2' }).length, 0);
      const tunnelFlows = w.log.records.filter(
        (d) => d.behaviour === 'C6' && d.flow?.sIP === front.logical.host && d.flow.sPort === 8388,
      );
      assert.ok(tunnelFlows.length >= 1, 'queries travelled in tunnel flows');
      assert.equal(tunnelFlows.filter((d) => d.action !== 'PASS').length, 0, 'shaped tunnel flows pass C6');
      assert.equal(w.zone.answered.udp, 0);
      assert.ok(w.zone.answered.tcp >= 4, `zone answered ${w.zone.answered.tcp} queries over TCP`);

      // Every destination the client dialled: the upstream resolver by address, the app's by name.
      assert.ok(dialled.length >= 2);
      for (const d of dialled) assert.ok(!w.censor.isForgedAddress(d.host), `dialled ${d.host}`);
      assert.ok(dialled.some((d) => d.host === w.zone.tcpAddress.host && d.port === w.zone.tcpAddress.port));
      assert.ok(
        dialled.some((d) => d.type === 'domain' && d.host === BLOCKED_NAME),
        'the name went unresolved',
      );
      console.log(
        `# D11 tunnel forwarder: 4 names answered genuinely, ${tunnelFlows.length} tunnel flow(s), 0 port-53 packets at the path, ` +
          `${dialled.length} dials (${dialled.map((d) => d.type).join(', ')})`,
      );
    } finally {
      await client.close();
    }

    // Stub mode: plain UDP through the path; the forged first answer is dropped.
    const stub = await startClient({
      socks: { host: '127.0.0.1', port: 0 },
      dialer: recording,
      dns: { listen: '127.0.0.1:0', mode: 'stub', upstream: w.resolver },
    });
    try {
      const local = { host: stub.dnsAddress!.host, port: stub.dnsAddress!.udpPort };
      const r = await dnsQuery(local, BLOCKED_NAME, 'A', {
        clock: w.clock,
        timeoutMs: 20_000,
        minRealMs: 1_500,
        collectMs: 1_000,
      });
      assert.deepEqual(r.replies, [[{ type: 'A', data: ADDR.blockedSite }]], 'stub: the late genuine answer');
      assert.equal(w.log.filter({ behaviour: 'C2', action: 'INJECT' }).length, 1, 'the injector did fire');
    } finally {
      await stub.close();
    }

    // Negative control: plain DNS through the path, first answer wins -> forged.
    const plain = await dnsQuery(w.resolver, BLOCKED_NAME, 'A', {
      clock: w.clock,
      timeoutMs: 5_000,
      localAddress: '127.0.0.1',
      collectMs: 1_000,
    });
    const first = plain.first?.[0]?.data ?? '';
    assert.ok(w.censor.isForgedAddress(first), `plain resolver's first answer ${first} is forged`);
    assert.equal(w.log.filter({ behaviour: 'C2', action: 'INJECT' }).length, 2);
    console.log(`# D11 control: plain DNS through the path answered ${first} first (forged pool)`);
  } finally {
    await plane.close();
    await w.stop();
  }
});
