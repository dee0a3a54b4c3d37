/**
 * The decoy: what the web front shows to everything that is not a WebSocket upgrade on the secret
 * path — a wrong path, no upgrade, a bad upgrade, any method, /favicon.ico, /robots.txt.
 *
 *   builtin           a small static site held in memory (./site.ts), served nginx-style
 *   dir:PATH | PATH   the files under PATH, served nginx-style (./static.ts)
 *   https://HOST[/P]  a reverse proxy to HOST (http:// too), Host rewritten to HOST, bodies
 *                     streamed, hop-by-hop headers dropped; the upstream's own headers (its
 *                     Server, Date, order) pass through untouched
 *
 * Policy: `Server: nginx` (no version) for the builtin and dir decoys — the commonest value on
 * the web, and the one whose behaviour ./static.ts copies; a missing Server header is rarer and
 * a versioned one invites version-specific probing. The proxy decoy shows the upstream's.
 */
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { isAbsolute, join, resolve, sep } from 'node:path';
import { builtinSiteFiles } from './site.js';
import {
  closeAfter,
  continueIfExpected,
  connectionValue,
  hasRequestBody,
  normalisePath,
  pipeKnownLength,
  sendError,
  serveStatic,
  writeHead,
} from './static.js';
import type { FileSource, HeaderList, Lookup, StaticFile, WebRequest, WebResponse } from './static.js';

export interface Decoy {
  /** A short description for logs and `--help` (never the secret path). */
  readonly kind: 'builtin' | 'dir' | 'proxy';
  /** Answer one request (HTTP/1.x or HTTP/2). Must not throw; errors become nginx-style error pages. */
  handle(req: WebRequest, res: WebResponse): void;
  /** Release resources (upstream keep-alive sockets). */
  close(): void;
}

function staticDecoy(kind: 'builtin' | 'dir', source: FileSource): Decoy {
  return {
    kind,
    handle(req, res) {
      serveStatic(req, res, source).catch(() => {
        if (!res.headersSent) sendError(res, 500);
        else res.destroy();
      });
    },
    close() {},
  };
}

export interface BuiltinOptions {
  /**
   * Varies the site's wording, names and dates, so two Ladder servers do not serve identical
   * bytes (a fingerprint). Pass something stable per server (it is hashed, never shown); random
   * when omitted.
   */
  seed?: string | Buffer;
}

/** The builtin site (in memory; nothing to ship besides the code). */
export function builtinDecoy(opts: BuiltinOptions = {}): Decoy {
  const files = builtinSiteFiles(opts.seed);
  const source: FileSource = {
    lookup(path) {
      const f = files.get(path);
      if (f !== undefined) {
        const file: StaticFile = {
          size: f.body.length,
          mtime: f.mtime,
          read: (s, e) => f.body.subarray(s, e + 1),
        };
        return Promise.resolve({ kind: 'file', file });
      }
      const prefix = path === '' ? '' : `${path}/`;
      for (const name of files.keys()) if (name.startsWith(prefix)) return Promise.resolve({ kind: 'dir' });
      return Promise.resolve(undefined);
    },
  };
  return staticDecoy('builtin', source);
}

/**
 * Files under `root`. Paths are normalised before they reach the file system (no `..` can
 * escape; see normalisePath), and a resolved path outside the root's real path (a symlink
 * pointing out) is treated as missing.
 */
export function dirDecoy(root: string): Decoy {
  const base = resolve(root);
  let realBase: Promise<string> | undefined;
  const source: FileSource = {
    async lookup(path): Promise<Lookup> {
      realBase ??= realpath(base);
      const rb = await realBase;
      const full = join(base, ...path.split('/'));
      let real: string;
      try {
        real = await realpath(full);
      } catch {
        return undefined;
      }
      if (real !== rb && !real.startsWith(rb + sep)) return undefined;
      const st = await stat(real);
      if (st.isDirectory()) return { kind: 'dir' };
      if (!st.isFile()) return undefined;
      const file: StaticFile = {
        size: st.size,
        mtime: st.mtime,
        read: (start, end) => createReadStream(real, { start, end }),
      };
      return { kind: 'file', file };
    },
  };
  return staticDecoy('dir', source);
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus the proxy-only ones; never forwarded either way. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
]);

/** HTTP/2 pseudo-headers (`:method`, `:path`, …) are dropped: they are not header fields. */
function filterHeaders(raw: string[], extraDrop: Set<string>): HeaderList {
  const named = new Set<string>();
  for (let i = 0; i < raw.length; i += 2)
    if ((raw[i] ?? '').toLowerCase() === 'connection')
      for (const t of (raw[i + 1] ?? '').split(',')) named.add(t.trim().toLowerCase());
  const out: HeaderList = [];
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i] ?? '';
    const lk = k.toLowerCase();
    if (HOP_BY_HOP.has(lk) || named.has(lk) || extraDrop.has(lk) || k.startsWith(':')) continue;
    out.push([k, raw[i + 1] ?? '']);
  }
  return out;
}

/** HTTP/2 may split Cookie into several fields; an HTTP/1.1 upstream gets one (RFC 9113 §8.2.3). */
function joinCookies(headers: HeaderList): HeaderList {
  const cookies = headers.filter(([k]) => k.toLowerCase() === 'cookie');
  if (cookies.length < 2) return headers;
  const rest = headers.filter(([k]) => k.toLowerCase() !== 'cookie');
  rest.push(['cookie', cookies.map(([, v]) => v).join('; ')]);
  return rest;
}

export interface ProxyOptions {
  /** Extra CA certificates for an https upstream (tests); the system store otherwise. */
  ca?: string | Buffer;
  /** Give up on an upstream that has not answered after this long (nginx: 60 s). */
  timeoutMs?: number;
  /**
   * Told why a request to the upstream failed (an error code such as ECONNREFUSED or
   * DEPTH_ZERO_SELF_SIGNED_CERT, or 'timeout'); the visitor gets nginx's 502/504 meanwhile.
   */
  onUpstreamError?: (code: string) => void;
}

/**
 * The request target as the upstream gets it: origin-form (an absolute-form target's scheme and
 * authority dropped, as nginx does: the upstream is fixed, the visitor does not pick its virtual
 * host), or undefined for what nginx answers 400 itself — a target that is not a path (`*`), or
 * one whose dot segments, decoded, climb above the root (`/x/../../admin`, `/%2e%2e/admin`,
 * `/..%2fadmin`). Passed on raw, those reach the upstream's paths outside the decoy's prefix
 * (`--decoy https://host/blog/` → `/blog/../admin`, which the upstream resolves to `/admin`).
 */
function upstreamTarget(url: string): string | undefined {
  const m = /^https?:\/\/[^/?#]*/i.exec(url);
  let target = m ? url.slice(m[0].length) : url;
  if (m && !target.startsWith('/')) target = `/${target}`;
  if (!target.startsWith('/') || normalisePath(target) === undefined) return undefined;
  return target;
}

/** A reverse proxy to `upstream` (`https://host[:port][/prefix]` or `http://…`). */
export function proxyDecoy(upstream: string | URL, opts: ProxyOptions = {}): Decoy {
  const url = new URL(upstream);
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new Error(`--decoy: upstream must be an http:// or https:// URL, got ${url.protocol}`);
  const secure = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const agentOpts = { keepAlive: true, maxSockets: 64, maxFreeSockets: 8, timeout: 60_000 };
  const agent = secure
    ? new https.Agent({
        ...agentOpts,
        ...(isIP(host) ? {} : { servername: host }),
        ...(opts.ca ? { ca: opts.ca } : {}),
      })
    : new http.Agent(agentOpts);
  const prefix = url.pathname.replace(/\/$/, '');
  const timeoutMs = opts.timeoutMs ?? 60_000;
  // Expect is answered here ("100 Continue", as nginx does before it reads the body to proxy it)
  // and never forwarded: nginx's proxy module sends it empty, so an upstream that answers an
  // expectation it does not know with 417 (Node's, Apache) still gives its page.
  const requestDrop = new Set(['host', 'expect']);
  // Transfer-Encoding stays in place on responses (Node re-chunks), so the order is the upstream's.
  const responseDrop = new Set<string>();

  return {
    kind: 'proxy',
    handle(req, res) {
      if (req.httpVersion === '1.1' && req.headers.host === undefined) return sendError(res, 400);
      const target = upstreamTarget(req.url ?? '/');
      if (target === undefined) return sendError(res, 400);
      continueIfExpected(req, res); // nginx reads the body before proxying: 100 first
      const h2 = req.httpVersionMajor === 2;
      const filtered = filterHeaders(req.rawHeaders, requestDrop);
      const headers = h2 ? joinCookies(filtered) : filtered;
      headers.unshift(['Host', url.host]);
      const withBody = hasRequestBody(req);
      const upReq = (secure ? https : http).request({
        protocol: url.protocol,
        hostname: host,
        port: url.port || (secure ? 443 : 80),
        method: req.method ?? 'GET',
        path: prefix + target,
        headers: headers.flat(),
        agent,
        setHost: false,
      });
      let answered = false;
      let gone = false;
      const fail = (status: number): void => {
        if (answered) return;
        answered = true;
        if (!res.headersSent) sendError(res, status);
        else res.destroy();
      };
      upReq.setTimeout(timeoutMs, () => {
        upReq.destroy();
        if (!answered && !gone) opts.onUpstreamError?.('timeout');
        fail(504);
      });
      upReq.on('error', (err: NodeJS.ErrnoException) => {
        if (!answered && !gone) opts.onUpstreamError?.(err.code ?? 'ERR_UPSTREAM');
        fail(502);
      });
      upReq.on('response', (upRes) => {
        if (answered) {
          upRes.destroy();
          return;
        }
        answered = true;
        const out = filterHeaders(upRes.rawHeaders, responseDrop);
        // Put our own Connection header where the upstream had its own (same bytes as direct).
        // An upstream that closes makes us close too, so the client sees what it would directly.
        if (/\bclose\b/i.test(String(upRes.headers.connection ?? ''))) closeAfter(res);
        let at = -1;
        for (let i = 0, j = 0; i < upRes.rawHeaders.length; i += 2) {
          const k = (upRes.rawHeaders[i] ?? '').toLowerCase();
          if (k === 'connection') {
            at = j;
            break;
          }
          if (!HOP_BY_HOP.has(k)) j++;
        }
        const conn: [string, string] = ['Connection', connectionValue(res)];
        if (at >= 0) out.splice(at, 0, conn);
        else out.push(conn);
        writeHead(res, upRes.statusCode ?? 502, out, upRes.statusMessage ?? '');
        upRes.on('error', () => res.destroy());
        const length = Number(upRes.headers['content-length']);
        const known =
          upRes.headers['transfer-encoding'] === undefined && Number.isSafeInteger(length) && length > 0;
        // No body whatever Content-Length says: HEAD, 204, 304.
        const bodyless = req.method === 'HEAD' || upRes.statusCode === 204 || upRes.statusCode === 304;
        if (known && !bodyless) pipeKnownLength(upRes, res, length);
        else upRes.pipe(res);
      });
      res.on('close', () => {
        if (res.writableFinished) return;
        gone = true; // the visitor left: the upstream's reset that follows is not its failure
        upReq.destroy();
      });
      if (withBody) req.pipe(upReq);
      else upReq.end();
    },
    close() {
      agent.destroy();
    },
  };
}

/**
 * `--decoy` value → Decoy: `builtin` (default), `dir:PATH` or a path (absolute, or starting with
 * `.`), `https://…` / `http://…`. Throws with a message naming the bad value.
 */
export function parseDecoy(spec: string | undefined, opts: BuiltinOptions & ProxyOptions = {}): Decoy {
  const s = (spec ?? 'builtin').trim();
  if (s === '' || s === 'builtin') return builtinDecoy(opts.seed === undefined ? {} : { seed: opts.seed });
  if (/^https?:\/\//i.test(s)) {
    const { ca, timeoutMs, onUpstreamError } = opts;
    return proxyDecoy(s, {
      ...(ca === undefined ? {} : { ca }),
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      ...(onUpstreamError === undefined ? {} : { onUpstreamError }),
    });
  }
  const path = s.startsWith('dir:') ? s.slice(4) : s;
  if (path === '' || (!s.startsWith('dir:') && !isAbsolute(path) && !path.startsWith('.')))
    throw new Error(
      `--decoy: expected builtin, dir:PATH, a directory path or an http(s):// URL, got ${JSON.stringify(spec)}`,
    );
  return dirDecoy(path);
}
