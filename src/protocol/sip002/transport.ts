import { ProtocolError } from '../errors.js';

/**
 * The transport of an ss:// key in the query parameters of Xray's share-link standard
 * (`type`, `serviceName`, `authority`, `security`, `sni`: XTLS/Xray-core discussion 716), for
 * what v2ray-plugin's SIP003 options cannot say. Ladder reads and writes `type=grpc` only:
 *
 *   ss://…@host:port/?type=grpc&serviceName=SECRET&security=tls&sni=NAME[&authority=HOST]#tag
 *
 * (v2rayN and v2rayNG do not read these on ss:// links — they would dial plain Shadowsocks — so
 * subscriptions give those apps the gRPC variant as an Xray JSON config instead.) `type=tcp` and
 * an absent `type` mean no transport; any other type is refused rather than dialled as plain
 * Shadowsocks to a web port.
 */
export interface SsGrpcTransport {
  type: 'grpc';
  serviceName: string;
  /** `security=tls` (default for gRPC: Xray's grpc without TLS is rare and CDNs require it). */
  tls: boolean;
  /** TLS server name (`sni`). */
  sni?: string;
  /** `:authority` (`authority`; `host` accepted too). */
  authority?: string;
}

export type SsTransport = SsGrpcTransport;

/** The query parameter names this file reads (index.ts hands them over). */
export const TRANSPORT_PARAMS: ReadonlySet<string> = new Set(['type', 'serviceName', 'security', 'sni', 'authority', 'host', 'mode']);

/** The longest serviceName taken (it goes into every call's :path; grpc-go has no limit of its own). */
const MAX_SERVICE_NAME = 1024;

function bad(message: string): ProtocolError {
  return new ProtocolError('ERR_URL', `invalid ss:// URL: ${message}`);
}

/** A header value or name from a key: no controls, spaces or URL delimiters. */
function checkToken(value: string, what: string, extra: RegExp): void {
  // eslint-disable-next-line no-control-regex
  if (value.length === 0 || /[\x00-\x20\x7f#?]/.test(value) || extra.test(value))
    throw bad(`${what} is empty or contains a character not allowed there`);
}

/** The transport the parameters give, or undefined (none, or `type=tcp`). */
export function parseTransportParams(p: ReadonlyMap<string, string>): SsTransport | undefined {
  const type = p.get('type');
  if (type === undefined || type === '' || type === 'tcp') return undefined;
  if (type !== 'grpc')
    throw bad(`transport type=${JSON.stringify(type.slice(0, 20))} is not supported (grpc only; WebSocket keys use plugin=v2ray-plugin)`);
  const serviceName = p.get('serviceName');
  if (serviceName === undefined) throw bad('type=grpc needs serviceName');
  checkToken(serviceName, 'serviceName', /[\\]/);
  if (serviceName.length > MAX_SERVICE_NAME) throw bad(`serviceName is longer than ${MAX_SERVICE_NAME} characters`);
  const security = p.get('security') ?? 'tls';
  if (security !== 'tls' && security !== 'none')
    throw bad(`security=${JSON.stringify(security.slice(0, 20))} is not supported with type=grpc (tls or none)`);
  const mode = p.get('mode');
  if (mode !== undefined && mode !== 'gun' && mode !== 'multi')
    throw bad(`gRPC mode=${JSON.stringify(mode.slice(0, 20))} is not known (gun or multi)`);
  const out: SsGrpcTransport = { type: 'grpc', serviceName, tls: security === 'tls' };
  const sni = p.get('sni');
  if (sni !== undefined && sni !== '') {
    checkToken(sni, 'sni', /[/\\@]/);
    out.sni = sni;
  }
  const authority = p.get('authority') || p.get('host');
  if (authority !== undefined && authority !== '') {
    checkToken(authority, 'authority', /[/\\@]/);
    // It becomes :authority and the HTTP/2 URL: a host[:port] the URL parser takes.
    if (!URL.canParse(`http://${authority}`)) throw bad('authority is not a host name or host:port');
    out.authority = authority;
  }
  return out;
}

/** The query parameters of `t` (values percent-encoded), in the order Xray's links use. */
export function formatTransportParams(t: SsTransport): string[] {
  const out = ['type=grpc', `serviceName=${encodeURIComponent(t.serviceName)}`];
  if (t.authority !== undefined) out.push(`authority=${encodeURIComponent(t.authority)}`);
  out.push(`security=${t.tls ? 'tls' : 'none'}`);
  if (t.sni !== undefined) out.push(`sni=${encodeURIComponent(t.sni)}`);
  return out;
}

/**
 * The gRPC service name of a web front's secret path ('/SECRET' → 'SECRET'): the server takes
 * `/SECRET/Tun` (src/server/web/grpc.ts), and keys and subscriptions give it as `serviceName`.
 */
export function grpcServiceName(secretPath: string): string {
  return secretPath.replace(/^\/+/, '').replace(/\/+$/, '');
}

/**
 * The request path of a gRPC call (`Tun` or Xray's multiMode `TunMulti`) on `serviceName`, as
 * Xray builds it: the name through Go's url.PathEscape (encodeURIComponent plus the four
 * characters it leaves that Go escapes), so a name with '/' stays one path segment. The client
 * dials it (src/transport/grpc-dialer.ts) and the server matches it (src/server/web/grpc.ts).
 */
export function grpcCallPath(serviceName: string, call: 'Tun' | 'TunMulti' = 'Tun'): string {
  const escaped = encodeURIComponent(serviceName).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `/${escaped}/${call}`;
}
