import { ProtocolError } from '../errors.js';

/**
 * The transport of an ss:// key in the query parameters of Xray's share-link standard
 * (`type`, `serviceName`, `authority`, `path`, `host`, `security`, `sni`: XTLS/Xray-core
 * discussion 716), for what v2ray-plugin's SIP003 options cannot say. Ladder writes `type=grpc`:
 *
 *   ss://…@host:port/?type=grpc&serviceName=SECRET&security=tls&sni=NAME[&authority=HOST]#tag
 *
 * (v2rayN and v2rayNG do not read these on ss:// links — they would dial plain Shadowsocks — so
 * subscriptions give those apps the gRPC variant as an Xray JSON config instead.) It also reads
 * `type=ws` and `type=httpupgrade` with `path`, `host`, `security` and `sni`, which the 3x-ui panel
 * writes for a Shadowsocks inbound on Xray's WebSocket or HTTPUpgrade transport (and OpenWrt's
 * Passwall reads); Ladder's own keys give those as v2ray-plugin options, which the apps read.
 * `type=tcp` and an absent `type` mean no transport; any other type is refused rather than dialled
 * as plain Shadowsocks to a web port.
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

/**
 * `type=ws` or `type=httpupgrade` (Xray's share-link names, as 3x-ui writes them for Shadowsocks):
 * the request path, the Host header, TLS or not (`security`, default none as in the standard).
 */
export interface SsWebTransport {
  type: 'ws' | 'httpupgrade';
  /** The request path as given (Xray's `?ed=` early-data suffix included: the server ignores the query). */
  path: string;
  /** Host header (`host`; default: the key's host). */
  host?: string;
  tls: boolean;
  /** TLS server name (`sni`; default: the Host header's name). */
  sni?: string;
}

export type SsTransport = SsGrpcTransport | SsWebTransport;

/** The query parameter names this file reads (index.ts hands them over). */
export const TRANSPORT_PARAMS: ReadonlySet<string> = new Set([
  'type',
  'serviceName',
  'security',
  'sni',
  'authority',
  'host',
  'mode',
  'path',
]);

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
  if (type === 'ws' || type === 'httpupgrade') return parseWebTransportParams(type, p);
  if (type !== 'grpc')
    throw bad(
      `transport type=${JSON.stringify(type.slice(0, 20))} is not supported (grpc, ws or httpupgrade)`,
    );
  const serviceName = p.get('serviceName');
  if (serviceName === undefined) throw bad('type=grpc needs serviceName');
  checkToken(serviceName, 'serviceName', /[\\]/);
  if (serviceName.length > MAX_SERVICE_NAME)
    throw bad(`serviceName is longer than ${MAX_SERVICE_NAME} characters`);
  const security = p.get('security') ?? 'tls';
  if (security !== 'tls' && security !== 'none')
    throw bad(
      `security=${JSON.stringify(security.slice(0, 20))} is not supported with type=grpc (tls or none)`,
    );
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

/** The longest path taken from a key (it goes into every request line). */
const MAX_PATH = 1024;

/** `type=ws` / `type=httpupgrade`: path, host, security and sni (the 3x-ui form). */
function parseWebTransportParams(type: 'ws' | 'httpupgrade', p: ReadonlyMap<string, string>): SsWebTransport {
  const path = p.get('path') || '/';
  // It goes into the request line: no controls or spaces, and an absolute path.
  if (!path.startsWith('/')) throw bad(`type=${type} path must start with "/"`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f#\\]/.test(path)) throw bad('path contains a character not allowed there'); // '?' may start Xray's ?ed=
  if (path.length > MAX_PATH) throw bad(`path is longer than ${MAX_PATH} characters`);
  const security = p.get('security') || 'none';
  if (security !== 'tls' && security !== 'none')
    throw bad(
      `security=${JSON.stringify(security.slice(0, 20))} is not supported with type=${type} (tls or none)`,
    );
  const out: SsWebTransport = { type, path, tls: security === 'tls' };
  const host = p.get('host');
  if (host !== undefined && host !== '') {
    checkToken(host, 'host', /[/\\@]/);
    if (!URL.canParse(`http://${host}`)) throw bad('host is not a host name or host:port');
    out.host = host;
  }
  const sni = p.get('sni');
  if (sni !== undefined && sni !== '') {
    checkToken(sni, 'sni', /[/\\@:]/);
    out.sni = sni;
  }
  return out;
}

/** The query parameters of `t` (values percent-encoded), in the order Xray's links use. */
export function formatTransportParams(t: SsTransport): string[] {
  if (t.type !== 'grpc') {
    const out = [`type=${t.type}`, `path=${encodeURIComponent(t.path)}`];
    if (t.host !== undefined) out.push(`host=${encodeURIComponent(t.host)}`);
    out.push(`security=${t.tls ? 'tls' : 'none'}`);
    if (t.sni !== undefined) out.push(`sni=${encodeURIComponent(t.sni)}`);
    return out;
  }
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
  const escaped = encodeURIComponent(serviceName).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `/${escaped}/${call}`;
}
