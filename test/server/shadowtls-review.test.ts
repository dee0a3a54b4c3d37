/**
 * Review findings on the ShadowTLS v3 port (src/server/shadowtls/) and its client
 * (src/transport/shadowtls-dialer.ts), each with real sockets on loopback:
 *
 *  - a prober must see the same way of closing (RST or FIN) through the port as from the
 *    handshake site directly: a site that resets is a reset through the port too;
 *  - connections not yet switched count against the pending-connection caps, as on the other
 *    listeners: over the cap the oldest goes;
 *  - a genuine client's hello sent again (a censor's replay) is answered as the site would, not
 *    with tagged records (4 bytes longer than the site's);
 *  - a ClientHello trickled one byte at a time costs linear copying;
 *  - malformed and foreign first records get the reaction class (DATA, RST, FIN, TIMEOUT) the
 *    site gives them directly (a check that holds: no fix needed).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server as HttpsServer } from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { makeLabCertificates } from '../../src/lab/lab-ca.js';
import { listenShadowTls, type ShadowTlsListener } from '../../src/server/shadowtls/listener.js';
import { silentLogger } from '../../src/shared/logger.js';
import {
  HandshakeUntagger,
  RecordReader,
  TYPE_APPLICATION_DATA,
  serverRandomOf,
  signClientHello,
} from '../../src/protocol/shadowtls/index.js';
import { SeenHellos } from '../../src/server/shadowtls/replay.js';
import { captureClientHello } from '../helpers/shadowtls-client.js';

type Reaction = 'DATA' | 'RST' | 'FIN' | 'TIMEOUT';

/** C7's classification of what `port` does with `probe`: the first of data, a reset, a FIN, or nothing in `waitMs`. */
function reactionTo(port: number, probe: Buffer, waitMs = 3000, fin = false): Promise<Reaction> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const done = (r: Reaction): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done('TIMEOUT'), waitMs);
    s.on('data', () => done('DATA'));
    s.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNRESET' ? 'RST' : 'FIN'));
    s.on('end', () => done('FIN'));
    s.on('close', () => done('FIN'));
    if (probe.length > 0) s.write(probe);
    if (fin) s.end();
  });
}

const listeners: ShadowTlsListener[] = [];
const servers: net.Server[] = [];

async function front(
  handshakePort: number,
  extra: { pending?: { perAddress?: number; total?: number } } = {},
  onStream: (s: Duplex) => void = (s) => s.destroy(),
): Promise<ShadowTlsListener> {
  const l = await listenShadowTls({
    port: 0,
    host: '127.0.0.1',
    handshake: { host: '127.0.0.1', port: handshakePort },
    passwords: ['review-pw'],
    idleMs: 10_000,
    logger: silentLogger,
    onStream,
    ...extra,
  });
  listeners.push(l);
  return l;
}

async function tcpSite(handler: (s: net.Socket) => void): Promise<number> {
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    handler(s);
  });
  servers.push(srv);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return (srv.address() as net.AddressInfo).port;
}

after(async () => {
  await Promise.all(listeners.map((l) => l.close()));
  for (const s of servers) s.close();
});

describe('ShadowTLS port: the way a connection closes is the site’s', () => {
  it('a site that resets on a probe is a reset through the port too (not a FIN)', async () => {
    const site = await tcpSite((s) => s.once('data', () => s.resetAndDestroy()));
    const l = await front(site);
    const probe = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(await reactionTo(site, probe), 'RST', 'the site directly');
    assert.equal(await reactionTo(l.address.port, probe), 'RST', 'through the ShadowTLS port');
    const hello = Buffer.concat([Buffer.from([22, 3, 1, 0, 64]), randomBytes(64)]);
    assert.equal(await reactionTo(l.address.port, hello), 'RST', 'a TLS record that is no hello of ours');
  });

  it('a site that resets at once: a reset through the port', async () => {
    const site = await tcpSite((s) => s.resetAndDestroy());
    const l = await front(site);
    assert.equal(await reactionTo(site, Buffer.from('x')), 'RST', 'the site directly');
    assert.equal(await reactionTo(l.address.port, Buffer.from('x')), 'RST', 'through the ShadowTLS port');
  });

  it('a site that closes with a FIN: a FIN through the port', async () => {
    const site = await tcpSite((s) => s.once('data', () => s.end('bye')));
    const l = await front(site);
    const probe = Buffer.from('hello\r\n');
    assert.equal(await reactionTo(l.address.port, probe), 'DATA');
    const closed = await new Promise<string>((resolve) => {
      const s = net.connect(l.address.port, '127.0.0.1');
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      s.on('end', () => resolve('FIN'));
      s.resume();
      s.write(probe);
    });
    assert.equal(closed, 'FIN');
  });
});

describe('ShadowTLS port: connections not switched count against the pending caps', () => {
  it('over the per-address cap the oldest held connection is closed; the newest stay', async () => {
    const held: net.Socket[] = [];
    const site = await tcpSite((s) => held.push(s)); // a site that never answers
    const l = await front(site, { pending: { perAddress: 3, total: 0 } });
    const closed: number[] = [];
    const conns: net.Socket[] = [];
    for (let i = 0; i < 5; i++) {
      const c = net.connect(l.address.port, '127.0.0.1');
      c.on('error', () => {});
      c.on('close', () => closed.push(i));
      await once(c, 'connect');
      conns.push(c);
      await new Promise((r) => setTimeout(r, 30));
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(closed.sort(), [0, 1], 'the two oldest went');
    for (const c of conns) c.destroy();
    for (const s of held) s.destroy();
  });

  it('by default the listener has caps (as the other listeners)', async () => {
    const { DEFAULT_MAX_PENDING_PER_ADDRESS } = await import('../../src/server/pending-limits.js');
    const site = await tcpSite(() => {});
    const l = await front(site);
    assert.equal(l.pending?.perAddress, DEFAULT_MAX_PENDING_PER_ADDRESS);
  });
});

describe('ShadowTLS port: a genuine hello sent again (a replay)', () => {
  let site: HttpsServer;
  let hello: Buffer;
  before(async () => {
    const certs = await makeLabCertificates(['replay.lab']);
    site = createServer({ cert: certs.cert, key: certs.key, minVersion: 'TLSv1.3' }, (_q, res) =>
      res.end('page'),
    );
    site.listen(0, '127.0.0.1');
    await once(site, 'listening');
    hello = await captureClientHello('replay.lab');
    signClientHello(hello.subarray(5), 'review-pw');
  });
  after(() => {
    site.closeAllConnections();
    site.close();
  });

  /** Send `record`; whether the first application-data record that comes back carries the tag. */
  function tagged(port: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      const reader = new RecordReader();
      let untagger: HandshakeUntagger | undefined;
      s.on('error', reject);
      s.on('close', () => reject(new Error('closed before application data')));
      s.on('data', (c: Buffer) => {
        reader.push(c);
        for (let rec = reader.next(); rec; rec = reader.next()) {
          const sr = untagger ? undefined : serverRandomOf(rec);
          if (sr) untagger = new HandshakeUntagger('review-pw', sr);
          if (rec[0] !== TYPE_APPLICATION_DATA) continue;
          s.removeAllListeners('close');
          s.destroy();
          resolve(untagger!.untag(rec) !== undefined);
          return;
        }
      });
      s.write(hello);
    });
  }

  it('the first time the site’s records come tagged; the replay gets them as the site sends them', async () => {
    const l = await front((site.address() as net.AddressInfo).port);
    assert.equal(await tagged(l.address.port), true, 'the genuine hello');
    assert.equal(await tagged(l.address.port), false, 'the same hello again');
    assert.equal(l.counts.relayed, 1);
  });

  it('malformed and foreign first records, with and without a FIN: the reaction class the site gives directly', async () => {
    const sitePort = (site.address() as net.AddressInfo).port;
    const l = await front(sitePort);
    const unsigned = await captureClientHello('replay.lab');
    const probes: [string, Buffer][] = [
      ['nothing', Buffer.alloc(0)],
      ['one byte 0x16', Buffer.of(22)],
      ['a record of length 0', Buffer.of(22, 3, 1, 0, 0)],
      ['a header announcing 65535 bytes', Buffer.concat([Buffer.of(22, 3, 1, 0xff, 0xff), randomBytes(100)])],
      ['a record of 2^14 + 1 bytes', Buffer.concat([Buffer.of(22, 3, 1, 0x40, 1), randomBytes(0x4001)])],
      ['a truncated hello', unsigned.subarray(0, 100)],
      ['an unsigned hello', unsigned],
      ['HTTP', Buffer.from('GET / HTTP/1.1\r\nHost: replay.lab\r\n\r\n')],
      ['221 random bytes', randomBytes(221)],
      ['an alert record', Buffer.of(21, 3, 3, 0, 2, 2, 40)],
      ['an application-data record', Buffer.concat([Buffer.of(23, 3, 3, 0, 30), randomBytes(30)])],
    ];
    for (const [name, probe] of probes) {
      for (const fin of [false, true]) {
        const direct = await reactionTo(sitePort, probe, 800, fin);
        assert.equal(
          await reactionTo(l.address.port, probe, 800, fin),
          direct,
          `${name}${fin ? ' then FIN' : ''}`,
        );
      }
    }
  });

  it('SeenHellos keeps at least one window, two generations at the most', () => {
    const seen = new SeenHellos(1000, 3, 0);
    const h = (i: number): Buffer => {
      const r = Buffer.alloc(5 + 39 + 32);
      r.fill(i, 5 + 39);
      return r;
    };
    assert.equal(seen.replayed(h(1), 0), false);
    assert.equal(seen.replayed(h(1), 999), true);
    assert.equal(seen.replayed(h(2), 1000), false); // a new generation: 1 is in the previous one
    assert.equal(seen.replayed(h(1), 1500), true);
    assert.equal(seen.replayed(h(3), 2000), false); // 1 is forgotten now
    assert.equal(seen.replayed(h(1), 2001), false);
  });
});

describe('ShadowTLS records: a hello trickled one byte at a time', () => {
  it('costs copying linear in its size (RecordReader), not a copy of all held bytes per byte', () => {
    const record = Buffer.concat([Buffer.from([22, 3, 1, 0x40, 0]), randomBytes(0x4000)]);
    const reader = new RecordReader(0x4000);
    const concat = Buffer.concat;
    let copied = 0;
    Buffer.concat = ((list: readonly Uint8Array[], total?: number) => {
      const out = concat(list, total);
      copied += out.length;
      return out;
    }) as typeof Buffer.concat;
    let got: Buffer | undefined;
    try {
      for (let i = 0; i < record.length && !got; i++) {
        reader.push(record.subarray(i, i + 1));
        reader.peek(Math.min(reader.pending, 5)); // as the port's hello step does
        got = reader.next();
      }
    } finally {
      Buffer.concat = concat;
    }
    assert.ok(got?.equals(record));
    assert.ok(copied < 4 * record.length, `${copied} bytes copied for a ${record.length}-byte record`);
  });
});
