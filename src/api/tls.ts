import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmod, readFile, rename, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeDirs } from '../shared/fs.js';

const run = promisify(execFile);

export interface ApiCertificate {
  key: string;
  cert: string;
  /** SHA-256 of the DER certificate, upper-case hex without colons (the Outline access config form). */
  sha256: string;
}

export const CERT_FILE = 'api-cert.pem';
export const KEY_FILE = 'api-key.pem';

export function certSha256(pem: string): string {
  return new X509Certificate(pem).fingerprint256.replace(/:/g, '').toUpperCase();
}

/**
 * Load the API's self-signed certificate from `dataDir`, creating it on first start with the
 * openssl CLI (node:crypto cannot issue X.509 certificates). The subject names `hostname`.
 */
export async function ensureCertificate(dataDir: string, hostname: string): Promise<ApiCertificate> {
  const certPath = join(dataDir, CERT_FILE);
  const keyPath = join(dataDir, KEY_FILE);
  try {
    const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
    return { cert, key, sha256: certSha256(cert) };
  } catch {
    // create below
  }
  makeDirs(dataDir); // not recursive mkdir: it hangs on /proc (see makeDirs)
  const tmpCert = `${certPath}.tmp`;
  const tmpKey = `${keyPath}.tmp`;
  const san = isIP(hostname) ? `IP:${hostname}` : `DNS:${hostname}`;
  const cn = hostname.replace(/[^A-Za-z0-9.:-]/g, '') || 'ladder';
  try {
    await run(
      'openssl',
      [
        'req',
        '-x509',
        '-nodes',
        '-days',
        '3650',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-subj',
        `/CN=${cn}`,
        '-addext',
        `subjectAltName=${san}`,
        '-keyout',
        tmpKey,
        '-out',
        tmpCert,
      ],
      { timeout: 20_000 },
    );
  } catch (err) {
    await Promise.all([rm(tmpCert, { force: true }), rm(tmpKey, { force: true })]);
    const why =
      (err as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'the openssl command is not installed'
        : String((err as Error).message);
    throw new Error(`cannot create the API certificate in ${dataDir}: ${why}`, { cause: err });
  }
  await chmod(tmpKey, 0o600);
  await rename(tmpKey, keyPath);
  await rename(tmpCert, certPath);
  const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  return { cert, key, sha256: certSha256(cert) };
}
