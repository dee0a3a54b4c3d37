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

/**
 * Whether nginx would answer `req` with 400 for its Host: a value nginxHost refuses (the Host
 * header, else HTTP/2's :authority) or more than one Host header.
 */
export function badHost(req: HostSource): boolean {
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'host') hosts++;
  if (hosts > 1) return true;
  const authority = req.headers[':authority'];
  const value = req.headers.host ?? (typeof authority === 'string' ? authority : undefined);
  return value !== undefined && nginxHost(value) === undefined;
}
