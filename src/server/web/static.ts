/**
 * Answers that look like nginx's: the decoys serve files and errors with nginx's status lines,
 * header order, error pages and keep-alive rules (`server_tokens off`, so `Server: nginx` with
 * no version), because the most common server on the web is the least remarkable one to be.
 * Everything is written with explicit headers so Node adds nothing of its own (no
 * `Keep-Alive: timeout=5`, no `X-Powered-By`, no chunking where nginx sends a length).
 *
 * Behaviour copied from nginx 1.22 serving a directory with default settings (checked byte for
 * byte in test/web/decoy-dir.test.ts): GET/HEAD serve files; POST on an existing file is 405, on a
 * missing one 404; any other method 405; `dir` without slash → 301 to `dir/`; a directory
 * without index.html → 403 (no listings); `..` above the root, `%00` or a bad escape → 400 and
 * close; ETag `"mtime-size"` in hex; If-None-Match / exact If-Modified-Since → 304; one byte
 * range → 206, an unsatisfiable one → 416.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  constants as http2constants,
  Http2ServerResponse,
  type Http2ServerRequest,
  type ServerStreamResponseOptions,
} from 'node:http2';
import type { Readable, Writable } from 'node:stream';
import { requestHost } from './host.js';
import { contentTypeFor } from './mime.js';

export const SERVER_HEADER = 'nginx';

const REASONS: Record<number, string> = {
  200: 'OK',
  206: 'Partial Content',
  301: 'Moved Permanently',
  304: 'Not Modified',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Not Allowed',
  414: 'Request-URI Too Large',
  416: 'Requested Range Not Satisfiable',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  504: 'Gateway Time-out',
  505: 'HTTP Version Not Supported',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Unknown';
}

/** nginx's built-in error page for `status` (CRLF line ends, as nginx sends them). */
export function errorPage(status: number, detail?: string): string {
  const title = detail === undefined ? `${status} ${reasonPhrase(status)}` : `${status} ${detail}`;
  const lines = [
    '<html>',
    `<head><title>${title}</title></head>`,
    '<body>',
    `<center><h1>${status} ${reasonPhrase(status)}</h1></center>`,
  ];
  if (detail !== undefined) lines.push(`<center>${detail}</center>`);
  lines.push(`<hr><center>${SERVER_HEADER}</center>`, '</body>', '</html>', '');
  return lines.join('\r\n');
}

export function httpDate(d: Date = new Date()): string {
  return d.toUTCString();
}

/**
 * A complete raw error response, for sockets that have no ServerResponse (parse errors): always
 * `Connection: close`, as nginx closes after a request it could not parse.
 */
export function rawErrorResponse(status: number, detail?: string): string {
  const body = errorPage(status, detail);
  return (
    `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\nServer: ${SERVER_HEADER}\r\nDate: ${httpDate()}\r\n` +
    `Content-Type: text/html\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

export type HeaderList = Array<[string, string]>;

/** A request the decoy answers: HTTP/1.x, or HTTP/2 on the TLS port (./h2.ts). */
export type WebRequest = IncomingMessage | Http2ServerRequest;
export type WebResponse = ServerResponse | Http2ServerResponse;

/** True for an HTTP/2 response (no status text, no connection-specific headers). */
export function isH2(res: WebResponse): res is Http2ServerResponse {
  return res instanceof Http2ServerResponse;
}

/** Close an HTTP/1 connection after this response; HTTP/2 has no such thing per stream. */
export function closeAfter(res: WebResponse): void {
  if (!isH2(res)) res.shouldKeepAlive = false;
}

/** Headers HTTP/2 forbids (RFC 9113 §8.2.2); nginx's h2 responses do not carry them either. */
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);

/** Fields Node's HTTP/2 refuses in a response besides those (and TE other than `trailers`). */
const H2_FORBIDDEN = new Set(['host', 'http2-settings']);

/** The value nginx would put in `Connection` for this response (HTTP/2 drops the header). */
export function connectionValue(res: WebResponse): string {
  return isH2(res) || res.shouldKeepAlive ? 'keep-alive' : 'close';
}

/**
 * Write status line and headers exactly as listed (plus nothing Node would add). Over HTTP/2 the
 * reason phrase and the connection-specific headers go, as with nginx; names go lower-case.
 */
export function writeHead(
  res: WebResponse,
  status: number,
  headers: HeaderList,
  reason = reasonPhrase(status),
): void {
  res.sendDate = false;
  if (!isH2(res)) {
    res.writeHead(status, reason, headers.flat());
    return;
  }
  if (res.stream.destroyed || res.stream.closed) return;
  // In order; a repeated name (Set-Cookie from an upstream) becomes a list, sent as repeated fields.
  const fields: Record<string, string | string[]> = {};
  for (const [k, v] of headers) {
    const name = k.toLowerCase();
    if (CONNECTION_SPECIFIC.has(name) || H2_FORBIDDEN.has(name) || (name === 'te' && v !== 'trailers'))
      continue;
    const had = fields[name];
    fields[name] = had === undefined ? v : [...(Array.isArray(had) ? had : [had]), v];
  }
  // Straight to the stream: the compatibility layer's writeHead asks for trailers, which makes the
  // body end with an empty DATA frame (END_STREAM) where nginx sets END_STREAM on the last one.
  const options: ServerStreamResponseOptions & { sendDate: boolean } = {
    waitForTrailers: false,
    sendDate: false,
  };
  // respond() throws on what an upstream may send and HTTP/2 cannot carry (a repeated field Node
  // holds single-valued, such as two X-Content-Type-Options; a value it refuses). Thrown from an
  // upstream's 'response' handler that would end the process: retry with the first value of each
  // repeated field (Set-Cookie included), and reset the stream if even that is refused.
  try {
    res.stream.respond({ ':status': status, ...fields }, options);
    return;
  } catch {
    // fall through
  }
  const firsts: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) firsts[k] = Array.isArray(v) ? v[0]! : v;
  try {
    res.stream.respond({ ':status': status, ...firsts }, options);
  } catch {
    res.stream.close(http2constants.NGHTTP2_INTERNAL_ERROR);
  }
}

/** An nginx error page (status 400 also closes an HTTP/1 connection, as nginx does). */
export function sendError(res: WebResponse, status: number, extra: HeaderList = [], detail?: string): void {
  const body = errorPage(status, detail);
  if (status === 400) closeAfter(res);
  const headers: HeaderList = [
    ['Server', SERVER_HEADER],
    ['Date', httpDate()],
    ['Content-Type', 'text/html'],
    ['Content-Length', String(Buffer.byteLength(body))],
  ];
  const location = extra.find(([k]) => k === 'Location');
  if (location) headers.push(location);
  headers.push(['Connection', connectionValue(res)]);
  for (const h of extra) if (h[0] !== 'Location') headers.push(h);
  writeHead(res, status, headers);
  // A Buffer: Node then writes the head as latin1, so a Location carrying the Host's raw bytes
  // (above 0x7f) echoes them as nginx does; with a string body the head would go out as UTF-8.
  res.end(Buffer.from(body));
}

/** One servable file. */
export interface StaticFile {
  readonly size: number;
  readonly mtime: Date;
  /** The bytes [start, end] (inclusive), as a stream or a buffer. */
  read(start: number, end: number): Readable | Buffer;
}

export type Lookup = { kind: 'file'; file: StaticFile } | { kind: 'dir' } | undefined;

/** Where the files come from: a directory on disk or the builtin site in memory. */
export interface FileSource {
  /** `path` is normalised: no leading slash, no `.`/`..`/empty segments; '' is the root. */
  lookup(path: string): Promise<Lookup>;
}

/**
 * The path of a request URL as nginx normalises it: query dropped, percent-decoded, slashes
 * merged, `.` and `..` resolved. Undefined when nginx would answer 400 (escape above the root,
 * NUL, bad percent escape, not origin-form).
 */
export function normalisePath(url: string): { segments: string[]; trailingSlash: boolean } | undefined {
  let raw = url;
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(raw);
  if (m) raw = raw.slice(m[0].length) || '/';
  const q = raw.search(/[?#]/);
  if (q >= 0) raw = raw.slice(0, q);
  if (!raw.startsWith('/')) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0')) return undefined;
  const out: string[] = [];
  const parts = decoded.split('/');
  for (const p of parts) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      if (out.length === 0) return undefined;
      out.pop();
      continue;
    }
    out.push(p);
  }
  const last = parts[parts.length - 1];
  return { segments: out, trailingSlash: out.length === 0 || last === '' || last === '.' || last === '..' };
}

/**
 * nginx's "100 Continue" (ngx_http_test_expect): sent when it is about to read or discard the
 * body of an HTTP/1.1 request whose Expect is exactly `100-continue` (any case) - before a file
 * the static handler serves (200, 206, 304, 416) and before a proxied request, never before an
 * error page. The web front listens for 'checkContinue', so Node sends none by itself.
 */
export function continueIfExpected(req: WebRequest, res: WebResponse): void {
  if (isH2(res) || req.httpVersionMajor !== 1 || req.httpVersionMinor < 1 || res.headersSent) return;
  const expect = req.headers.expect;
  if (expect !== undefined && expect.trim().toLowerCase() === '100-continue') res.writeContinue();
}

/** True when the request carries a body (Content-Length > 0 or any Transfer-Encoding). */
export function hasRequestBody(req: WebRequest): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const cl = req.headers['content-length'];
  return cl !== undefined && cl !== '0';
}

function etagOf(f: StaticFile): string {
  return `"${Math.floor(f.mtime.getTime() / 1000).toString(16)}-${f.size.toString(16)}"`;
}

/** `Range: bytes=…` → one inclusive range, 'unsatisfiable', or undefined (serve whole). */
function parseRange(
  header: string | undefined,
  size: number,
): [number, number] | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header);
  if (!m) return undefined;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'unsatisfiable';
    return [Math.max(0, size - n), size - 1];
  }
  const start = Number(a);
  if (start >= size) return 'unsatisfiable';
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (end < start) return undefined;
  return [start, end];
}

function hostForRedirect(req: WebRequest): string {
  // The front answered an invalid one with 400 already (host.ts); nginx's name otherwise.
  const h = requestHost(req);
  if (h) return h;
  const local = req.socket.localAddress ?? '127.0.0.1';
  return local.includes(':') ? `[${local}]` : local;
}

/** The absolute `Location` nginx sends for `dir` → `dir/` (scheme, Host name, listening port). */
function redirectLocation(req: WebRequest, segments: string[]): string {
  // HTTP/2 is only offered on the TLS port.
  const tls = req.httpVersionMajor === 2 || ('encrypted' in req.socket && req.socket.encrypted === true);
  const port = req.socket.localPort ?? 0;
  const defaultPort = tls ? 443 : 80;
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const query = q >= 0 ? url.slice(q) : '';
  const path = '/' + segments.map((s) => encodeURI(s)).join('/') + '/';
  return `${tls ? 'https' : 'http'}://${hostForRedirect(req)}${port === defaultPort ? '' : `:${port}`}${path}${query}`;
}

/** Serve `req` from `source` the way nginx serves a static root. */
export async function serveStatic(req: WebRequest, res: WebResponse, source: FileSource): Promise<void> {
  if (req.httpVersion === '1.1' && req.headers.host === undefined) return sendError(res, 400);
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD' && method !== 'POST') return sendError(res, 405);
  const norm = normalisePath(req.url ?? '/');
  if (norm === undefined) return sendError(res, 400);
  const { segments, trailingSlash } = norm;
  const rel = segments.join('/');
  const name = trailingSlash ? (rel === '' ? 'index.html' : `${rel}/index.html`) : rel;
  let found: Lookup;
  try {
    found = await source.lookup(name);
    if (trailingSlash && found?.kind !== 'file') {
      const dir = rel === '' ? { kind: 'dir' as const } : await source.lookup(rel);
      return sendError(res, dir?.kind === 'dir' ? 403 : 404);
    }
  } catch {
    return sendError(res, 500);
  }
  if (found === undefined) return sendError(res, 404);
  if (found.kind === 'dir') return sendError(res, 301, [['Location', redirectLocation(req, segments)]]);
  if (method === 'POST') return sendError(res, 405);
  continueIfExpected(req, res); // nginx discards the body of a file request: 100 first
  const file = found.file;
  const etag = etagOf(file);
  const lastModified = httpDate(file.mtime);
  const inm = req.headers['if-none-match'];
  const ims = req.headers['if-modified-since'];
  const notModified =
    inm !== undefined
      ? inm.split(',').some((t) => t.trim() === etag || t.trim() === '*')
      : ims !== undefined && ims === lastModified;
  const base: HeaderList = [
    ['Server', SERVER_HEADER],
    ['Date', httpDate()],
  ];
  if (notModified) {
    writeHead(res, 304, [
      ...base,
      ['Last-Modified', lastModified],
      ['Connection', connectionValue(res)],
      ['ETag', etag],
    ]);
    res.end();
    return;
  }
  const range = parseRange(req.headers.range, file.size);
  if (range === 'unsatisfiable') return sendError(res, 416, [['Content-Range', `bytes */${file.size}`]]);
  const [start, end] = range ?? [0, file.size - 1];
  const length = file.size === 0 ? 0 : end - start + 1;
  const headers: HeaderList = [
    ...base,
    ['Content-Type', contentTypeFor(name)],
    ['Content-Length', String(length)],
    ['Last-Modified', lastModified],
    ['Connection', connectionValue(res)],
    ['ETag', etag],
  ];
  headers.push(range ? ['Content-Range', `bytes ${start}-${end}/${file.size}`] : ['Accept-Ranges', 'bytes']);
  writeHead(res, range ? 206 : 200, headers);
  if (method === 'HEAD' || length === 0) {
    res.end();
    return;
  }
  const body = file.read(start, end);
  if (Buffer.isBuffer(body)) {
    res.end(body);
    return;
  }
  body.on('error', () => res.destroy());
  res.on('close', () => body.destroy());
  pipeKnownLength(body, res, length);
}

/**
 * `body.pipe(res)` for a body of known length, except that the last chunk goes out with
 * `res.end(chunk)`: over HTTP/2 that puts END_STREAM on the last DATA frame, as nginx does,
 * instead of an empty DATA frame after it (the same bytes over HTTP/1.1). A body that ends short
 * destroys the response (the client must not take it for complete).
 */
export function pipeKnownLength(body: Readable, res: WebResponse, length: number): void {
  let left = length;
  let ended = false;
  body.on('data', (chunk: Buffer) => {
    if (ended) return;
    left -= chunk.length;
    if (left <= 0) {
      ended = true;
      res.end(chunk);
      return;
    }
    if (!(res as Writable).write(chunk)) {
      body.pause();
      res.once('drain', () => body.resume());
    }
  });
  body.on('end', () => {
    if (ended) return;
    if (left > 0) res.destroy();
    else res.end();
  });
}
