/**
 * A Ladder data plane (allowed to reach loopback destinations) with its WebSocket endpoints
 * behind either a stand-in for the web front (a plain node:http server whose 'upgrade' event hands
 * requests to createWebSocketEndpoints; anything not taken gets a bare 404) or, with `front`, the
 * real web front (builtin decoy, optional TLS and trusted proxies). Counts upgrades so tests can
 * tell how many WebSockets a client opened, and records the client address each one was given.
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Lookup } from '../../src/server/destination.js';
import type { ServerHooks } from '../../src/server/events.js';
import { startDataPlane, type DataPlane } from '../../src/server/index.js';
import { builtinDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFrontTls } from '../../src/server/web/front.js';
import { createWebSocketEndpoints } from '../../src/server/web/websocket.js';
import { createGrpcEndpoints } from '../../src/server/web/grpc.js';
import type { NextHop } from '../../src/transport/dialer.js';
import { DialerStream } from '../../src/transport/dialer-stream.js';
import { ShadowsocksDialer } from '../../src/transport/shadowsocks-dialer.js';
import type { MuxCoverOptions } from '../../src/transport/mux-cover.js';
import type { RuntimeKey, UsageSink } from '../../src/shared/control.js';

export interface WsTestServer {
  readonly plane: DataPlane;
  readonly webPort: number;
  readonly secretPath: string;
  /** WebSocket upgrades accepted so far. */
  readonly upgrades: number;
  /** The client address the front resolved for each accepted upgrade, in order. */
  readonly clients: readonly (string | undefined)[];
  /** The request path (query dropped) of each accepted upgrade, in order. */
  readonly paths: readonly string[];
  /** With `front.grpc`: gRPC calls taken, and the HTTP/2 connections (sockets) they came on. */
  readonly grpcCalls: number;
  readonly grpcConnections: ReadonlySet<unknown>;
  close(): Promise<void>;
}

export interface WsTestServerOptions {
  keys: readonly RuntimeKey[];
  secretPath?: string;
  idleMs?: number;
  hooks?: ServerHooks;
  usage?: UsageSink;
  usageFlushMs?: number;
  /** Serve `${secretPath}/udp` too (default true). */
  udp?: boolean;
  /** Use the real web front (builtin decoy) rather than the bare stand-in. */
  front?: {
    tls?: WebFrontTls;
    trustProxy?: readonly string[];
    grpc?: boolean;
    keepAliveTimeoutMs?: number;
    requestTimeoutMs?: number;
  };
  /** D14 cover of the server's Mux.Cool carriers (createWebSocketEndpoints' `cover`). */
  cover?: MuxCoverOptions | false;
  /** Called with the socket of each accepted upgrade, once the WebSocket has it (tests' controls). */
  onAccepted?: (socket: Socket) => void;
  /** The data plane's name resolution (default: the system's). */
  lookup?: Lookup;
  /** Serve UDP-over-TCP on the streams (default true; the data plane has no UDP socket). */
  udpOverTcp?: boolean;
  /** Destinations through the addon (createWebSocketEndpoints' `nativeDest`; default its own). */
  nativeDest?: boolean;
}

export async function startWsTestServer(opts: WsTestServerOptions): Promise<WsTestServer> {
  const secretPath = opts.secretPath ?? '/secret-path';
  const plane = await startDataPlane({
    keys: opts.keys,
    port: 0,
    host: '127.0.0.1',
    allowPrivateDestinations: true,
    ...(opts.hooks ? { hooks: opts.hooks } : {}),
    ...(opts.usage ? { usage: opts.usage } : {}),
    ...(opts.usageFlushMs !== undefined ? { usageFlushMs: opts.usageFlushMs } : {}),
    ...(opts.idleMs !== undefined ? { timeouts: { idleMs: opts.idleMs } } : {}),
    ...(opts.lookup ? { lookup: opts.lookup } : {}),
    udpOverTcp: opts.udpOverTcp ?? true,
  });
  const endpoints = createWebSocketEndpoints(plane.server, {
    secretPath,
    udp: opts.udp ?? true,
    ...(opts.cover !== undefined ? { cover: opts.cover } : {}),
    ...(opts.nativeDest !== undefined ? { nativeDest: opts.nativeDest } : {}),
  });
  let upgrades = 0;
  const clients: (string | undefined)[] = [];
  const paths: string[] = [];
  const take = (
    req: http.IncomingMessage,
    socket: Socket,
    head: Buffer,
    addr: string | undefined,
  ): boolean => {
    if (!endpoints.onUpgrade(req, socket, head, addr)) return false;
    upgrades++;
    clients.push(addr);
    paths.push((req.url ?? '').split('?')[0]!);
    if (opts.onAccepted) {
      const hook = opts.onAccepted;
      setImmediate(() => hook(socket));
    }
    return true;
  };
  let webPort: number;
  let closeWeb: () => Promise<void>;
  const grpc = opts.front?.grpc ? createGrpcEndpoints(plane.server, { secretPath }) : undefined;
  let grpcCalls = 0;
  const grpcConnections = new Set<unknown>();
  if (opts.front) {
    const front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath,
      decoy: builtinDecoy({ seed: 'test' }),
      ...(opts.front.tls ? { tls: opts.front.tls } : {}),
      ...(opts.front.trustProxy ? { trustProxy: opts.front.trustProxy } : {}),
      ...(opts.front.keepAliveTimeoutMs ? { keepAliveTimeoutMs: opts.front.keepAliveTimeoutMs } : {}),
      ...(opts.front.requestTimeoutMs
        ? { requestTimeoutMs: opts.front.requestTimeoutMs, headersTimeoutMs: opts.front.requestTimeoutMs }
        : {}),
      onUpgrade: (req, socket, head, addr) => take(req, socket as Socket, head, addr),
      ...(grpc
        ? {
            onH2Tunnel: (req, res, addr) => {
              if (!grpc.onRequest(req, res, addr)) return false;
              grpcCalls++;
              grpcConnections.add(req.stream.session);
              clients.push(addr);
              return true;
            },
          }
        : {}),
    });
    webPort = front.port;
    closeWeb = () => front.close();
  } else {
    const web = http.createServer((_req, res) => {
      res.writeHead(404).end();
    });
    web.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      if (!take(req, socket, head, socket.remoteAddress))
        socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
    });
    web.listen(0, '127.0.0.1');
    await once(web, 'listening');
    webPort = (web.address() as AddressInfo).port;
    closeWeb = async () => {
      web.closeAllConnections();
      await new Promise((r) => web.close(r));
    };
  }
  return {
    plane,
    webPort,
    secretPath,
    get upgrades() {
      return upgrades;
    },
    clients,
    paths,
    get grpcCalls() {
      return grpcCalls;
    },
    grpcConnections,
    close: async () => {
      endpoints.close();
      grpc?.close();
      await closeWeb();
      await plane.close();
    },
  };
}

/**
 * A Shadowsocks stream to 127.0.0.1:`port` through `srv`'s WebSocket endpoints, over `hop` (the
 * test's own WebSocket dial, e.g. with a Mux.Cool session); dialled on the first write.
 */
export function tunnelVia(
  srv: WsTestServer,
  key: { method: string; password: string },
  hop: NextHop,
  port: number,
): DialerStream {
  const dialer = new ShadowsocksDialer({ host: '127.0.0.1', port: srv.webPort, ...key, nextHop: hop });
  return new DialerStream(dialer, { type: 'ipv4', host: '127.0.0.1', port });
}
