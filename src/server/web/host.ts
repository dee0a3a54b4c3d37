/**
 * The Host header as nginx reads it (ngx_http_validate_host in ngx_http_request.c, 1.22): the
 * name nginx uses (port and one trailing dot removed, ASCII letters lower-cased), or undefined
 * where nginx answers 400 ("client sent invalid host header").
 */
import type { IncomingHttpHeaders } from 'node:http';

/** What badHost reads of an HTTP/1 or HTTP/2 request. */
interface HostSource {
  readonly rawHeaders: readonly string[];
  readonly headers: IncomingHttpHeaders;
}

/**
 * Refused: a '/', a NUL, a space or control character (<= 0x20, 0x7f), two dots in a row anywhere
 * (the port too), and an empty name (`""`, `":80"`, `"."`). The name ends at the first ':' or,
 * for a value starting with '[', after the first ']'; an unclosed '[' keeps the whole value.
 * Everything else passes as nginx lets it: '\', '?', '#', '@', '%', bytes above 0x7f.
 */
export function nginxHost(value: string): string | undefined {
  let dotPos = -2;
  let hostLen = value.length;
  let state: 'usual' | 'literal' | 'rest' = 'usual';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x2e) {
      if (dotPos === i - 1) return undefined;
      dotPos = i;
    } else if (c === 0x3a) {
      if (state === 'usual') {
        hostLen = i;
        state = 'rest';
      }
    } else if (c === 0x5b) {
      if (i === 0) state = 'literal';
    } else if (c === 0x5d) {
      if (state === 'literal') {
        hostLen = i + 1;
        state = 'rest';
      }
    } else if (c === 0x2f || c <= 0x20 || c === 0x7f) return undefined;
  }
  if (dotPos === hostLen - 1) hostLen--;
  if (hostLen === 0) return undefined;
  return value.slice(0, hostLen).replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
const NAME_CHAR = /[A-Za-z0-9.-]/;
/** What nginx's request-line parser lets through between '[' and ']' (an IP literal). */
const LITERAL_CHAR = /[A-Za-z0-9:._~!$&'()*+,;=-]/;

/**
 * The host of an absolute-form request target (`GET http://host:port/path`) as nginx's request
 * line parser reads it (ngx_http_parse_request_line, 1.22): undefined for any other form, null
 * where nginx answers 400 — a scheme not of letters (then digits, '+', '-', '.') followed by
 * `://`, a name character other than a letter, digit, '.' or '-' (so '_', '%', '@' and bytes
 * above 0x7f), an unclosed '[', a port not of digits, or a host nginxHost refuses ('..', empty).
 * nginx names the request by this host rather than the Host header (which must still be valid).
 */
export function targetHost(url: string | undefined): string | null | undefined {
  const scheme = url === undefined ? null : SCHEME.exec(url);
  if (!scheme) return undefined;
  const u = url!;
  let i = scheme[0].length;
  const start = i;
  if (u[i] === '[') {
    for (i++; i < u.length && u[i] !== ']'; i++) if (!LITERAL_CHAR.test(u[i]!)) return null;
    if (u[i] !== ']') return null;
    i++;
  } else {
    while (i < u.length && NAME_CHAR.test(u[i]!)) i++;
  }
  if (u[i] === ':') for (i++; i < u.length && u[i]! >= '0' && u[i]! <= '9'; i++);
  if (i < u.length && u[i] !== '/' && u[i] !== '?') return null;
  return nginxHost(u.slice(start, i)) ?? null;
}

/**
 * Whether nginx would answer `req` with 400 for its host: a request-line host targetHost refuses,
 * a Host value nginxHost refuses (the Host header, else HTTP/2's :authority), or more than one
 * Host header (nginx 1.22 reads HTTP/2's :authority as a Host header, so both count).
 */
export function badHost(req: HostSource & { readonly url?: string | undefined }): boolean {
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'host' || name === ':authority') hosts++;
  }
  if (hosts > 1 || targetHost(req.url) === null) return true;
  const value = hostValue(req);
  return value !== undefined && nginxHost(value) === undefined;
}

function hostValue(req: HostSource): string | undefined {
  const authority = req.headers[':authority'];
  return req.headers.host ?? (typeof authority === 'string' ? authority : undefined);
}

/**
 * The name nginx gives a request badHost let through: the request line's host, else the Host
 * header's (or :authority's); undefined when there is none (nginx then uses its own address).
 */
export function requestHost(req: HostSource & { readonly url?: string | undefined }): string | undefined {
  const target = targetHost(req.url);
  if (target) return target;
  const value = hostValue(req);
  return value === undefined ? undefined : nginxHost(value);
}
