/**
 * `route: 'auto'` and rules, wired into the client (src/client/routing-dialer.ts): against a local
 * stand-in for an SNI-filtering censor on the direct path, open sites go direct, blocked ones are
 * retried inside the client by TLS-record fragmentation or the tunnel, and no application request
 * fails even once. Also: the PAC file served by the HTTP inbound, and names of proxied
 * destinations never resolved by the client.
 *
 * The "direct path" is modelled by the client's direct and fragment dialers connecting to a
 * per-site censor proxy (loopback has no path to put a censor on); the tunnel goes to the real
 * Ladder server, which reaches the sites without the censor.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import dns from 'node:dns';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import vm from 'node:vm';
import dnsPacket from 'dns-packet';
import {
  createTunnelDialer,
  endpointFromKey,
  startClient,
  type LocalClient,
} from '../../src/client/index.js';
import type { RouteEvent } from '../../src/client/routing-dialer.js';
import { parseRuleList } from '../../src/client/routing/rules.js';
import {
  parseClientHelloMessage,
  readRecordHeader,
  RECORD_HEADER,
} from '../../src/protocol/tls/clienthello.js';
import type { SocksAddress } from '../../src/protocol/socks5/address.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { startDataPlane, type DataPlane } from '../../src/server/index.js';
import { DirectDialer, type Dialer, type FirstData } from '../../src/transport/dialer.js';
import { FragmentDialer } from '../../src/transport/tls-fragment.js';
import { readExactly } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks5.js';

const PASSWORD = `route-${randomBytes(6).toString('hex')}`;
const BLOCKED = ['blocked.example', 'hard.example'];

/** A real ClientHello for `servername`, as Node's TLS client writes it. */
async function clientHello(servername: string): Promise<Buffer> {
  const srv = net.createServer();
  const got = new Promise<Buffer>((resolve) =>
    srv.once('connection', (s) =>
      s.once('data', (d: Buffer) => {
        resolve(d);
        s.destroy();
      }),
    ),
  );
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const t = tls.connect({
    host: '127.0.0.1',
    port: (srv.address() as net.AddressInfo).port,
    servername,
    rejectUnauthorized: false,
  });
  t.on('error', () => {});
  const hello = await got;
  t.destroy();
  await new Promise<void>((r) => srv.close(() => r()));
  return hello;
}

/** A "site": answers its first bytes with `SITE <name>` and then echoes. */
async function startSite(host: string, name: string): Promise<{ port: number; close(): Promise<void> }> {
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    socks.add(s);
    s.on('error', () => {});
    s.once('close', () => socks.delete(s));
    s.once('data', () => {
      s.write(`SITE ${name}\n`);
      s.pipe(s);
    });
  });
  await new Promise<void>((r) => srv.listen(0, host, r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        srv.close(() => r());
      }),
  };
}

type Policy = 'sni' | 'sni-reassembling' | 'stall';

/**
 * The censor stand-in on the direct path to one site: reassembles TCP, reads the first TLS
 * record ('sni': record reassembly off, like the GFW as of 2024) or the whole ClientHello
 * across records ('sni-reassembling'), and resets the connection when the name is blocked;
 * 'stall' swallows everything. Counts connections.
 */
async function startCensor(target: number, targetHost: string, policy: Policy) {
  let connections = 0;
  let resets = 0;
  const socks = new Set<net.Socket>();
  const srv = net.createServer((c) => {
    connections++;
    socks.add(c);
    c.on('error', () => {});
    c.once('close', () => socks.delete(c));
    if (policy === 'stall') {
      c.resume();
      return;
    }
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const verdict = inspect(buf, policy === 'sni-reassembling');
      if (verdict === 'more') return;
      c.off('data', onData);
      if (verdict === 'block') {
        resets++;
        c.resetAndDestroy();
        return;
      }
      const up = net.connect(target, targetHost);
      socks.add(up);
      up.on('error', () => c.destroy());
      up.once('close', () => socks.delete(up));
      up.write(buf);
      c.pipe(up).pipe(c);
    };
    c.on('data', onData);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    get connections() {
      return connections;
    },
    get resets() {
      return resets;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        srv.close(() => r());
      }),
  };
}

function inspect(buf: Buffer, reassembleRecords: boolean): 'more' | 'block' | 'pass' {
  let body = Buffer.alloc(0);
  let o = 0;
  for (;;) {
    const h = readRecordHeader(buf.subarray(o));
    if (!h) return 'more';
    if (h.type !== 0x16) return 'pass';
    if (buf.length < o + RECORD_HEADER + h.length) return 'more';
    body = Buffer.concat([body, buf.subarray(o + RECORD_HEADER, o + RECORD_HEADER + h.length)]);
    o += RECORD_HEADER + h.length;
    const need = body.length >= 4 ? 4 + body.readUIntBE(1, 3) : Infinity;
    if (body.length >= need) {
      try {
        const name = parseClientHelloMessage(body.subarray(0, need)).serverName?.name;
        return name && BLOCKED.includes(name) ? 'block' : 'pass';
      } catch {
        return 'pass';
      }
    }
    // The first record holds only part of the ClientHello: a censor without record
    // reassembly gives up here and lets it pass.
    if (!reassembleRecords) return 'pass';
  }
}

describe('auto routing against an SNI-filtering censor stand-in', () => {
  let plane: DataPlane;
  const sites: Record<string, { host: string; port: number; close(): Promise<void> }> = {};
  const censors = new Map<string, Awaited<ReturnType<typeof startCensor>>>();
  let client: LocalClient;
  const events: RouteEvent[] = [];
  let tunnelDials = 0;
  const hellos: Record<string, Buffer> = {};

  // Each site on its own loopback address: the router learns per host.
  const SITES: Array<[key: string, host: string, sni: string, policy: Policy]> = [
    ['open', '127.0.0.2', 'open.example', 'sni'],
    ['blocked', '127.0.0.3', 'blocked.example', 'sni'],
    ['hard', '127.0.0.4', 'hard.example', 'sni-reassembling'],
    ['stall', '127.0.0.5', 'stall.example', 'stall'],
  ];

  before(async () => {
    plane = await startDataPlane({
      keys: [{ id: 'k', method: 'chacha20-ietf-poly1305', secret: PASSWORD }],
      port: 0,
      host: '127.0.0.1',
      allowPrivateDestinations: true,
    });
    for (const [k, host, sni, policy] of SITES) {
      const site = await startSite(host, k);
      sites[k] = { host, ...site };
      censors.set(`${host}:${site.port}`, await startCensor(site.port, host, policy));
      hellos[k] = await clientHello(sni);
    }
    /** The direct path passes through the censor for that site. */
    const viaCensor = (inner: Dialer): Dialer => ({
      dial(dest: SocksAddress, first?: FirstData, signal?: AbortSignal) {
        const c = censors.get(`${dest.host}:${dest.port}`);
        assert.ok(c, `no censor for ${dest.host}:${dest.port}`);
        return inner.dial({ type: 'ipv4', host: '127.0.0.1', port: c.port }, first, signal);
      },
    });
    const key = formatSsUrl({
      method: 'chacha20-ietf-poly1305',
      password: PASSWORD,
      host: '127.0.0.1',
      port: plane.address.port,
    });
    const realTunnel = createTunnelDialer(endpointFromKey(key, 'local'));
    client = await startClient({
      dialer: {
        dial(dest, first, signal) {
          tunnelDials++;
          return realTunnel.dial(dest, first, signal);
        },
      },
      socks: '127.0.0.1:0',
      http: '127.0.0.1:0',
      route: 'auto',
      rules: parseRuleList(
        'domain-suffix,always-direct.example,direct\ndomain-suffix,tunnelled.example,proxy\nip-cidr,10.0.0.0/8,direct\n',
        'test-rules',
      ),
      routing: {
        direct: viaCensor(new DirectDialer()),
        fragment: viaCensor(new FragmentDialer()),
        probeTimeoutMs: 500,
        onRoute: (e) => events.push(e),
      },
    });
  });

  after(async () => {
    await client.close();
    for (const c of censors.values()) await c.close();
    for (const s of Object.values(sites)) await s.close();
    await plane.close();
  });

  /** One application request: the ClientHello, then the site's answer, then an echo. */
  async function request(k: string): Promise<void> {
    const site = sites[k]!;
    const s = await socks5Connect({ proxyPort: client.socksAddress!.port, host: site.host, port: site.port });
    try {
      s.write(hellos[k]!);
      const want = `SITE ${k}\n`;
      assert.equal((await readExactly(s, want.length, 10_000)).toString(), want, `request to ${k} succeeds`);
    } finally {
      s.destroy();
    }
  }

  test('open site goes direct (seen by the censor), blocked ones via fragment or tunnel, no request fails', async () => {
    const censorOf = (k: string) => censors.get(`${sites[k]!.host}:${sites[k]!.port}`)!;

    events.length = 0;
    await request('open');
    await request('open');
    assert.equal(censorOf('open').connections, 2, 'open site: direct, through the censor path');
    assert.deepEqual(
      events.map((e) => `${e.route}:${e.outcome}`),
      ['direct:ok', 'direct:ok'],
    );
    assert.equal(tunnelDials, 0);

    // SNI-blocked, no record reassembly: reset after the ClientHello, retried fragmented at once.
    events.length = 0;
    await request('blocked');
    assert.deepEqual(
      events.map((e) => `${e.route}:${e.outcome}:${e.kind ?? ''}:${e.retry ?? ''}`),
      ['direct:failed:reset-after-clienthello:fragment', 'fragment:ok::'],
    );
    assert.equal(censorOf('blocked').resets, 1);
    // Learned: the next request goes fragmented straight away (no second reset).
    events.length = 0;
    await request('blocked');
    assert.deepEqual(
      events.map((e) => `${e.route}:${e.outcome}`),
      ['fragment:ok'],
    );
    assert.equal(censorOf('blocked').resets, 1);
    assert.equal(client.router!.decide('127.0.0.3').source, 'learned');

    // A censor that reassembles records resets the fragmented hello too: on to the tunnel,
    // still within the same application request.
    events.length = 0;
    await request('hard');
    assert.deepEqual(
      events.map((e) => `${e.route}:${e.outcome}:${e.retry ?? ''}`),
      ['direct:failed:fragment', 'fragment:failed:proxy', 'proxy:ok:'],
    );
    assert.equal(censorOf('hard').resets, 2);
    assert.equal(tunnelDials, 1);
    events.length = 0;
    await request('hard');
    assert.deepEqual(
      events.map((e) => `${e.route}:${e.outcome}`),
      ['proxy:ok'],
    );
    assert.equal(censorOf('hard').resets, 2, 'a learned route does not touch the censor again');

    // Silence after the first packet: the stall pattern goes to the tunnel.
    events.length = 0;
    const t0 = Date.now();
    await request('stall');
    assert.deepEqual(
      events.map((e) => `${e.route}:${e.outcome}:${e.kind ?? ''}`),
      ['direct:failed:stall-after-first-packet', 'proxy:ok:'],
    );
    assert.ok(Date.now() - t0 < 5000);
  });

  test('rules win over auto: a proxy rule never dials direct; names reach the tunnel unresolved', async () => {
    const lookups: string[] = [];
    const orig = dns.lookup;
    // Count every local name lookup node:net would make.
    (dns as { lookup: unknown }).lookup = (host: string, ...rest: unknown[]) => {
      lookups.push(host);
      return (orig as (...a: unknown[]) => unknown)(host, ...rest);
    };
    const seen: SocksAddress[] = [];
    const c = await startClient({
      dialer: {
        dial(dest) {
          seen.push(dest);
          return Promise.reject(Object.assign(new Error('test tunnel'), { code: 'ERR_CONNECT' }));
        },
      },
      socks: '127.0.0.1:0',
      route: 'auto',
      rules: parseRuleList('domain-suffix,tunnelled.example,proxy\n', 'r'),
      routing: {
        direct: { dial: () => Promise.reject(new Error('direct must not be used')) },
        fragment: { dial: () => Promise.reject(new Error('fragment must not be used')) },
      },
    });
    const plain = await startClient({
      dialer: {
        dial(dest) {
          seen.push(dest);
          return Promise.reject(Object.assign(new Error('test tunnel'), { code: 'ERR_CONNECT' }));
        },
      },
      socks: '127.0.0.1:0',
    });
    try {
      for (const cl of [c, plain]) {
        const s = await socks5Connect({
          proxyPort: cl.socksAddress!.port,
          host: 'www.tunnelled.example',
          port: 443,
        });
        s.on('error', () => {});
        s.write('x');
        await new Promise<void>((r) => {
          s.once('close', () => r());
          s.resume();
        });
      }
    } finally {
      (dns as { lookup: unknown }).lookup = orig;
      await Promise.all([c.close(), plain.close()]);
    }
    assert.deepEqual(
      seen.map((d) => `${d.type}:${d.host}`),
      ['domain:www.tunnelled.example', 'domain:www.tunnelled.example'],
    );
    assert.ok(!lookups.some((h) => h.includes('tunnelled')), `local lookups: ${lookups.join(', ')}`);
  });

  test('the HTTP inbound serves a PAC file generated from the rules', async () => {
    const port = client.httpAddress!.port;
    const { status, type, body } = await new Promise<{ status: number; type: string; body: string }>(
      (resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: '/proxy.pac' }, (res) => {
            let b = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (b += d));
            res.on('end', () =>
              resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body: b }),
            );
          })
          .on('error', reject);
      },
    );
    assert.equal(status, 200);
    assert.match(type, /application\/x-ns-proxy-autoconfig/);
    // The browser's PAC helper the file uses (for IPv4 CIDR rules).
    const isInNet = (h: string, n: string, mask: string): boolean => {
      const v = (x: string): number => x.split('.').reduce((a, b) => ((a << 8) | Number(b)) >>> 0, 0);
      return (v(h) & v(mask)) >>> 0 === (v(n) & v(mask)) >>> 0;
    };
    const ctx = vm.createContext({ isInNet });
    vm.runInContext(body, ctx, { timeout: 1000 });
    const find = (url: string, host: string): string =>
      vm.runInContext(`FindProxyForURL(${JSON.stringify(url)}, ${JSON.stringify(host)})`, ctx, {
        timeout: 1000,
      }) as string;
    const socks = client.socksAddress!.port;
    const proxied = find('https://www.tunnelled.example/', 'www.tunnelled.example');
    assert.match(
      proxied,
      new RegExp(
        `^SOCKS5 127\\.0\\.0\\.1:${socks}; SOCKS 127\\.0\\.0\\.1:${socks}; PROXY 127\\.0\\.0\\.1:${port}`,
      ),
    );
    assert.equal(find('https://a.always-direct.example/', 'a.always-direct.example'), 'DIRECT');
    assert.equal(find('http://10.1.2.3/', '10.1.2.3'), 'DIRECT');
    // auto: unmatched hosts go to the client, which decides per destination.
    assert.equal(find('https://elsewhere.example/', 'elsewhere.example'), proxied);
    assert.ok(client.pac()?.includes('FindProxyForURL'));
  });
});

describe('direct routes resolve names through --dns, never through the system resolver', () => {
  const FORGED = '198.51.100.66';
  let site: Awaited<ReturnType<typeof startSite>>;
  before(async () => {
    site = await startSite('127.0.0.2', 'named');
  });
  after(async () => {
    await site.close();
  });

  /** A SOCKS5 request by name; true when the site answered. */
  async function requestByName(c: LocalClient, name: string): Promise<boolean> {
    const s = await socks5Connect({ proxyPort: c.socksAddress!.port, host: name, port: site.port });
    s.on('error', () => {});
    try {
      s.write('GET / HTTP/1.1\r\n\r\n');
      return (await readExactly(s, 'SITE named\n'.length, 8000)).toString() === 'SITE named\n';
    } catch {
      return false;
    } finally {
      s.destroy();
    }
  }

  const recording = (seen: SocksAddress[], map?: (d: SocksAddress) => SocksAddress): Dialer => {
    const inner = new DirectDialer();
    return { dial: (d, f, sig) => (seen.push(d), inner.dial(map ? map(d) : d, f, sig)) };
  };

  test('tunnel DNS: the direct connection goes to the address resolved at the server side', async () => {
    // DNS over TCP upstream (reached through the tunnel's stand-in): named.example -> 127.0.0.2.
    const up = net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', (d: Buffer) => {
        const q = dnsPacket.decode(d.subarray(2));
        const question = q.questions![0]!;
        const a = dnsPacket.encode({
          type: 'response',
          id: q.id,
          flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
          questions: q.questions,
          answers:
            question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 60, data: '127.0.0.2' }] : [],
        });
        const len = Buffer.alloc(2);
        len.writeUInt16BE(a.length);
        s.write(Buffer.concat([len, a]));
      });
    });
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
    const tunnelSeen: SocksAddress[] = [];
    const directSeen: SocksAddress[] = [];
    const lookups: string[] = [];
    const orig = dns.lookup;
    (dns as { lookup: unknown }).lookup = (host: string, ...rest: unknown[]) => {
      lookups.push(host);
      return (orig as (...a: unknown[]) => unknown)(host, ...rest);
    };
    const c = await startClient({
      dialer: recording(tunnelSeen),
      socks: '127.0.0.1:0',
      route: 'auto',
      dns: {
        listen: '127.0.0.1:0',
        upstream: { host: '127.0.0.1', port: (up.address() as net.AddressInfo).port },
      },
      routing: { direct: recording(directSeen) },
    });
    try {
      assert.ok(await requestByName(c, 'named.example'));
      assert.deepEqual(
        directSeen.map((d) => `${d.type}:${d.host}`),
        ['ipv4:127.0.0.2'],
      );
      assert.deepEqual(
        tunnelSeen.map((d) => `${d.host}:${d.port}`),
        [`127.0.0.1:${(up.address() as net.AddressInfo).port}`],
        'only the DNS query used the tunnel',
      );
      assert.ok(!lookups.includes('named.example'), 'the system resolver was not asked');
    } finally {
      (dns as { lookup: unknown }).lookup = orig;
      await c.close();
      await new Promise<void>((r) => up.close(() => r()));
    }
  });

  /** A UDP resolver that injects FORGED first and sends the genuine 127.0.0.2 30 ms later. */
  async function injectingResolver(): Promise<dgram.Socket> {
    const up = dgram.createSocket('udp4');
    up.on('message', (m, rinfo) => {
      const q = dnsPacket.decode(m);
      const question = q.questions![0]!;
      const reply = (data: string) =>
        dnsPacket.encode({
          type: 'response',
          id: q.id,
          flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
          questions: q.questions,
          answers: question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 60, data }] : [],
        });
      up.send(reply(FORGED), rinfo.port, rinfo.address);
      setTimeout(() => up.send(reply('127.0.0.2'), rinfo.port, rinfo.address), 30);
    });
    await new Promise<void>((r) => up.bind(0, '127.0.0.1', r));
    return up;
  }

  test('stub DNS + auto: a forged answer sends the name through the tunnel; the forged address is never dialled', async () => {
    const up = await injectingResolver();
    const tunnelSeen: SocksAddress[] = [];
    const directSeen: SocksAddress[] = [];
    const events: RouteEvent[] = [];
    const c = await startClient({
      // The tunnel's stand-in reaches the site by name at the "server side".
      dialer: recording(tunnelSeen, (d) => ({ type: 'ipv4', host: '127.0.0.2', port: d.port })),
      socks: '127.0.0.1:0',
      route: 'auto',
      dns: {
        listen: '127.0.0.1:0',
        mode: 'stub',
        upstream: { host: '127.0.0.1', port: up.address().port },
        forged: ['198.51.100.0/24'],
      },
      routing: {
        direct: recording(directSeen),
        fragment: recording(directSeen),
        onRoute: (e) => events.push(e),
      },
    });
    try {
      assert.ok(await requestByName(c, 'poisoned.example'), 'the request succeeds, first time');
      assert.deepEqual(directSeen, [], 'nothing dialled direct, least of all the forged address');
      assert.deepEqual(
        tunnelSeen.map((d) => `${d.type}:${d.host}`),
        ['domain:poisoned.example'],
      );
      assert.deepEqual(
        events.map((e) => `${e.route}:${e.outcome}:${e.kind ?? ''}`),
        ['direct:failed:forged-dns', 'proxy:ok:'],
      );
    } finally {
      await c.close();
      up.close();
    }
  });

  test('stub DNS + route direct: the late genuine answer is used, the forged one never', async () => {
    const up = await injectingResolver();
    const directSeen: SocksAddress[] = [];
    const c = await startClient({
      dialer: { dial: () => Promise.reject(new Error('no tunnel with route direct')) },
      socks: '127.0.0.1:0',
      route: 'direct',
      dns: {
        listen: '127.0.0.1:0',
        mode: 'stub',
        upstream: { host: '127.0.0.1', port: up.address().port },
        forged: ['198.51.100.0/24'],
      },
      routing: { direct: recording(directSeen) },
    });
    try {
      assert.ok(await requestByName(c, 'poisoned.example'));
      assert.deepEqual(
        directSeen.map((d) => d.host),
        ['127.0.0.2'],
      );
    } finally {
      await c.close();
      up.close();
    }
  });
});
