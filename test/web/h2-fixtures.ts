/**
 * Fixtures for the HTTP/2 decoy tests: an nginx with `ssl http2` serving makeSite()'s directory
 * (the reference), a node:http2 client request that returns status, headers in wire order and
 * body, the ALPN a TLS handshake settles on, and a raw reader of the first frames a server sends
 * (SETTINGS, WINDOW_UPDATE) for the fingerprint comparison.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import tls from 'node:tls';
import { exchange, nginxServingSite, splitResponse, type Nginx } from './fixtures.js';

export const H2_HOST = 'h2.example';

export interface H2Site {
  readonly root: string;
  readonly cert: string;
  readonly key: string;
  readonly nginx: Nginx;
  stop(): Promise<void>;
}

/** makeSite() on disk, a certificate for H2_HOST, and nginx serving both over TLS with `http2`. */
export async function nginxH2Site(prefix: string, extraConf = ''): Promise<H2Site> {
  const site = await nginxServingSite(prefix, extraConf, H2_HOST);
  const { cert, key } = site.tls!;
  return { root: site.root, cert, key, nginx: site.nginx, stop: () => site.stop() };
}

export interface H2Answer {
  status: number;
  /** Response header fields in wire order (`:status` left out), repeated fields repeated. */
  headers: Array<[string, string]>;
  body: Buffer;
}

/** One request over `session` (pseudo-headers default to GET https://H2_HOST/). */
export function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: string,
): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request(
      { ':method': 'GET', ':authority': H2_HOST, ...headers },
      { endStream: body === undefined },
    );
    let status = 0;
    const fields: Array<[string, string]> = [];
    const chunks: Buffer[] = [];
    // The third argument is the raw field list, so a repeated field stays two entries.
    const onResponse = (h: http2.IncomingHttpHeaders, _flags: number, raw: string[]): void => {
      status = Number(h[':status']);
      for (let i = 0; i + 1 < raw.length; i += 2)
        if (!raw[i]!.startsWith(':')) fields.push([raw[i]!, raw[i + 1]!]);
    };
    req.on('response', onResponse as (h: http2.IncomingHttpHeaders, flags: number) => void);
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => resolve({ status, headers: fields, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}

/** A POST on `session` announcing a 5-byte body it never sends (no END_STREAM); errors ignored. */
export function h2StalledPost(session: http2.ClientHttp2Session, path: string): http2.ClientHttp2Stream {
  const s = session.request(
    { ':path': path, ':method': 'POST', ':authority': H2_HOST, 'content-length': '5' },
    { endStream: false },
  );
  s.on('error', () => undefined);
  s.resume();
  return s;
}

/** An h2 session to 127.0.0.1:port trusting `ca` (for H2_HOST). */
export async function h2Connect(port: number, ca: string): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca, servername: H2_HOST });
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  session.on('error', () => {});
  return session;
}

/** The ALPN protocol the server picks when the client offers `offer` (false: none agreed). */
export async function negotiatedAlpn(
  port: number,
  ca: string,
  offer: string[] | undefined,
): Promise<string | false> {
  const s = tls.connect({
    port,
    host: '127.0.0.1',
    servername: H2_HOST,
    ca,
    ...(offer ? { ALPNProtocols: offer } : {}),
  });
  await new Promise((resolve, reject) => {
    s.once('secureConnect', resolve);
    s.once('error', reject);
  });
  const p = s.alpnProtocol ?? false;
  s.destroy();
  return p;
}

export interface H2Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

export const FRAME = { DATA: 0, HEADERS: 1, SETTINGS: 4, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;

/** A HEADERS frame (END_STREAM, END_HEADERS) for GET https://H2_HOST`path` on stream 1, HPACK without Huffman. */
function getRequestFrame(path: string): Buffer {
  const literal = (nameIndex: number, value: string): Buffer =>
    Buffer.concat([Buffer.from([nameIndex, value.length]), Buffer.from(value)]);
  const block = Buffer.concat([Buffer.from([0x82, 0x87]), literal(4, path), literal(1, H2_HOST)]);
  return Buffer.concat([Buffer.from([0, 0, block.length, 1, 0x05, 0, 0, 0, 1]), block]);
}

/**
 * Connect with ALPN h2, send the client preface, an empty SETTINGS and (with `path`) one GET, and
 * collect the frames the server sends within `waitMs` (at most 64 frames).
 */
export async function serverFrames(
  port: number,
  ca: string,
  waitMs = 400,
  path?: string,
): Promise<H2Frame[]> {
  const s = tls.connect({ port, host: '127.0.0.1', servername: H2_HOST, ca, ALPNProtocols: ['h2'] });
  const frames: H2Frame[] = [];
  let buf = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => s.destroy(), waitMs);
    s.once('secureConnect', () => {
      assert.equal(s.alpnProtocol, 'h2');
      const preface = Buffer.concat([
        Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
        Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
      ]);
      s.write(path === undefined ? preface : Buffer.concat([preface, getRequestFrame(path)]));
    });
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9 && frames.length < 64) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        frames.push({
          type: buf[3] ?? 0,
          flags: buf[4] ?? 0,
          stream: buf.readUInt32BE(5) & 0x7fffffff,
          payload: buf.subarray(9, 9 + len),
        });
        buf = buf.subarray(9 + len);
      }
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return frames;
}

/** A server's h2 fingerprint: its SETTINGS (id=value, in order) and its connection WINDOW_UPDATE. */
export function h2Fingerprint(frames: H2Frame[]): { settings: string; windowUpdate: number | undefined } {
  const settings = frames.find((f) => f.type === FRAME.SETTINGS && (f.flags & 1) === 0);
  assert.ok(settings, 'the server sent SETTINGS');
  const pairs: string[] = [];
  for (let i = 0; i + 6 <= settings.payload.length; i += 6)
    pairs.push(`${settings.payload.readUInt16BE(i)}=${settings.payload.readUInt32BE(i + 2)}`);
  const wu = frames.find((f) => f.type === FRAME.WINDOW_UPDATE && f.stream === 0);
  return {
    settings: pairs.join(';'),
    windowUpdate: wu ? wu.payload.readUInt32BE(0) & 0x7fffffff : undefined,
  };
}

/**
 * For each path: the same status and body over h2 (`session`) as over HTTP/1.1 (a fresh TLS
 * connection offering only http/1.1), and the same fields in the same order, lower-case, minus
 * HTTP/1's Connection.
 */
export async function assertSameAsHttp1(
  session: http2.ClientHttp2Session,
  port: number,
  ca: string,
  paths: string[],
): Promise<void> {
  for (const path of paths) {
    const h2 = await h2Request(session, { ':path': path });
    const tlsOpts = { servername: H2_HOST, ca, ALPNProtocols: ['http/1.1'] };
    const h1 = splitResponse(
      (await exchange(port, `GET ${path} HTTP/1.1\r\nHost: ${H2_HOST}\r\n\r\n`, { tls: tlsOpts })).text,
    );
    assert.equal(h2.status, h1.status, path);
    assert.equal(h2.body.toString('latin1'), h1.body, path);
    const h1Fields = h1.headers.map((l) => l.split(':')[0]!.toLowerCase()).filter((k) => k !== 'connection');
    assert.deepEqual(
      h2.headers.map(([k]) => k),
      h1Fields,
      path,
    );
  }
}
