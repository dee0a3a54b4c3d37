/**
 * A lab world for the probe: several named sites, each on its own emulated address behind the
 * censor path (HTTP on logical port 80, HTTPS on 443), reachable from the remote side on a second
 * address with the same ports (where the control's tunnel server fetches them), in the path
 * resolver's zone, plus a Ladder server behind the censor for the control.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { makeLabCertificates } from '../../src/lab/lab-ca.js';
import { TcpForwarder } from '../../src/lab/tcp-forwarder.js';
import { domainRule } from '../../src/lab/dns-inject.js';
import { LAB_KEYWORD, type CensorOverrides } from '../../src/lab/profiles.js';
import type { LabWorld } from '../../src/lab/world.js';
import { startDataPlane } from '../../src/server/index.js';
import { createTunnelDialer } from '../../src/client/index.js';
import type { Dialer } from '../../src/transport/dialer.js';
import type { Blocking } from '../../src/probe/classify.js';
import { startWorld } from '../lab/helpers.js';

export interface SiteSpec {
  readonly name: string;
  readonly scheme: 'http' | 'https';
  readonly path?: string;
  /** The mechanism the censor configuration below applies to it (false: open). */
  readonly expect: Blocking | false;
}

/** Open sites and one site per emulated blocking behaviour (C1 IP, C2 DNS, C3 Host/keyword, C4 SNI, C12 block page). */
export const SITES: readonly SiteSpec[] = [
  { name: 'www.news.open.lab', scheme: 'http', expect: false },
  { name: 'www.mail.open.lab', scheme: 'https', expect: false },
  { name: 'www.video.open.lab', scheme: 'https', path: '/watch?v=1', expect: false },
  { name: 'www.ip.c1.lab', scheme: 'https', expect: 'tcp_ip' },
  { name: 'plain.ip.c1.lab', scheme: 'http', expect: 'tcp_ip' },
  { name: 'www.dns.c2.lab', scheme: 'http', expect: 'dns' },
  { name: 'secure.dns.c2.lab', scheme: 'https', expect: 'dns' },
  { name: 'www.host.c3.lab', scheme: 'http', expect: 'http-failure' },
  { name: 'www.wiki.open.lab', scheme: 'http', path: `/wiki/${LAB_KEYWORD}`, expect: 'http-failure' },
  { name: 'www.sni.c4.lab', scheme: 'https', expect: 'tls' },
  { name: 'www.page.c12.lab', scheme: 'http', expect: 'http-diff' },
];

export const LAB_OVERRIDES = (sites: readonly ProbeSite[]): CensorOverrides => ({
  c1: { enabled: true, blocked: sites.filter((s) => s.name.endsWith('.c1.lab')).map((s) => ({ ip: s.ip })) },
  c2: { enabled: true, rules: [domainRule('c2.lab')] },
  c3: { enabled: true, hosts: ['c3.lab'], keywords: [LAB_KEYWORD], pTrigger: 1, pResidual: 1 },
  c4: { enabled: true, names: ['c4.lab'], namesInbound: ['c4.lab'] },
  c12: { enabled: true, hosts: ['c12.lab'], status: 403 },
});

export interface ProbeSite extends SiteSpec {
  readonly ip: string;
  readonly remoteIp: string;
  url: string;
}

export interface ProbeLab {
  readonly world: LabWorld;
  readonly sites: ProbeSite[];
  readonly ca: Buffer;
  readonly dialer: Dialer;
  readonly resolver: { host: string; port: number };
  readonly controlResolver: { host: string; port: number };
  /** The Ladder server's address behind the censor (for an ss:// key). */
  readonly front: { host: string; port: number };
  stop(): Promise<void>;
}

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const host = (req.headers.host ?? '').replace(/:\d+$/, '');
  const body = `<!doctype html><html><head><title>Welcome to ${host}</title></head><body><h1>${host}</h1><p>${'Lorem ipsum dolor sit amet. '.repeat(20)}</p></body></html>\n`;
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'x-lab-site': host, connection: 'close' });
  res.end(body);
}

async function serve(s: http.Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, host, () => resolve());
  });
  return (s.address() as AddressInfo).port;
}

/** Build the world; `censor: false` is the negative control (profile "none", same sites). */
export async function startProbeLab(opts: {
  censor: boolean;
  sites?: readonly SiteSpec[];
}): Promise<ProbeLab> {
  const specs = opts.sites ?? SITES;
  const sites: ProbeSite[] = specs.map((s, i) => ({
    ...s,
    ip: `127.0.20.${100 + i}`,
    remoteIp: `127.0.21.${100 + i}`,
    url: '',
  }));
  const world = await startWorld(opts.censor ? 'lab-det' : 'none', opts.censor ? LAB_OVERRIDES(sites) : {});
  const closers: Array<() => Promise<void>> = [];
  const closeServer = (s: http.Server) => () =>
    new Promise<void>((r) => {
      s.closeAllConnections();
      s.close(() => r());
    });
  try {
    const certs = await makeLabCertificates(sites.map((s) => s.name));
    const mk = (scheme: 'http' | 'https'): http.Server => {
      const s =
        scheme === 'https'
          ? https.createServer({ cert: certs.cert, key: certs.key }, handler)
          : http.createServer(handler);
      closers.push(closeServer(s));
      return s;
    };
    const backends = {
      http: await serve(mk('http'), '127.0.0.1', 0),
      https: await serve(mk('https'), '127.0.0.1', 0),
    };
    const remote = new Map<string, string>();
    for (const site of sites) {
      const f = await TcpForwarder.listen(world.censor, {
        ip: site.ip,
        logicalPort: site.scheme === 'https' ? 443 : 80,
        backend: { host: '127.0.0.1', port: backends[site.scheme] },
      });
      closers.push(() => f.close());
      await serve(mk(site.scheme), site.remoteIp, f.address.port);
      world.zone.records.set(site.name, { a: site.ip });
      remote.set(site.name, site.remoteIp);
      site.url = `${site.scheme}://${site.name}:${f.address.port}${site.path ?? '/'}`;
    }
    const plane = await startDataPlane({
      port: 0,
      host: '127.0.0.1',
      keys: [{ id: 'probe', method: 'chacha20-ietf-poly1305', secret: 'probe-lab-password' }],
      allowPrivateDestinations: true,
      lookup: async (host: string) => {
        const ip = remote.get(host.toLowerCase());
        if (!ip) throw Object.assign(new Error(`lab: no remote address for ${host}`), { code: 'ENOTFOUND' });
        return [{ address: ip, family: 4 }];
      },
    });
    closers.push(() => plane.close());
    const front = await world.addRemoteHost(
      { host: '127.0.0.1', port: plane.address.port },
      { logicalPort: 8388 },
    );
    const dialer = createTunnelDialer({
      host: front.tcp.host,
      port: front.tcp.port,
      method: 'chacha20-ietf-poly1305',
      password: 'probe-lab-password',
    });
    return {
      world,
      sites,
      ca: certs.ca,
      dialer,
      resolver: world.resolver,
      controlResolver: world.zone.tcpAddress,
      front: front.tcp,
      stop: async () => {
        for (const c of closers.reverse()) await c().catch(() => undefined);
        await world.stop();
      },
    };
  } catch (err) {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    await world.stop();
    throw err;
  }
}
