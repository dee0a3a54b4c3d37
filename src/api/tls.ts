import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { replaceFile } from '../shared/data-file.js';
import { makeDirs } from '../shared/fs.js';
import { ladderCommand } from '../shared/invocation.js';
import { CertificateError } from './cert-error.js';

export { CertificateError };

const run = promisify(execFile);

export interface ApiCertificate {
  key: string;
  cert: string;
  /** SHA-256 of the DER certificate, upper-case hex without colons (the Outline access config form). */
  sha256: string;
  /** True when this call made the pair (both files were missing: this data directory's first start). */
  created?: boolean;
}

export const CERT_FILE = 'api-cert.pem';
export const KEY_FILE = 'api-key.pem';

export function certSha256(pem: string): string {
  return new X509Certificate(pem).fingerprint256.replace(/:/g, '').toUpperCase();
}

/** The command that replaces the certificate on purpose (and prints the new access config). */
export function rotateCommand(dataDir: string): string {
  return `${ladderCommand()} server rotate-cert --data-dir ${dataDir}`;
}

/**
 * The warning of a start that made the certificate for a store that has served the API before
 * (a restore or a move without the two files, or the files deleted): Outline Manager and pinned
 * ssconf:// keys no longer trust the server; what to do (docs/operations.md "Moving to a new host").
 */
export function newCertificateWarning(dataDir: string, sha256: string): string {
  const ladder = ladderCommand();
  return (
    `API certificate: ${dataDir} had no ${CERT_FILE} or ${KEY_FILE}, so this start made a new one (SHA-256 ${sha256}), ` +
    `but its key store has served the API before (a restore or a move without those files?): Outline Manager and ` +
    `ssconf:// keys with ?certSha256= pin the old certificate and no longer trust this server. ` +
    `If you have the old files: stop this server, copy both into ${dataDir} (mode 0600) and start it again. ` +
    `If not: give Outline Manager the new access config (${ladder} server access-config --data-dir ${dataDir}) ` +
    `and the users of pinned ssconf:// keys their keys again (${ladder} keys --data-dir ${dataDir} url ID; the tokens are unchanged)`
  );
}

async function readIfThere(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CertificateError(
      'CERT_DAMAGED',
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
}

/** Why a certificate/key pair cannot be served, or undefined when it can. */
function pairProblem(
  cert: string,
  key: string,
  certPath: string,
  keyPath: string,
): { file: string; why: string } | undefined {
  let x509: X509Certificate;
  let priv: KeyObject;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    return { file: certPath, why: cert.trim() === '' ? 'empty' : 'not a PEM certificate' };
  }
  try {
    priv = createPrivateKey(key);
  } catch {
    return { file: keyPath, why: key.trim() === '' ? 'empty' : 'not a PEM private key' };
  }
  if (!x509.checkPrivateKey(priv)) return { file: keyPath, why: `not the key of ${certPath}` };
  return undefined;
}

/**
 * Load the API's self-signed certificate from `dataDir`, creating it on first start (neither file
 * there) with the openssl CLI (node:crypto cannot issue X.509 certificates). A certificate or key
 * that is there but damaged, empty, alone or mismatched is refused, never replaced: Outline
 * Manager pins the fingerprint, so a silent new one would lock the operator out with no reason
 * given. `rotateCertificate` replaces it on purpose.
 */
export async function ensureCertificate(
  dataDir: string,
  hostname: string,
  /** Runs before a new pair is made (managed mode marks its first start there: crash-safe). */
  beforeCreate?: () => Promise<void>,
): Promise<ApiCertificate> {
  const certPath = join(dataDir, CERT_FILE);
  const keyPath = join(dataDir, KEY_FILE);
  const [cert, key] = await Promise.all([readIfThere(certPath), readIfThere(keyPath)]);
  if (cert === undefined && key === undefined) {
    await beforeCreate?.();
    return { ...(await createCertificate(dataDir, hostname)), created: true };
  }
  const problem =
    cert === undefined
      ? { file: certPath, why: `missing (its key ${keyPath} is there)` }
      : key === undefined
        ? { file: keyPath, why: `missing (its certificate ${certPath} is there)` }
        : pairProblem(cert, key, certPath, keyPath);
  if (problem) {
    throw new CertificateError(
      'CERT_DAMAGED',
      `API certificate: ${problem.file} is ${problem.why}; it is not replaced silently because Outline Manager ` +
        `pins the certificate. To make a new one and get the new access config: ${rotateCommand(dataDir)}`,
    );
  }
  return { cert: cert!, key: key!, sha256: certSha256(cert!) };
}

/** Replace the certificate and key on purpose (`ladder server rotate-cert`); the old ones go. */
export function rotateCertificate(dataDir: string, hostname: string): Promise<ApiCertificate> {
  return createCertificate(dataDir, hostname);
}

/** The first PEM block of `label` (`CERTIFICATE`, or any `… PRIVATE KEY`) in `text`, with its newline. */
function pemBlock(text: string, label: RegExp): string | undefined {
  const m = new RegExp(`-----BEGIN (${label.source})-----\\n[A-Za-z0-9+/=\\n]+-----END \\1-----\\n?`).exec(
    text,
  );
  return m ? `${m[0].trimEnd()}\n` : undefined;
}

/** Why a file could not be written, in words, for the errors a host's state causes. */
const WRITE_WHY: Record<string, string> = {
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is used up',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
};

async function createCertificate(dataDir: string, hostname: string): Promise<ApiCertificate> {
  const certPath = join(dataDir, CERT_FILE);
  const keyPath = join(dataDir, KEY_FILE);
  makeDirs(dataDir); // not recursive mkdir: it hangs on /proc (see makeDirs)
  const san = isIP(hostname) ? `IP:${hostname}` : `DNS:${hostname}`;
  const cn = hostname.replace(/[^A-Za-z0-9.:-]/g, '') || 'ladder';
  let cert: string | undefined;
  let key: string | undefined;
  try {
    // Both to standard output ('-'): no file holds the key until replaceFile writes it (0600).
    const { stdout } = await run(
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
        '-',
        '-out',
        '-',
      ],
      { timeout: 20_000 },
    );
    key = pemBlock(stdout, /(?:[A-Z]+ )?PRIVATE KEY/);
    cert = pemBlock(stdout, /CERTIFICATE/);
    if (key === undefined || cert === undefined) throw new Error('openssl printed no certificate or key');
  } catch (err) {
    // execFile's error holds what openssl printed (the key, if it got that far): not kept.
    if (typeof err === 'object' && err !== null) Object.assign(err, { stdout: undefined });
    const why =
      (err as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'the openssl command is not installed'
        : String((err as Error).message).split('\n')[0];
    throw new CertificateError(
      'CERT_CREATE_FAILED',
      `cannot create the API certificate in ${dataDir}: ${why}`,
      {
        cause: err,
      },
    );
  }
  // The key first: a crash between the two leaves a pair that does not match, which the next
  // start refuses with the way out (rotate-cert), as it would any other damage.
  try {
    await replaceFile(keyPath, key);
    await replaceFile(certPath, cert, { mode: 0o644 }); // public (Outline Manager is given its hash)
  } catch (err) {
    // A full disk or a read-only directory is the host's state, not a bug: one line, no stack.
    const code = (err as NodeJS.ErrnoException).code;
    throw new CertificateError(
      'CERT_CREATE_FAILED',
      `cannot write the API certificate in ${dataDir}: ${WRITE_WHY[code ?? ''] ?? code ?? String(err)}`,
      { cause: err },
    );
  }
  return { cert, key, sha256: certSha256(cert) };
}
