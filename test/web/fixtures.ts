/**
 * Fixtures for the web-front tests: raw HTTP exchanges (bytes in, bytes and close behaviour out),
 * a private nginx (its own conf, pid and logs in a temp dir, `daemon off`, a child of the test),
 * self-signed certificates made with openssl, and a small directory to serve.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import type { UpgradeHandler } from '../../src/server/web/front.js';
import { freePort } from '../helpers/net.js';
import { spawnPeer, which, type Peer } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';

export interface Exchange {
  /** Everything received, as latin1 text. */
  text: string;
  /** 'open' (still open after the idle wait), 'fin' or 'rst'. */
  close: 'open' | 'fin' | 'rst';
}

/** Send `payload` on a fresh connection; collect until the peer closes or `idleMs` of silence. */
export function exchange(
  port: number,
  payload: string | Buffer,
  opts: { idleMs?: number; tls?: tls.ConnectionOptions } = {},
): Promise<Exchange> {
  const idleMs = opts.idleMs ?? 300;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let close: Exchange['close'] = 'open';
    const s: net.Socket = opts.tls
      ? tls.connect({ port, host: '127.0.0.1', ...opts.tls })
      : net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        s.destroy();
      }, idleMs);
    };
    s.once(opts.tls ? 'secureConnect' : 'connect', () => {
      s.write(payload);
      arm();
    });
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      arm();
    });
    s.on('end', () => {
      close = 'fin';
      s.end();
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET') close = 'rst';
      else if (chunks.length === 0) reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), close });
    });
  });
}

/** Mask what legitimately differs between two servers: Date values and the listening ports. */
export function mask(text: string, ports: number[] = []): string {
  let t = text.replace(/^Date: .*$/gim, 'Date: <date>');
  for (const p of ports) t = t.split(`:${p}`).join(':<port>');
  return t;
}

/** Split a raw response into head (lower-cased header lines) and body. */
export function splitResponse(text: string): { status: number; headers: string[]; body: string } {
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const lines = head.split('\r\n');
  return {
    status: Number((lines[0] ?? '').split(' ')[1]),
    headers: lines.slice(1),
    body: end < 0 ? '' : text.slice(end + 4),
  };
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `ladder-${prefix}-`));
  chmodSync(path, 0o755); // nginx's workers run as another user when the tests run as root
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A small site on disk with fixed mtimes: pages, css, a sub-directory, an empty one, a symlink out. */
export function makeSite(root: string, outside: string): void {
  const when = new Date('2026-03-14T09:26:53Z');
  const files: Record<string, string | Buffer> = {
    'index.html':
      '<!DOCTYPE html>\n<html><head><title>Home</title></head><body><h1>Welcome</h1></body></html>\n',
    'about.html': '<p>About us</p>\n',
    'css/site.css': 'body { color: #333 }\n',
    'js/app.js': 'console.log(1);\n',
    'img/logo.png': Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'),
    'docs/index.html': '<p>docs</p>\n',
    'data.bin': Buffer.alloc(3000, 7),
    'robots.txt': 'User-agent: *\nDisallow: /private/\n',
    'NOTES.TXT': 'upper-case extension\n',
  };
  for (const [name, body] of Object.entries(files)) {
    const p = join(root, name);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, body);
    utimesSync(p, when, when);
  }
  mkdirSync(join(root, 'empty'), { recursive: true });
  writeFileSync(join(outside, 'secret.txt'), 'outside the root\n');
  symlinkSync(join(outside, 'secret.txt'), join(root, 'escape.txt'));
}

export const nginxSkip = (): string | false =>
  skipUnless(which('nginx') !== undefined, 'nginx missing (apt-get install nginx)');
export const opensslSkip = (): string | false =>
  skipUnless(which('openssl') !== undefined, 'openssl missing (apt-get install openssl)');

export interface Nginx extends Peer {
  readonly port: number;
  readonly dir: string;
}

/**
 * Run nginx with `serverBlock` (the `server { … }` body; `{{PORT}}` is replaced by a free port)
 * inside a minimal http context, everything under a temp dir. Stopped and removed by `stop()`.
 */
export async function startNginx(serverBlock: string): Promise<Nginx> {
  const dir = tempDir('nginx');
  const port = await freePort();
  const conf = `
pid ${dir.path}/nginx.pid;
error_log ${dir.path}/error.log warn;
worker_processes 1;
events { worker_connections 128; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log off;
  server_tokens off;
  client_body_temp_path ${dir.path}/body;
  proxy_temp_path ${dir.path}/proxy;
  fastcgi_temp_path ${dir.path}/fastcgi;
  uwsgi_temp_path ${dir.path}/uwsgi;
  scgi_temp_path ${dir.path}/scgi;
  server {
${serverBlock.split('{{PORT}}').join(String(port))}
  }
}
`;
  writeFileSync(join(dir.path, 'nginx.conf'), conf);
  const peer = await spawnPeer(
    'nginx',
    'nginx',
    ['-c', join(dir.path, 'nginx.conf'), '-p', dir.path, '-g', 'daemon off;'],
    {
      waitPort: port,
    },
  );
  return {
    ...peer,
    port,
    dir: dir.path,
    output: () => peer.output(),
    get exited() {
      return peer.exited;
    },
    async stop(graceMs?: number) {
      await peer.stop(graceMs);
      dir.remove();
    },
  };
}

/**
 * An nginx `location` proxying WebSocket upgrades (and everything else) to `upstream` the way a CDN
 * does: connecting from 127.0.0.3, Host kept, the client appended to X-Forwarded-For.
 */
export function wsProxyLocation(prefix: string, upstream: string): string {
  return `
    location ${prefix} {
      proxy_pass ${upstream};
      proxy_http_version 1.1;
      proxy_bind 127.0.0.3;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 300s;
    }`;
}

/** A self-signed certificate for `cn` (also as DNS/IP SANs), made by openssl. */
export function makeCert(
  dir: string,
  cn: string,
  name = cn,
): { cert: string; key: string; certPath: string; keyPath: string } {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  const san = /^\d+\.\d+\.\d+\.\d+$/.test(cn) ? `IP:${cn}` : `DNS:${cn},IP:127.0.0.1`;
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      `subjectAltName=${san}`,
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ],
    { stdio: 'ignore' },
  );
  return {
    certPath,
    keyPath,
    cert: readFileSync(certPath, 'utf8'),
    key: readFileSync(keyPath, 'utf8'),
  };
}

export interface TestCa {
  /** The root certificate (PEM) and its file, for clients to trust. */
  caPem: string;
  caPath: string;
  /** A leaf for `name` (DNS SAN, plus IP:127.0.0.1) signed by the root: files and PEM. */
  certPath: string;
  keyPath: string;
  cert: string;
  key: string;
}

/** A test CA (its own root, not trusted by anything unless told) and one server certificate from it. */
export function makeCa(dir: string, name: string): TestCa {
  const caKey = join(dir, 'ca.key');
  const caPath = join(dir, 'ca.crt');
  const keyPath = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const certPath = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const openssl = (args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });
  openssl([
    'req',
    '-x509',
    ...ec,
    '-days',
    '2',
    '-subj',
    '/CN=Ladder Test Root',
    '-keyout',
    caKey,
    '-out',
    caPath,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  openssl(['req', '-new', ...ec, '-subj', `/CN=${name}`, '-keyout', keyPath, '-out', csr]);
  writeFileSync(
    ext,
    `subjectAltName=DNS:${name},IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`,
  );
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    caPath,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    ext,
    '-out',
    certPath,
  ]);
  return {
    caPem: readFileSync(caPath, 'utf8'),
    caPath,
    certPath,
    keyPath,
    cert: readFileSync(certPath, 'utf8'),
    key: readFileSync(keyPath, 'utf8'),
  };
}

export const WS_UPGRADE_HEADERS =
  'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
const BROWSER =
  'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n';

/** Requests compared byte for byte; `{{H}}` is the Host header line. */
export const DECOY_REQUESTS: string[] = [
  'GET / HTTP/1.1\r\n{{H}}' + BROWSER + '\r\n',
  'HEAD / HTTP/1.1\r\n{{H}}\r\n',
  'GET /about.html HTTP/1.1\r\n{{H}}\r\n',
  'GET /css/site.css HTTP/1.1\r\n{{H}}\r\n',
  'GET /js/app.js HTTP/1.1\r\n{{H}}\r\n',
  'GET /img/logo.png HTTP/1.1\r\n{{H}}\r\n',
  'GET /NOTES.TXT HTTP/1.1\r\n{{H}}\r\n',
  'GET /robots.txt HTTP/1.1\r\n{{H}}\r\n',
  'GET /favicon.ico HTTP/1.1\r\n{{H}}\r\n',
  'GET /missing HTTP/1.1\r\n{{H}}\r\n',
  'GET /docs HTTP/1.1\r\n{{H}}\r\n',
  'GET /docs?x=1 HTTP/1.1\r\n{{H}}\r\n',
  'GET /docs/ HTTP/1.1\r\n{{H}}\r\n',
  'GET /empty/ HTTP/1.1\r\n{{H}}\r\n',
  'GET /nothere/ HTTP/1.1\r\n{{H}}\r\n',
  'GET //css///site.css HTTP/1.1\r\n{{H}}\r\n',
  'GET /css/../index.html HTTP/1.1\r\n{{H}}\r\n',
  'GET /../etc/passwd HTTP/1.1\r\n{{H}}\r\n',
  'GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n{{H}}\r\n',
  'GET /a%00b HTTP/1.1\r\n{{H}}\r\n',
  'GET /index.html/x HTTP/1.1\r\n{{H}}\r\n',
  'POST / HTTP/1.1\r\n{{H}}Content-Length: 5\r\n\r\nhello',
  'POST /missing HTTP/1.1\r\n{{H}}Content-Length: 0\r\n\r\n',
  'OPTIONS / HTTP/1.1\r\n{{H}}\r\n',
  'PUT /x HTTP/1.1\r\n{{H}}Content-Length: 0\r\n\r\n',
  'GET / HTTP/1.1\r\n{{H}}If-None-Match: "69b529dd-5b"\r\n\r\n',
  'GET /css/site.css HTTP/1.1\r\n{{H}}If-Modified-Since: Sat, 14 Mar 2026 09:26:53 GMT\r\n\r\n',
  'GET /data.bin HTTP/1.1\r\n{{H}}Range: bytes=10-19\r\n\r\n',
  'GET /data.bin HTTP/1.1\r\n{{H}}Range: bytes=-5\r\n\r\n',
  'GET /data.bin HTTP/1.1\r\n{{H}}Range: bytes=5000-\r\n\r\n',
  'GET / HTTP/1.1\r\n{{H}}Connection: close\r\n\r\n',
  'GET / HTTP/1.0\r\n\r\n',
  'GET /docs HTTP/1.0\r\n\r\n',
  'GET / HTTP/1.1\r\n\r\n',
  // Keep-alive: two requests pipelined on one connection.
  'GET /robots.txt HTTP/1.1\r\n{{H}}\r\nGET /about.html HTTP/1.1\r\n{{H}}\r\n',
  // Wrong-path upgrades are answered like any request; the connection stays usable.
  'GET / HTTP/1.1\r\n{{H}}' + WS_UPGRADE_HEADERS + '\r\n',
  'GET /ws HTTP/1.1\r\n{{H}}' + WS_UPGRADE_HEADERS + '\r\n',
  'GET /chat?room=1 HTTP/1.1\r\n{{H}}' + WS_UPGRADE_HEADERS + '\r\nGET /robots.txt HTTP/1.1\r\n{{H}}\r\n',
  'HEAD /about.html HTTP/1.1\r\n{{H}}' + WS_UPGRADE_HEADERS + '\r\n',
  'GET / HTTP/1.1\r\n{{H}}Connection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n',
  // Garbage.
  '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n',
  'hello\r\n\r\n',
  'GET / HTTP/1.1\r\nHost x\r\n\r\n',
  'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
  'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
  'GET * HTTP/1.1\r\n{{H}}\r\n',
  'GET http://other.example/css/site.css HTTP/1.1\r\n{{H}}\r\n',
];

/**
 * nginx serving makeSite()'s directory (plus `extraConf` in its server block), all in a temp dir;
 * with `tlsName`, over TLS with `http2` on a self-signed certificate for that name (returned).
 */
export async function nginxServingSite(
  prefix: string,
  extraConf = '',
  tlsName?: string,
): Promise<{ root: string; nginx: Nginx; tls?: { cert: string; key: string }; stop(): Promise<void> }> {
  const tmp = tempDir(prefix);
  const root = join(tmp.path, 'www');
  const outside = join(tmp.path, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  makeSite(root, outside);
  try {
    const c = tlsName === undefined ? undefined : makeCert(tmp.path, tlsName);
    const listen = c ? ` ssl http2; ssl_certificate ${c.certPath}; ssl_certificate_key ${c.keyPath}` : '';
    const nginx = await startNginx(`listen 127.0.0.1:{{PORT}}${listen}; root ${root}; ${extraConf}`);
    return {
      root,
      nginx,
      ...(c ? { tls: { cert: c.cert, key: c.key } } : {}),
      async stop() {
        await nginx.stop();
        tmp.remove();
      },
    };
  } catch (err) {
    tmp.remove();
    throw err;
  }
}

/**
 * One test per DECOY_REQUESTS entry: the answer through the front must equal nginx's direct
 * answer byte for byte (Date and ports masked), close behaviour included. `{{H}}` becomes
 * `frontHost` / `directHost()` respectively.
 */
export function decoyComparisonTests(
  ports: () => { front: number; direct: number },
  frontHost: string,
  directHost: () => string,
  requests: readonly string[] = DECOY_REQUESTS,
): void {
  for (const raw of requests) {
    test(JSON.stringify(raw.slice(0, 60)), async () => {
      const { front, direct } = ports();
      const [d, f] = await Promise.all([
        exchange(direct, raw.split('{{H}}').join(`Host: ${directHost()}\r\n`)),
        exchange(front, raw.split('{{H}}').join(`Host: ${frontHost}\r\n`)),
      ]);
      assert.ok(d.text.length > 0, 'nginx answered');
      assert.equal(mask(f.text, [front, direct]), mask(d.text, [front, direct]));
      assert.equal(f.close, d.close);
    });
  }
}

/**
 * A stand-in for the WebSocket endpoints: accepts a genuine WebSocket upgrade to `${secret}/tcp`
 * (query ignored), records the client address it was given, echoes every message; refuses
 * everything else untouched (so the front serves the decoy).
 */
export function echoEndpoint(secret: string, seen: string[]): { onUpgrade: UpgradeHandler; close(): void } {
  const wss = new WebSocketServer({ noServer: true });
  return {
    onUpgrade(req: IncomingMessage, socket, head, clientAddress) {
      const path = (req.url ?? '').split('?')[0];
      if (
        path !== `${secret}/tcp` ||
        (req.headers.upgrade ?? '').toLowerCase() !== 'websocket' ||
        !req.headers['sec-websocket-key']
      )
        return false;
      seen.push(clientAddress);
      wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m, binary) => ws.send(m, { binary })));
      return true;
    },
    close() {
      for (const c of wss.clients) c.terminate();
      wss.close();
    },
  };
}
