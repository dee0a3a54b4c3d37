/**
 * C3 helper: read the request line and Host header of the first HTTP request in a
 * client->server byte stream. Pure; never throws.
 */
/** C12's forged response: a block page for `host`, closing the connection. */
export function blockPage(status: number, host: string): Buffer {
  const safe = host.replace(/[^a-z0-9.-]/gi, '');
  const body = `<html><head><title>Access denied</title></head><body><h1>Access denied</h1><p>Access to ${safe} is not permitted in accordance with the law (lab block page).</p></body></html>\n`;
  return Buffer.from(
    `HTTP/1.1 ${status} Forbidden\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    'latin1',
  );
}

export type HttpInspect =
  | { readonly status: 'need-more' }
  | { readonly status: 'not-http' }
  | { readonly status: 'ok'; readonly method: string; readonly path: string; readonly host?: string };

const METHOD = /^[A-Z]{3,10} $/;
const MAX_HEAD = 16 * 1024;

export function inspectHttpRequest(stream: Uint8Array): HttpInspect {
  const b = Buffer.from(stream.buffer, stream.byteOffset, stream.byteLength);
  const sp = b.indexOf(0x20);
  if (sp === -1) return b.length > 10 ? { status: 'not-http' } : { status: 'need-more' };
  if (!METHOD.test(b.subarray(0, sp + 1).toString('latin1'))) return { status: 'not-http' };
  const end = b.indexOf('\r\n\r\n');
  if (end === -1) return b.length > MAX_HEAD ? { status: 'not-http' } : { status: 'need-more' };
  const lines = b.subarray(0, end).toString('latin1').split('\r\n');
  const [method, target] = lines[0]!.split(' ');
  if (!method || target === undefined) return { status: 'not-http' };
  let host: string | undefined;
  for (const line of lines.slice(1)) {
    const c = line.indexOf(':');
    if (c > 0 && line.slice(0, c).trim().toLowerCase() === 'host') {
      host = line
        .slice(c + 1)
        .trim()
        .toLowerCase()
        .replace(/:\d+$/, '');
      break;
    }
  }
  let path = target;
  if (/^https?:\/\//i.test(target)) {
    const u = safeUrl(target);
    if (u) {
      host ??= u.hostname.toLowerCase();
      path = u.pathname + u.search;
    }
  }
  return { status: 'ok', method, path: percentDecode(path), ...(host !== undefined ? { host } : {}) };
}

function safeUrl(s: string): URL | undefined {
  try {
    return new URL(s);
  } catch {
    return undefined;
  }
}

/** %-decode as UTF-8, falling back to the raw text on malformed escapes. */
export function percentDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** True if `host` equals `suffix` or is a subdomain of it. */
export function hostMatchesSuffix(host: string, suffix: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  const s = suffix.toLowerCase().replace(/^\./, '');
  return h === s || h.endsWith('.' + s);
}
