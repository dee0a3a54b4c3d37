/**
 * Web hosts of the lab world (issue 12): where a web-front contender's server sits.
 *
 * - direct: the origin as an emulated remote host on logical port 443 (optionally with its IP
 *   null-routed by C1, the negative control for fronting);
 * - CDN: a TLS-terminating reverse proxy on its own address (`ADDR_CDN`), shared by many sites
 *   (the lab's open site too, so blocking it is collateral damage), routing by Host to origins.
 *   The censor sees only client -> CDN (logical 443 and the alternate 8443); the CDN reaches the
 *   origins from abroad, never through the path. With `blockOrigin`, C1 null-routes the
 *   origin's address first: direct connections to it die, the CDN's still work.
 *
 * Certificates come from the world's lab CA, which covers `*.web.lab` (WEB_DOMAIN).
 */
import type http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Endpoint } from './censor.js';
import type { LabCertificates } from './lab-ca.js';
import type { TcpForwarder } from './tcp-forwarder.js';

/** Names under this domain are web contenders' sites (the lab certificate covers *.web.lab). */
export const WEB_DOMAIN = 'web.lab';
export const CDN_NAME = 'cdn.lab';
/** The CDN edge's emulated address (on the censor path). */
export const ADDR_CDN = '127.0.40.1';
/** Logical ports of the CDN edge: HTTPS and Cloudflare-style alternate HTTPS. */
export const CDN_PORTS = [443, 8443] as const;

/** Where a contender's server sits: what its client dials, and the endpoints that count as its own. */
export interface Placement {
  /** What the client connects to (a censor-path listener). */
  readonly dial: Endpoint;
  /** The censor's view of this row's endpoints (3-tuple server side), for attribution and C1. */
  readonly logical: readonly Endpoint[];
}

/** What a placement needs from the world (LabWorld implements it). */
export interface WebWorld {
  addRemoteHost(
    backend: Endpoint,
    opts: { logicalPort?: number },
  ): Promise<{ tcp: Endpoint; logical: Endpoint }>;
  blockEndpoint(ip: string, port: number | undefined, reason: string): void;
  cdn(): Promise<CdnHost>;
}

export type PlaceFn = (world: WebWorld, backend: Endpoint) => Promise<Placement>;

/** The origin as its own remote host on logical 443; `blockOrigin`: C1 null-routes its IP. */
export function directPlacement(opts: { blockOrigin?: boolean } = {}): PlaceFn {
  return async (world, backend) => {
    const h = await world.addRemoteHost(backend, { logicalPort: 443 });
    if (opts.blockOrigin) world.blockEndpoint(h.logical.host, undefined, 'origin IP known to the censor');
    return { dial: h.tcp, logical: [h.logical] };
  };
}

/**
 * Through the shared CDN: the origin still gets an emulated address (so a client that dialled it
 * directly would meet the censor, and C1 can block it), the client dials the CDN edge at
 * `port` (443 or 8443) with Host/SNI `host`, and the CDN forwards to the real origin.
 */
export function cdnPlacement(opts: { host: string; port?: number; blockOrigin?: boolean }): PlaceFn {
  return async (world, backend) => {
    const origin = await world.addRemoteHost(backend, { logicalPort: 443 });
    if (opts.blockOrigin)
      world.blockEndpoint(origin.logical.host, undefined, 'origin IP known to the censor');
    const cdn = await world.cdn();
    cdn.route(opts.host, backend);
    const port = opts.port ?? 443;
    const edge = cdn.edge(port);
    return { dial: edge.tcp, logical: [edge.logical, origin.logical] };
  };
}

/** Request headers as "Name: value" lines, hop-by-hop ones kept (the upgrade needs them). */
function headBytes(req: http.IncomingMessage, clientIp: string): Buffer {
  const lines = [`${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1`];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
    lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
  lines.push(`X-Forwarded-For: ${clientIp}`);
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
}

/**
 * The CDN edge: HTTPS (the lab certificate) in front of many origins, keyed by Host. Plain
 * requests are proxied; WebSocket upgrades are spliced to the origin after forwarding the
 * request head. Origins are dialled over TLS without verification (a CDN's "full" mode).
 */
export class CdnHost {
  readonly #routes = new Map<string, Endpoint>();
  readonly #server: https.Server;
  readonly #sockets = new Set<Duplex>();
  readonly #edges = new Map<number, { tcp: Endpoint; logical: Endpoint }>();
  readonly #closers: Array<() => Promise<void>> = [];
  #real: Endpoint = { host: '127.0.0.1', port: 0 };

  private constructor(certs: LabCertificates) {
    this.#server = https.createServer({ cert: certs.cert, key: certs.key }, (req, res) =>
      this.#onRequest(req, res),
    );
    this.#server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
      this.#onUpgrade(req, socket, head),
    );
    this.#server.on('connection', (s: net.Socket) => this.#track(s));
  }

  /**
   * Start the edge and put it on the censor path at ADDR_CDN, one listener per logical port.
   * `listen` is the world's forwarder factory.
   */
  static async start(
    certs: LabCertificates,
    listen: (spec: {
      ip: string;
      logicalPort: number;
      backend: Endpoint;
      label: string;
    }) => Promise<TcpForwarder>,
  ): Promise<CdnHost> {
    const c = new CdnHost(certs);
    await new Promise<void>((resolve, reject) => {
      c.#server.once('error', reject);
      c.#server.listen(0, '127.0.0.1', () => resolve());
    });
    c.#real = { host: '127.0.0.1', port: (c.#server.address() as net.AddressInfo).port };
    for (const port of CDN_PORTS) {
      const f = await listen({
        ip: ADDR_CDN,
        logicalPort: port,
        backend: c.#real,
        label: `${CDN_NAME}:${port}`,
      });
      c.#closers.push(() => f.close());
      c.#edges.set(port, { tcp: f.address, logical: f.logical });
    }
    return c;
  }

  /** Serve `host` (a Host header name, port ignored) from the origin at `origin` (TLS). */
  route(host: string, origin: Endpoint): void {
    this.#routes.set(host.toLowerCase(), origin);
  }

  /** The edge listener for a logical port (443 or 8443). */
  edge(port: number): { tcp: Endpoint; logical: Endpoint } {
    const e = this.#edges.get(port);
    if (!e) throw new RangeError(`the lab CDN has no edge on port ${port} (it has ${CDN_PORTS.join(', ')})`);
    return e;
  }

  #track(s: Duplex): void {
    this.#sockets.add(s);
    s.once('close', () => this.#sockets.delete(s));
  }

  #origin(req: http.IncomingMessage): Endpoint | undefined {
    const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
    return this.#routes.get(host);
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const origin = this.#origin(req);
    if (!origin) {
      res
        .writeHead(404, { 'content-type': 'text/plain', connection: 'close' })
        .end('no such site on this CDN\n');
      return;
    }
    const up = https.request(
      {
        host: origin.host,
        port: origin.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, 'x-forwarded-for': req.socket.remoteAddress ?? '' },
        rejectUnauthorized: false,
        servername: (req.headers.host ?? '').replace(/:\d+$/, ''),
      },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
    req.pipe(up);
  }

  #onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    const origin = this.#origin(req);
    if (!origin) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const up = tls.connect({
      host: origin.host,
      port: origin.port,
      rejectUnauthorized: false,
      servername: (req.headers.host ?? '').replace(/:\d+$/, ''),
    });
    this.#track(up);
    up.on('error', () => socket.destroy());
    socket.on('close', () => up.destroy());
    up.on('close', () => socket.destroy());
    up.once('secureConnect', () => {
      up.write(headBytes(req, (socket as net.Socket).remoteAddress ?? ''));
      if (head.length > 0) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    for (const c of this.#closers.splice(0)) await c().catch(() => undefined);
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}
