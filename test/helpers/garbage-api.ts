/**
 * A management API that answers what a test asks (a proxy's page, JSON of the wrong shape): a
 * pinned HTTPS server on loopback, for `ladder keys --api` to meet. The answer is chosen by the
 * request (its method and path; the apiUrl's secret path can name a mode).
 */
import https from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { ensureCertificate } from '../../src/api/tls.js';

export interface GarbageApi {
  port: number;
  /** The certificate's fingerprint, for --cert-sha256. */
  sha256: string;
  /** A temporary directory (removed after the test), the runs' working directory. */
  dir: string;
}

export async function startGarbageApi(
  t: TestContext,
  answer: (method: string, url: string) => [status: number, body: string],
): Promise<GarbageApi> {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-fuzz-api-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = await ensureCertificate(dir, '127.0.0.1');
  const srv = https.createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    req.resume();
    const [status, body] = answer(req.method ?? '', req.url ?? '');
    res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  return { port: (srv.address() as AddressInfo).port, sha256: cert.sha256, dir };
}
