/**
 * The first request line of each HTTP/1 connection, read ahead of Node's parser and answered the
 * way nginx 1.22 reads request lines where llhttp is stricter (test/web/prober-nginx.test.ts
 * compares both with a live nginx):
 *
 *   - a method nginx takes (`[A-Z_-]+`) that llhttp does not know (`FOO`, `FOO_BAR`): nginx's
 *     static handler answers 405 and keeps the connection; llhttp refused the line (400, close).
 *     The line is handed on with a method llhttp knows and the same static-handler treatment
 *     (PROPFIND), and the request gets its own method back before any handler sees it
 *     (`firstHeadRead`), so a proxy decoy forwards `FOO` as nginx's proxy_pass does;
 *   - versions nginx reads by value: `HTTP/1.2` … `HTTP/1.999` and `HTTP/1.01` are served as 1.1,
 *     `HTTP/1.00` as 1.0, any major above 1 (`HTTP/10.0`) is 505; spaces after the version and a
 *     bare `\n` ending the line are accepted;
 *   - bytes 0x80-0xFF in the target, which nginx takes as they are (a 404 for a missing file):
 *     handed on percent-encoded (the decoys decode them back to the same bytes);
 *   - a line that does not end within nginx's 8 KiB header buffer: its 414, then close.
 *
 * `headersTooLarge` is nginx's header-buffer limit, checked on what Node's parser took.
 *
 * Anything else — a valid line, lower-case methods, control bytes, TLS or other binary bytes — is
 * handed on untouched at its first byte that decides it, and Node's parser answers it as before.
 * Only the first request of a connection (and the request after a decoy answer to an upgrade,
 * which front.ts hands back as a new connection) is read here; later keep-alive requests are
 * Node's alone. The cost on a genuine request is one look at the first chunk in JavaScript before
 * Node's parser takes the socket.
 */
import { METHODS, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { rawErrorResponse } from './static.js';

/** nginx's `large_client_header_buffers 4 8k`: the request line, line end included, fits in 8 KiB. */
export const MAX_REQUEST_LINE = 8192;

/** A method llhttp knows that every decoy treats as nginx treats an unknown one (405 or proxied). */
const STAND_IN_METHOD = 'PROPFIND';

const KNOWN = new Set(METHODS);

/**
 * The request head's limit (request line and header lines together), Node's maxHeaderSize: nginx's
 * `large_client_header_buffers 4 8k`, measured with nginx 1.22 as a little under 32 KiB of
 * header lines of 100 bytes. A bare-LF head is read here up to this much before it is left to Node.
 */
export const MAX_HEADER_SIZE = 32 * 1024;

/** nginx 1.22 answers more header lines than this with 400 "Request Header Or Cookie Too Large". */
export const MAX_HEADER_LINES = 1000;

/**
 * What nginx refuses in headers Node's parser took (nginx's 400 "Request Header Or Cookie Too
 * Large"): more than MAX_HEADER_LINES lines (Node keeps up to 2000 and drops the rest), one
 * line that does not fit in an 8 KiB buffer with its line end, or lines over MAX_HEADER_SIZE.
 */
export function headersTooLarge(req: { readonly rawHeaders: readonly string[] }): boolean {
  const raw = req.rawHeaders;
  if (raw.length > 2 * MAX_HEADER_LINES) return true;
  let total = 0;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const line = raw[i]!.length + raw[i + 1]!.length + 4; // `name: value\r\n`
    if (line > MAX_REQUEST_LINE) return true;
    total += line;
  }
  // Node counts names and values alone against maxHeaderSize; nginx's buffers hold whole lines.
  return total > MAX_HEADER_SIZE;
}

/** Sockets whose first request was handed on under STAND_IN_METHOD: its real method. */
const realMethods = new WeakMap<object, string>();

export type LineVerdict =
  | { kind: 'more' }
  | { kind: 'pass' }
  | { kind: 'refuse'; status: number }
  | { kind: 'rewrite'; bytes: Buffer; method?: string };

const isMethodByte = (b: number): boolean => (b >= 0x41 && b <= 0x5a) || b === 0x5f || b === 0x2d;

/** Percent-encode bytes 0x80-0xFF (latin1 text in, ASCII out). */
function encodeHigh(target: string): string {
  return target.replace(/[\x80-\xff]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/** How many CR/LF bytes (empty lines, skipped before a request line) `got` starts with. */
function emptyLinesAt(got: Buffer): number {
  let n = 0;
  while (n < got.length && (got[n] === 0x0d || got[n] === 0x0a)) n++;
  return n;
}

/** What to do with the bytes received so far (`got`, from the connection's first byte). */
export function inspectRequestLine(got: Buffer): LineVerdict {
  const start = emptyLinesAt(got);
  // Method bytes, then a space: anything else is for Node's parser (and answered as nginx does).
  let i = start;
  while (i < got.length && isMethodByte(got[i]!)) i++;
  if (i === got.length)
    return got.length - start >= MAX_REQUEST_LINE ? { kind: 'refuse', status: 414 } : { kind: 'more' };
  if (i === start || got[i] !== 0x20) return { kind: 'pass' };
  const lf = got.indexOf(0x0a, i);
  if (lf < 0 || lf - start >= MAX_REQUEST_LINE)
    return lf < 0 && got.length - start < MAX_REQUEST_LINE
      ? { kind: 'more' }
      : { kind: 'refuse', status: 414 };
  const line = got.toString('latin1', start, lf);
  const m = /^([A-Z_-]+) +([^ ]+) +HTTP\/([1-9]\d*)\.(\d+)( *)(\r?)$/.exec(line);
  if (!m) return { kind: 'pass' };
  const [, method, target, majorText, minorText, trailing, cr] = m as unknown as string[];
  const major = majorText!.length > 3 ? 1000 : Number(majorText);
  const minor = /^0*\d{1,3}$/.test(minorText!) ? Number(minorText) : 1000;
  let version: string;
  if (major > 1)
    version = '2.0'; // Node's parser takes it; front.ts answers 505 as nginx does
  else if (minor > 999)
    return { kind: 'pass' }; // nginx's 400, and llhttp's
  else version = minor === 0 ? '1.0' : '1.1';
  const known = KNOWN.has(method!);
  const encoded = encodeHigh(target!);
  if (
    known &&
    version === `${majorText}.${minorText}` &&
    trailing === '' &&
    cr === '\r' &&
    encoded === target
  )
    return { kind: 'pass' };
  let rest = got.subarray(lf + 1);
  if (cr === '') {
    // A client that ends lines with a bare LF ends its header lines so too: nginx reads them,
    // llhttp does not. Its head is read whole here and handed on with CRLF line ends.
    const end = /\n\r?\n/.exec(got.toString('latin1', lf));
    if (!end) return got.length - start < MAX_HEADER_SIZE ? { kind: 'more' } : { kind: 'pass' };
    const headEnd = lf + end.index + end[0].length;
    const fields = got.toString('latin1', lf + 1, headEnd).replace(/\r?\n/g, '\r\n');
    rest = Buffer.concat([Buffer.from(fields, 'latin1'), got.subarray(headEnd)]);
  }
  const head = Buffer.from(`${known ? method : STAND_IN_METHOD} ${encoded} HTTP/${version}\r\n`, 'latin1');
  const bytes = Buffer.concat([got.subarray(0, start), head, rest]);
  return known ? { kind: 'rewrite', bytes } : { kind: 'rewrite', bytes, method: method! };
}

/** Sockets handed to Node before their first head was complete: the head's deadline. */
const headDeadlines = new WeakMap<object, NodeJS.Timeout>();
/** Sockets with the close listener that clears their head's deadline (one per socket). */
const closeWatched = new WeakSet<object>();

/**
 * The connection's first head has been read (call first thing in every handler of a request:
 * 'request', 'upgrade', 'checkContinue'): its deadline is over, and a request whose line was handed
 * on under a stand-in gets its real method back.
 */
export function firstHeadRead(req: IncomingMessage): void {
  const socket = req.socket as object | null;
  if (!socket) return;
  const deadline = headDeadlines.get(socket);
  if (deadline !== undefined) {
    clearTimeout(deadline);
    headDeadlines.delete(socket);
  }
  const method = realMethods.get(socket);
  if (method === undefined) return;
  realMethods.delete(socket);
  req.method = method;
}

/**
 * Put the request-line reader in front of Node's HTTP/1 listener for `event` (the server's only
 * listener for it: call right after creating the server, before ./h2.ts attaches). A connection
 * whose first head (line and headers) is not complete within `timeoutMs` is closed without an
 * answer (nginx's client_header_timeout).
 */
export function readRequestLines(
  server: HttpServer | HttpsServer,
  event: 'connection' | 'secureConnection',
  timeoutMs: number,
): void {
  const own = server.listeners(event);
  const http1 = own[0] as ((socket: Socket) => void) | undefined;
  if (own.length !== 1 || http1 === undefined)
    throw new Error(`web front: unexpected ${event} listeners on the server`);
  server.removeListener(event, http1);
  server.on(event, (socket: Socket) => {
    let got: Buffer | undefined;
    const done = (): void => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.pause();
    };
    const onError = (): void => {
      clearTimeout(timer);
      socket.destroy();
    };
    const onEnd = (): void => {
      clearTimeout(timer);
      done();
      socket.destroy(); // nginx: an incomplete request line and EOF close silently
    };
    const onData = (chunk: Buffer): void => {
      got = got ? Buffer.concat([got, chunk]) : chunk;
      // Empty lines before a request line are skipped as they come, not kept (nginx and llhttp
      // skip them too): a stream of CR/LF would otherwise grow `got` until the head's deadline.
      const skip = emptyLinesAt(got);
      if (skip === got.length) {
        got = undefined;
        return;
      }
      if (skip > 0) got = got.subarray(skip);
      const verdict = inspectRequestLine(got);
      if (verdict.kind === 'more') return;
      done();
      if (verdict.kind === 'refuse') {
        clearTimeout(timer);
        socket.on('error', () => socket.destroy());
        socket.end(rawErrorResponse(verdict.status));
        return;
      }
      if (verdict.kind === 'rewrite' && verdict.method !== undefined) realMethods.set(socket, verdict.method);
      // One deadline for the whole head, as nginx's client_header_timeout: Node's header clock
      // starts only now, so ours runs on until the request's handler (firstHeadRead) or the close.
      headDeadlines.set(socket, timer);
      // One close listener per socket: a decoy answer to an upgrade hands the same socket back here.
      if (!closeWatched.has(socket)) {
        closeWatched.add(socket);
        socket.once('close', () => {
          const t = headDeadlines.get(socket);
          if (t !== undefined) clearTimeout(t);
        });
      }
      socket.unshift(verdict.kind === 'rewrite' ? verdict.bytes : got);
      http1.call(server, socket);
      socket.resume();
    };
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    timer.unref();
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
  });
}
