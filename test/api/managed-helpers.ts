import { createServer, type AddressInfo, type Server } from 'node:net';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';

/** What the managed-server tests share: the pinned API call, an echo origin, the flags. */

export type Json = Record<string, unknown>;

export function api(
  cfg: { apiUrl: string; certSha256: string },
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpsRequest(
      cfg.apiUrl + path,
      {
        method,
        rejectUnauthorized: false,
        agent: false,
        headers:
          payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const fp = (res.socket as TLSSocket).getPeerCertificate().fingerprint256.replace(/:/g, '');
        if (fp !== cfg.certSha256) return reject(new Error('certificate pin mismatch'));
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** An echo origin that counts the connections it accepted. */
export async function countingEcho(t: {
  after: (fn: () => Promise<void>) => void;
}): Promise<{ port: number; count: () => number }> {
  let n = 0;
  const srv: Server = createServer((s) => {
    n++;
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => srv.close(() => r())));
  return { port: (srv.address() as AddressInfo).port, count: () => n };
}

export async function echoServer(t: { after: (fn: () => Promise<void>) => void }): Promise<number> {
  const srv: Server = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => srv.close(() => r())));
  return (srv.address() as AddressInfo).port;
}

export const flags = (dataDir: string) => ({
  dataDir,
  port: '0',
  host: '127.0.0.1',
  publicHost: '127.0.0.1',
  apiPort: '0',
  apiHost: '127.0.0.1',
  metricsPort: '0',
  allowPrivate: true,
});
