/**
 * The emulated remote world on loopback: HTTP and HTTPS sites with blocked and unblocked names
 * (certificates from a lab CA), a plain DNS zone for them, and the censor path in front of each
 * remote host (one distinct 127.x address per host, so 3-tuples are real). Contender servers are
 * added as further remote hosts with addRemoteHost().
 */
import dgram from 'node:dgram';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Clock } from '../shared/clock.js';
import { Censor, type Endpoint } from './censor.js';
import { ScaledClock } from './clock.js';
import { DecisionLog } from './decision-log.js';
import { makeLabCertificates, type LabCertificates } from './lab-ca.js';
import { ActiveProber } from './prober.js';
import { LAB_BLOCKED_DOMAIN, LAB_OPEN_DOMAIN, type CensorConfig } from './profiles.js';
import { TcpForwarder } from './tcp-forwarder.js';
import { UdpForwarder } from './udp-forwarder.js';
import type { FlowShapeClassifier, UdpFlowInspector } from './seams.js';
import { CDN_NAME, CdnHost, WEB_DOMAIN } from './web-hosts.js';
import { TlsInTlsClassifier } from './c8-tls-in-tls.js';

export const BLOCKED_NAME = `www.${LAB_BLOCKED_DOMAIN}`;
export const OPEN_NAME = `www.${LAB_OPEN_DOMAIN}`;

/** Emulated addresses. Domestic clients use 127.0.1.x; the prober uses 127.0.30.x. */
export const ADDR = {
  blockedSite: '127.0.10.1',
  openSite: '127.0.10.2',
  resolver: '127.0.10.53',
  serverBase: '127.0.20.',
  proberBase: '127.0.30.',
  clientBase: '127.0.1.',
  /** The sites as seen from abroad (no censor in between): where a tunnel server reaches them. */
  remoteBlockedSite: '127.0.11.1',
  remoteOpenSite: '127.0.11.2',
} as const;

export interface SiteView {
  readonly name: string;
  /** The emulated address (what DNS answers and clients dial). */
  readonly ip: string;
  /** Where the censor path listens for this site's HTTP (logical port 80) and HTTPS (443). */
  readonly http: Endpoint;
  readonly https: Endpoint;
  /** The real servers behind the path (reachable from the "remote" side, e.g. by a tunnel server). */
  readonly realHttp: Endpoint;
  readonly realHttps: Endpoint;
  /**
   * The site from the remote side: an uncensored pass-through on its own address with the SAME
   * ports as `http`/`https`, so a destination "name:port" means the same site on both sides of
   * the border (a tunnel server resolves lab names with `LabWorld.remoteLookup`). Undefined in the
   * unlikely case a port was taken on that address.
   */
  readonly remote?: { readonly ip: string; readonly http: Endpoint; readonly https: Endpoint };
}

export interface WorldOptions {
  readonly config: CensorConfig;
  readonly seed: number;
  /** Clock for the censor; default a ScaledClock at clockRate. */
  readonly clock?: Clock;
  /** Virtual-time speed-up when no clock is given (default 50). */
  readonly clockRate?: number;
  /** Start the active prober on suspicious flows (default true when C7 is enabled). */
  readonly prober?: boolean;
  /** Real-time floor for prober waits. */
  readonly proberMinRealWaitMs?: number;
  /** C5 / C8 implementations for the seams (see seams.ts); C8 defaults to c8-tls-in-tls.ts. */
  readonly udpInspectors?: readonly UdpFlowInspector[];
  readonly shapeClassifiers?: readonly FlowShapeClassifier[];
}

/** Refuse to dial anything outside loopback: forged DNS answers point at public addresses. */
export function assertLoopback(host: string): void {
  if (!/^127\./.test(host) && host !== '::1' && host !== 'localhost') {
    throw new Error(`lab sandbox: refusing to connect to non-loopback address ${host}`);
  }
}

function listen(server: net.Server): Promise<Endpoint> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      const a = server.address() as net.AddressInfo;
      resolve({ host: '127.0.0.1', port: a.port });
    });
  });
}

/** A plain TCP pass-through (no censor) listening on exactly ip:port; undefined if taken. */
async function passThrough(
  ip: string,
  port: number,
  backend: Endpoint,
): Promise<{ address: Endpoint; close(): Promise<void> } | undefined> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (c) => {
    const b = net.connect({ host: backend.host, port: backend.port, allowHalfOpen: true });
    for (const s of [c, b]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    }
    c.on('error', () => b.destroy());
    b.on('error', () => c.destroy());
    c.on('close', () => b.destroy());
    b.on('close', () => c.destroy());
    c.pipe(b);
    b.pipe(c);
  });
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen({ host: ip, port }, () => resolve(true));
  });
  if (!ok) return undefined;
  return {
    address: { host: ip, port },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

function siteHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const host = (req.headers.host ?? '').replace(/:\d+$/, '');
  const body = `ladder lab site ${host}${req.url ?? '/'}\n`;
  res.writeHead(200, {
    'content-type': 'text/plain',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  res.end(body);
}

/**
 * A plain DNS zone server answering like a recursive resolver (the "genuine" resolver behind the
 * path). It answers UDP on `address` and DNS over TCP (2-byte length framing, pipelined) on
 * `tcpAddress`, so a tunnel's DNS forwarder can reach it from the remote side.
 */
export class ZoneServer {
  readonly records: Map<string, { a?: string; txt?: string }>;
  readonly #socket = dgram.createSocket('udp4');
  readonly #tcp = net.createServer((s) => this.#onTcp(s));
  readonly #tcpSockets = new Set<net.Socket>();
  address: Endpoint = { host: '127.0.0.1', port: 0 };
  tcpAddress: Endpoint = { host: '127.0.0.1', port: 0 };
  /** Queries answered, per transport. */
  readonly answered = { udp: 0, tcp: 0 };

  constructor(records: Map<string, { a?: string; txt?: string }>) {
    this.records = records;
    this.#socket.on('error', () => undefined);
    this.#socket.on('message', (msg, rinfo) => {
      const reply = this.answer(msg);
      if (!reply) return;
      this.answered.udp++;
      this.#socket.send(reply, rinfo.port, rinfo.address);
    });
  }

  /** The reply to one query message, or undefined for garbage. */
  answer(msg: Buffer): Buffer | undefined {
    let q: dnsPacket.Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return undefined;
    }
    const question = q.questions?.[0];
    if (!question || q.type !== 'query') return undefined;
    const rec = this.records.get(question.name.toLowerCase());
    const answers: dnsPacket.Answer[] = [];
    if (rec?.a && question.type === 'A')
      answers.push({ type: 'A', name: question.name, ttl: 300, class: 'IN', data: rec.a });
    if (rec?.txt && question.type === 'TXT')
      answers.push({ type: 'TXT', name: question.name, ttl: 300, class: 'IN', data: rec.txt });
    return dnsPacket.encode({
      type: 'response',
      id: q.id ?? 0,
      // Answer like the recursive resolver a client would use: RA set, AA clear, RD copied.
      flags: dnsPacket.RECURSION_AVAILABLE | (rec ? 0 : 3) | ((q.flags ?? 0) & dnsPacket.RECURSION_DESIRED),
      questions: [question],
      answers,
    });
  }

  #onTcp(s: net.Socket): void {
    this.#tcpSockets.add(s);
    s.once('close', () => this.#tcpSockets.delete(s));
    s.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const n = buf.readUInt16BE(0);
        const reply = this.answer(buf.subarray(2, 2 + n));
        buf = buf.subarray(2 + n);
        if (!reply) {
          s.destroy();
          return;
        }
        this.answered.tcp++;
        const len = Buffer.alloc(2);
        len.writeUInt16BE(reply.length);
        s.write(Buffer.concat([len, reply]));
      }
    });
    s.on('end', () => s.end());
  }

  async start(): Promise<Endpoint> {
    await new Promise<void>((r) => this.#socket.bind(0, '127.0.0.1', r));
    this.address = { host: '127.0.0.1', port: this.#socket.address().port };
    this.tcpAddress = await listen(this.#tcp);
    return this.address;
  }

  async close(): Promise<void> {
    for (const s of this.#tcpSockets) s.destroy();
    await new Promise<void>((r) => this.#tcp.close(() => r()));
    await new Promise<void>((r) => this.#socket.close(() => r()));
  }
}

export class LabWorld {
  readonly censor: Censor;
  readonly clock: Clock;
  readonly log: DecisionLog;
  readonly prober: ActiveProber;
  readonly certs: LabCertificates;
  readonly sites: { readonly blocked: SiteView; readonly open: SiteView };
  /** The path resolver (C2 applies here): clients send DNS queries to it. */
  readonly resolver: Endpoint;
  readonly zone: ZoneServer;
  readonly #closers: Array<() => Promise<void>> = [];
  #nextServerIp = 1;
  #cdn: Promise<CdnHost> | undefined;

  private constructor(init: {
    censor: Censor;
    prober: ActiveProber;
    certs: LabCertificates;
    sites: { blocked: SiteView; open: SiteView };
    resolver: Endpoint;
    zone: ZoneServer;
    closers: Array<() => Promise<void>>;
  }) {
    this.censor = init.censor;
    this.clock = init.censor.clock;
    this.log = init.censor.log;
    this.prober = init.prober;
    this.certs = init.certs;
    this.sites = init.sites;
    this.resolver = init.resolver;
    this.zone = init.zone;
    this.#closers.push(...init.closers);
  }

  static async start(opts: WorldOptions): Promise<LabWorld> {
    // Certificates first: openssl takes a while, and C9 windows count from the censor's start.
    const certs = await makeLabCertificates([
      BLOCKED_NAME,
      LAB_BLOCKED_DOMAIN,
      OPEN_NAME,
      LAB_OPEN_DOMAIN,
      `*.${WEB_DOMAIN}`,
      CDN_NAME,
    ]);
    const clock = opts.clock ?? new ScaledClock(opts.clockRate ?? 50);
    const log = new DecisionLog(() => clock.now());
    const censor = new Censor({
      config: opts.config,
      clock,
      seed: opts.seed,
      log,
      ...(opts.udpInspectors ? { udpInspectors: opts.udpInspectors } : {}),
      shapeClassifiers: opts.shapeClassifiers ?? [new TlsInTlsClassifier()],
    });
    const prober = new ActiveProber({
      censor,
      ...(opts.proberMinRealWaitMs !== undefined ? { minRealWaitMs: opts.proberMinRealWaitMs } : {}),
    });
    if (opts.prober !== false) prober.attach();
    const closers: Array<() => Promise<void>> = [];
    try {
      const httpServer = http.createServer(siteHandler);
      // The chain (leaf and CA), as real sites send it: the server's first flight is 1-2 KB.
      const httpsServer = https.createServer(
        { cert: Buffer.concat([certs.cert, certs.ca]), key: certs.key },
        siteHandler,
      );
      const realHttp = await listen(httpServer);
      closers.push(
        () =>
          new Promise((r) => {
            httpServer.closeAllConnections();
            httpServer.close(() => r());
          }),
      );
      const realHttps = await listen(httpsServer);
      closers.push(
        () =>
          new Promise((r) => {
            httpsServer.closeAllConnections();
            httpsServer.close(() => r());
          }),
      );
      const mkSite = async (name: string, ip: string, remoteIp: string): Promise<SiteView> => {
        const h = await TcpForwarder.listen(censor, {
          ip,
          logicalPort: 80,
          backend: realHttp,
          label: `${name}:80`,
        });
        closers.push(() => h.close());
        const s = await TcpForwarder.listen(censor, {
          ip,
          logicalPort: 443,
          backend: realHttps,
          label: `${name}:443`,
        });
        closers.push(() => s.close());
        const rh = await passThrough(remoteIp, h.address.port, realHttp);
        const rs = await passThrough(remoteIp, s.address.port, realHttps);
        for (const x of [rh, rs]) if (x) closers.push(() => x.close());
        return {
          name,
          ip,
          http: h.address,
          https: s.address,
          realHttp,
          realHttps,
          ...(rh && rs ? { remote: { ip: remoteIp, http: rh.address, https: rs.address } } : {}),
        };
      };
      const blocked = await mkSite(BLOCKED_NAME, ADDR.blockedSite, ADDR.remoteBlockedSite);
      const open = await mkSite(OPEN_NAME, ADDR.openSite, ADDR.remoteOpenSite);
      const zone = new ZoneServer(
        new Map([
          [BLOCKED_NAME, { a: ADDR.blockedSite, txt: 'lab blocked site' }],
          [OPEN_NAME, { a: ADDR.openSite, txt: 'lab open site' }],
        ]),
      );
      await zone.start();
      closers.push(() => zone.close());
      const dns = await UdpForwarder.listen(censor, {
        ip: ADDR.resolver,
        logicalPort: 53,
        backend: zone.address,
      });
      closers.push(() => dns.close());
      return new LabWorld({
        censor,
        prober,
        certs,
        sites: { blocked, open },
        resolver: dns.address,
        zone,
        closers,
      });
    } catch (err) {
      for (const c of closers.reverse()) await c().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Name resolution for a server abroad (a tunnel server's `lookup`): lab site names resolve to
   * the sites' remote-side addresses, which reach them without crossing the censor path.
   */
  readonly remoteLookup = async (host: string): Promise<{ address: string; family: number }[]> => {
    const h = host.toLowerCase().replace(/\.$/, '');
    for (const site of [this.sites.blocked, this.sites.open]) {
      if (h === site.name && site.remote) return [{ address: site.remote.ip, family: 4 }];
    }
    throw Object.assign(new Error(`lab: no remote address for ${host}`), { code: 'ENOTFOUND' });
  };

  /** The genuine (domestic-side) address of a lab name, as an uncensored resolver answers it. */
  domesticAddress(host: string): string | undefined {
    return this.zone.records.get(host.toLowerCase().replace(/\.$/, ''))?.a;
  }

  /**
   * Put a real server (a contender's tunnel server, a test server) behind the censor path as a
   * remote host with its own emulated address. Returns where clients must connect.
   */
  async addRemoteHost(
    backend: Endpoint,
    opts: { ip?: string; logicalPort?: number; udp?: boolean } = {},
  ): Promise<{ tcp: Endpoint; logical: Endpoint; udp?: Endpoint }> {
    const ip = opts.ip ?? `${ADDR.serverBase}${this.#nextServerIp++}`;
    const t = await TcpForwarder.listen(this.censor, {
      ip,
      backend,
      ...(opts.logicalPort !== undefined ? { logicalPort: opts.logicalPort } : {}),
    });
    this.#closers.push(() => t.close());
    let udp: Endpoint | undefined;
    if (opts.udp) {
      const u = await UdpForwarder.listen(this.censor, {
        ip,
        port: t.address.port,
        backend,
        ...(opts.logicalPort !== undefined ? { logicalPort: opts.logicalPort } : {}),
      });
      this.#closers.push(() => u.close());
      udp = u.address;
    }
    return { tcp: t.address, logical: t.logical, ...(udp ? { udp } : {}) };
  }

  /** The shared CDN edge (web-hosts.ts), started on first use; it also serves the open site. */
  cdn(): Promise<CdnHost> {
    this.#cdn ??= CdnHost.start(this.certs, (spec) => TcpForwarder.listen(this.censor, spec)).then((c) => {
      this.#closers.push(() => c.close());
      c.route(OPEN_NAME, this.sites.open.realHttps);
      return c;
    });
    return this.#cdn;
  }

  async stop(): Promise<void> {
    this.prober.detach();
    for (const c of this.#closers.splice(0).reverse()) await c().catch(() => undefined);
  }
}
