/**
 * Shadowsocks over gRPC ("gun": Xray's and v2ray v5's `network: grpc`, sing-box's grpc transport)
 * on the web front, for a server behind a CDN's gRPC proxying or nginx's `grpc_pass`.
 *
 * The service name is the secret path without its leading '/': a front with `--web-path /SECRET`
 * takes `POST /SECRET/Tun` (and Xray's multiMode `/SECRET/TunMulti`) with `content-type:
 * application/grpc…` over HTTP/2 — on the TLS port (ALPN h2) and, on a plain port, as h2c with
 * prior knowledge (what nginx's grpc_pass sends). Clients are configured with `serviceName:
 * SECRET`. A secret path with '/' inside is also matched in the form Xray sends it (its
 * serviceName is path-escaped: `/a%2Fb/Tun`). Every other HTTP/2 request — another path or
 * method, another content type — gets the decoy exactly as before.
 *
 * Each call is one Shadowsocks connection (gRPC's own multiplexing: many calls on one HTTP/2
 * connection), handed to `server.handleStream` as the WebSocket path hands its streams: every key
 * and method, the same failure reaction, the client address the front resolved (trusted proxies).
 * The answer is 200 `content-type: application/grpc` at once, each read chunk one Hunk back, and
 * trailers `grpc-status: 0` when the server ends its side.
 */
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { grpcCallPath, grpcServiceName } from '../../protocol/sip002/transport.js';
import { GrpcStream } from '../../transport/grpc-stream.js';
import type { ShadowsocksServer } from '../server.js';
import { nativeDestAvailable, nativeDestConnect } from './native-dest.js';

/** The request paths of `serviceName`'s Tun and TunMulti calls (unescaped and in Xray's escaped form). */
export function grpcPaths(serviceName: string): Set<string> {
  const calls = ['Tun', 'TunMulti'] as const;
  return new Set([
    ...calls.map((c) => `/${serviceName}/${c}`),
    ...calls.map((c) => grpcCallPath(serviceName, c)),
  ]);
}

const GRPC_CONTENT_TYPE = /^application\/grpc(?:[+;]|$)/i;

export { grpcServiceName };

export interface GrpcEndpointOptions {
  /** The web front's secret path ('/SECRET'): the service name is 'SECRET'. */
  secretPath: string;
  /** Dial destinations with the addon where it has it (as the WebSocket endpoints; default true). */
  nativeDest?: boolean;
}

export interface GrpcEndpoints {
  /** The service name clients are configured with (a secret, as the path). */
  readonly serviceName: string;
  /** For the web front's onH2Tunnel: take a gRPC Tun call, or return false touching nothing. */
  onRequest(req: Http2ServerRequest, res: Http2ServerResponse, clientAddress: string): boolean;
  /** Reset every call taken so far. */
  close(): void;
}

export function createGrpcEndpoints(server: ShadowsocksServer, opts: GrpcEndpointOptions): GrpcEndpoints {
  const serviceName = grpcServiceName(opts.secretPath);
  if (serviceName.length === 0) throw new Error('secretPath must look like /SECRET');
  const paths = grpcPaths(serviceName);
  const connect = (opts.nativeDest ?? true) && nativeDestAvailable() ? nativeDestConnect : undefined;
  const open = new Set<GrpcStream>();
  return {
    serviceName,
    onRequest(req, res, clientAddress) {
      if (req.method !== 'POST' || !paths.has(req.url)) return false;
      const ct = req.headers['content-type'];
      if (typeof ct !== 'string' || !GRPC_CONTENT_TYPE.test(ct)) return false;
      // Node's compatibility response sends the trailers it holds when the stream ends.
      res.sendDate = false;
      res.addTrailers({ 'grpc-status': '0' });
      res.writeHead(200, { 'content-type': 'application/grpc' }); // sent now (Node's compat writeHead)
      const stream = new GrpcStream(req.stream, { trailers: true, framingAsBytes: true });
      stream.on('error', () => {}); // the server reports what it takes over; a reset just closes
      open.add(stream);
      stream.once('close', () => open.delete(stream));
      server.handleStream(stream, { remoteAddress: clientAddress, connect });
      return true;
    },
    close() {
      for (const s of open) s.destroy();
      open.clear();
    },
  };
}
