/**
 * Fetch a dynamic key's body: ssconf://HOST[:PORT]/PATH (fetched as https://, as Outline's
 * clients do) or https://…, bounded in time, size and redirects.
 *
 * Certificate: normal TLS verification, unless the key carries the server's certificate pin,
 * `certSha256=<64 hex>` in the query (the `certSha256` of the server's access config line, the
 * same pin Outline Manager uses for the management API). With a pin the TLS handshake is finished
 * and the fingerprint checked BEFORE the request (whose path is the key's secret) is written, so
 * a man in the middle never sees it. The pin parameter is not sent to the server. A redirect
 * keeps the pin only to the same host and port; elsewhere it gets normal verification. Plain
 * http:// is refused: the body holds the password.
 *
 * Errors are one line and name neither the URL nor its path (the path is the secret).
 */
import { createHash } from 'node:crypto';
import type * as Https from 'node:https';
import { isIP } from 'node:net';
import type * as Tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';

/**
 * node:tls and node:https, loaded at the first fetch: a client with a static key never loads
 * them (about 1 MiB of idle memory, docs/benchmarks.md; test/cli/lazy-loading.test.ts).
 */
interface TlsModules {
  tls: typeof Tls;
  https: typeof Https;
}
let tlsModules: Promise<TlsModules> | undefined;
function loadTls(): Promise<TlsModules> {
  tlsModules ??= Promise.all([import('node:tls'), import('node:https')]).then(([tls, https]) => ({
    tls,
    https,
  }));
  return tlsModules;
}

export const DEFAULT_FETCH_TIMEOUT_MS = 15_000;
export const MAX_DYNAMIC_KEY_BYTES = 64 * 1024;
export const MAX_DYNAMIC_KEY_REDIRECTS = 3;

export interface DynamicKeyUrl {
  /** The https:// URL fetched (without the pin parameter). */
  url: URL;
  /** SHA-256 of the server certificate (lower-case hex), when the key pins it. */
  pinSha256?: string;
  /** The key's #tag, if any. */
  tag?: string;
}

/** A failed fetch. `permanent`: retrying will not help (pin mismatch, untrusted certificate, 404). */
export class DynamicKeyFetchError extends Error {
  override readonly name = 'DynamicKeyFetchError';
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

export function isDynamicKeyUrl(text: string): boolean {
  return /^(ssconf|https?):\/\//i.test(text.trim());
}

/** Parse an ssconf:// or https:// key; one-line errors without the secret path. */
export function parseDynamicKeyUrl(text: string): DynamicKeyUrl {
  const t = text.trim();
  if (/^http:\/\//i.test(t))
    throw new DynamicKeyFetchError(
      'a dynamic key must be ssconf:// or https:// (http:// would send the key in clear)',
      true,
    );
  let url: URL;
  try {
    url = new URL(t.replace(/^ssconf:\/\//i, 'https://'));
  } catch {
    throw new DynamicKeyFetchError('the dynamic key is not a valid URL', true);
  }
  if (url.protocol !== 'https:')
    throw new DynamicKeyFetchError('a dynamic key must be ssconf:// or https://', true);
  if (url.username || url.password)
    throw new DynamicKeyFetchError('a dynamic key must not carry user:password@ before the host', true);
  let tag: string | undefined;
  if (url.hash.length > 1) {
    try {
      tag = decodeURIComponent(url.hash.slice(1));
    } catch {
      tag = url.hash.slice(1);
    }
  }
  url.hash = '';
  let pin: string | undefined;
  for (const name of [...url.searchParams.keys()]) {
    if (name.toLowerCase() !== 'certsha256') continue;
    const v = (url.searchParams.get(name) ?? '').replace(/:/g, '').toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(v))
      throw new DynamicKeyFetchError(
        "the dynamic key's certSha256 must be 64 hex digits (colons allowed)",
        true,
      );
    pin = v;
    url.searchParams.delete(name);
  }
  return { url, ...(pin ? { pinSha256: pin } : {}), ...(tag ? { tag } : {}) };
}

function fingerprint(s: TLSSocket): string {
  const raw = s.getPeerCertificate()?.raw;
  return raw ? createHash('sha256').update(raw).digest('hex') : '';
}

/**
 * A TLS connection to url's host whose certificate is checked (pin, or CA chain and name); over
 * `via` (e.g. a stream through the tunnel) when given, else a direct TCP connection.
 */
export async function secureSocket(
  url: URL,
  pin: string | undefined,
  signal: AbortSignal,
  via?: Duplex,
): Promise<TLSSocket> {
  return openSecureSocket(await loadTls(), url, pin, signal, via);
}

function openSecureSocket(
  { tls }: TlsModules,
  url: URL,
  pin: string | undefined,
  signal: AbortSignal,
  via?: Duplex,
): Promise<TLSSocket> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port ? Number(url.port) : 443;
  // The deadline may have passed while node:tls loaded: its abort event would never come.
  if (signal.aborted)
    return Promise.reject(new DynamicKeyFetchError('the key server did not answer in time', false));
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host,
      port,
      ...(isIP(host) ? {} : { servername: host }),
      rejectUnauthorized: pin === undefined,
      ALPNProtocols: ['http/1.1'],
      ...(via ? { socket: via } : {}),
    });
    const fail = (err: DynamicKeyFetchError): void => {
      signal.removeEventListener('abort', onAbort);
      s.destroy();
      reject(err);
    };
    const onAbort = (): void =>
      fail(new DynamicKeyFetchError('the key server did not answer in time', false));
    signal.addEventListener('abort', onAbort, { once: true });
    s.once('secureConnect', () => {
      signal.removeEventListener('abort', onAbort);
      s.removeAllListeners('error');
      if (pin !== undefined && fingerprint(s) !== pin) {
        s.destroy();
        reject(
          new DynamicKeyFetchError(
            "the key server's certificate does not match the key's certSha256 pin",
            true,
          ),
        );
        return;
      }
      resolve(s);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? '';
      if (/CERT|SELF_SIGNED|UNABLE_TO|HOSTNAME|ERR_TLS_CERT/.test(code) || /certificate/i.test(err.message))
        fail(
          new DynamicKeyFetchError(
            `the key server's certificate is not trusted (${code || 'verification failed'}); a self-signed server needs its certSha256 in the key (…?certSha256=<hex from the server's access config line>)`,
            true,
          ),
        );
      else fail(new DynamicKeyFetchError(`cannot reach the key server (${code || err.message})`, false));
    });
  });
}

function getOnce(
  mods: TlsModules,
  url: URL,
  pin: string | undefined,
  signal: AbortSignal,
  maxBytes: number,
): Promise<{ status: number; location?: string; body: string }> {
  return openSecureSocket(mods, url, pin, signal).then(
    (socket) =>
      new Promise((resolve, reject) => {
        const req = mods.https.request(url, {
          method: 'GET',
          // No agent: with createConnection and no agent, the request goes over this socket,
          // already verified (an agent would open and verify a connection of its own).
          createConnection: () => socket,
          headers: {
            accept: 'application/json, application/yaml;q=0.9, text/plain;q=0.8',
            'user-agent': 'ladder',
          },
        });
        const fail = (err: DynamicKeyFetchError): void => {
          signal.removeEventListener('abort', onAbort);
          req.destroy();
          socket.destroy();
          reject(err);
        };
        const onAbort = (): void =>
          fail(new DynamicKeyFetchError('the key server did not answer in time', false));
        signal.addEventListener('abort', onAbort, { once: true });
        req.on('error', (err: NodeJS.ErrnoException) =>
          fail(
            new DynamicKeyFetchError(`the key server's answer broke off (${err.code ?? err.message})`, false),
          ),
        );
        req.on('response', (res) => {
          const status = res.statusCode ?? 0;
          if (status >= 300 && status < 400) {
            res.resume();
            signal.removeEventListener('abort', onAbort);
            socket.destroy();
            const loc = res.headers.location;
            resolve({ status, ...(loc ? { location: loc } : {}), body: '' });
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > maxBytes)
              fail(
                new DynamicKeyFetchError(`the key server's answer is larger than ${maxBytes} bytes`, false),
              );
            else chunks.push(c);
          });
          res.on('error', () => fail(new DynamicKeyFetchError("the key server's answer broke off", false)));
          res.on('end', () => {
            signal.removeEventListener('abort', onAbort);
            socket.destroy();
            resolve({ status, body: Buffer.concat(chunks).toString('utf8') });
          });
        });
        req.end();
      }),
  );
}

/** GET the key's body (see the top of this file). */
export async function fetchDynamicKey(
  key: DynamicKeyUrl,
  opts: { timeoutMs?: number; maxBytes?: number; maxRedirects?: number } = {},
): Promise<string> {
  const signal = AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS);
  const origin = key.url.host;
  let url = key.url;
  const mods = await loadTls();
  for (let hop = 0; ; hop++) {
    const pin = url.host === origin ? key.pinSha256 : undefined;
    const r = await getOnce(mods, url, pin, signal, opts.maxBytes ?? MAX_DYNAMIC_KEY_BYTES);
    if (r.status === 200) return r.body;
    if (r.status >= 300 && r.status < 400 && r.location) {
      if (hop >= (opts.maxRedirects ?? MAX_DYNAMIC_KEY_REDIRECTS))
        throw new DynamicKeyFetchError('the key server redirected too many times', true);
      let next: URL;
      try {
        next = new URL(r.location, url);
      } catch {
        throw new DynamicKeyFetchError('the key server redirected to an invalid URL', true);
      }
      if (next.protocol !== 'https:')
        throw new DynamicKeyFetchError('the key server redirected to a non-https URL', true);
      url = next;
      continue;
    }
    const permanent = r.status === 404 || r.status === 410 || r.status === 401 || r.status === 403;
    throw new DynamicKeyFetchError(
      `the key server answered HTTP ${r.status}${r.status === 404 ? ' (no such key: deleted, or a mistyped URL)' : ''}`,
      permanent,
    );
  }
}
