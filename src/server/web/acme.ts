/**
 * TLS certificates from an ACME CA (Let's Encrypt by default) for the web front, through the
 * `acme-client` package: HTTP-01 challenges answered by a plain-HTTP web front (its `http01`
 * option; port 80 in production), the account key and the certificate kept under a data
 * directory (files 0600, directory 0700), renewal at 2/3 of the certificate's lifetime, and the
 * new certificate handed to a callback that hot-swaps it into the TLS front
 * (`WebFront.setTlsCredentials`), so no connection is dropped.
 *
 * Typical wiring (what `--acme DOMAIN` does):
 *   const acme = createAcme({ domains: [domain], dataDir, onCertificate: (c) => front?.setTlsCredentials(c) });
 *   const http = await startWebFront({ port: 80, …, onUpgrade: () => false, http01: acme.http01 });
 *   const front = await startWebFront({ port: 443, tls: await acme.start(), … });
 */
import { createHash, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import acme from 'acme-client';
import { replaceFile } from '../../shared/data-file.js';
import { silentLogger, type Logger } from '../../shared/logger.js';
import type { Http01Responder } from './front.js';

/** PEM credentials (assignable to AcmeCredentials). */
export interface AcmeCredentials {
  cert: string;
  key: string;
}

export const LETSENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

export interface AcmeOptions {
  /** Names on the certificate; the first is the subject. */
  domains: readonly string[];
  /** Where the account key and certificates live (created 0700; files 0600). */
  dataDir: string;
  /** ACME directory URL (default: Let's Encrypt production). */
  directoryUrl?: string;
  /** Contact address for the ACME account (optional at Let's Encrypt). */
  email?: string;
  /** Renew when this fraction of the lifetime has passed (default 2/3). */
  renewFraction?: number;
  /** Wait this long before retrying a failed renewal (default 1 h, capped at a tenth of what is left). */
  retryDelayMs?: number;
  /** Called with each newly obtained certificate (not with one loaded from disk at start). */
  onCertificate?: (tls: AcmeCredentials) => void;
  /**
   * Extra CA certificate(s) to trust for the ACME server's own HTTPS (a test CA such as pebble's).
   * acme-client has one shared HTTP client, so this applies to every ACME client in the process.
   */
  directoryCa?: string | Buffer;
  logger?: Logger;
}

export interface Acme {
  /** Plug into the plain-HTTP front: token → key authorization while a challenge is pending. */
  readonly http01: Http01Responder;
  /**
   * Load the stored certificate if it is still good (not yet due for renewal), else obtain one;
   * then keep renewing in the background. Resolves with the credentials to serve.
   */
  start(): Promise<AcmeCredentials>;
  /** The credentials being served now. */
  current(): AcmeCredentials | undefined;
  /** Obtain a new certificate now (also what the renewal timer calls). */
  renew(): Promise<AcmeCredentials>;
  /** When the current certificate is due for renewal. */
  renewalDue(): Date | undefined;
  /** Stop the renewal timer. */
  stop(): void;
}

/** Longest delay setTimeout accepts; longer waits are re-armed. */
const MAX_TIMER = 2 ** 31 - 1;

/** A private file (a key, the certificate) replaced whole, 0600, never through a planted link. */
function writePrivate(path: string, data: string | Buffer): Promise<void> {
  return replaceFile(path, data, { mode: 0o600 });
}

async function readOptional(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** When a certificate (PEM chain; the first is the leaf) should be renewed. */
export function renewalTime(certPem: string | Buffer, fraction = 2 / 3): Date {
  const leaf = new X509Certificate(certPem);
  const from = Date.parse(leaf.validFrom);
  const to = Date.parse(leaf.validTo);
  return new Date(from + (to - from) * fraction);
}

export function createAcme(opts: AcmeOptions): Acme {
  if (opts.domains.length === 0) throw new Error('--acme: at least one domain is required');
  const log = opts.logger ?? silentLogger;
  const directoryUrl = opts.directoryUrl ?? LETSENCRYPT_DIRECTORY;
  const fraction = opts.renewFraction ?? 2 / 3;
  const dir = join(opts.dataDir, 'acme');
  // One account per ACME directory (staging and production accounts differ).
  const accountPath = join(
    dir,
    `account-${createHash('sha256').update(directoryUrl).digest('hex').slice(0, 12)}.key`,
  );
  const base = (opts.domains[0] ?? '').replace(/[^A-Za-z0-9.-]/g, '_');
  const certPath = join(dir, `${base}.crt`);
  const keyPath = join(dir, `${base}.key`);
  const pending = new Map<string, string>();
  let creds: AcmeCredentials | undefined;
  let due: Date | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let inFlight: Promise<AcmeCredentials> | undefined;

  if (opts.directoryCa !== undefined)
    acme.axios.defaults.httpsAgent = new https.Agent({ ca: opts.directoryCa });

  async function ensureDir(): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
  }

  async function accountKey(): Promise<Buffer> {
    const existing = await readOptional(accountPath);
    if (existing) return existing;
    const key = await acme.crypto.createPrivateEcdsaKey('P-256');
    await writePrivate(accountPath, key);
    return key;
  }

  // The account URL is kept beside its key: re-registering an existing key makes acme-client send
  // an empty account update, which strict servers (pebble) refuse.
  const accountUrlPath = accountPath.replace(/\.key$/, '.url');
  let client: acme.Client | undefined;

  async function getClient(): Promise<acme.Client> {
    if (client) return client;
    const accountUrl = (await readOptional(accountUrlPath))?.toString().trim();
    client = new acme.Client({
      directoryUrl,
      accountKey: await accountKey(),
      ...(accountUrl ? { accountUrl } : {}),
    });
    return client;
  }

  async function obtain(): Promise<AcmeCredentials> {
    await ensureDir();
    const client = await getClient();
    const [key, csr] = await acme.crypto.createCsr(
      { commonName: opts.domains[0] ?? '', altNames: [...opts.domains] },
      await acme.crypto.createPrivateEcdsaKey('P-256'),
    );
    const cert = await client.auto({
      csr,
      ...(opts.email === undefined ? {} : { email: opts.email }),
      termsOfServiceAgreed: true,
      challengePriority: ['http-01'],
      // acme-client would fetch http://DOMAIN/ itself first; the CA's own check is what counts.
      skipChallengeVerification: true,
      challengeCreateFn: (_authz, challenge, keyAuthorization) => {
        pending.set(challenge.token, keyAuthorization);
        return Promise.resolve();
      },
      challengeRemoveFn: (_authz, challenge) => {
        pending.delete(challenge.token);
        return Promise.resolve();
      },
    });
    await writePrivate(accountUrlPath, client.getAccountUrl());
    await writePrivate(keyPath, key);
    await writePrivate(certPath, cert);
    return { cert, key: key.toString() };
  }

  function schedule(): void {
    clearTimeout(timer);
    if (stopped || due === undefined) return;
    const wait = Math.max(0, due.getTime() - Date.now());
    timer = setTimeout(
      () => {
        if (due !== undefined && Date.now() < due.getTime()) return schedule();
        api.renew().catch((err: unknown) => {
          // Try again later, well before expiry.
          const left = creds ? Date.parse(new X509Certificate(creds.cert).validTo) - Date.now() : 0;
          const retry = Math.max(1000, Math.min(opts.retryDelayMs ?? 3_600_000, left / 10));
          log.warn({ err: (err as Error).message, retryInMs: retry }, 'acme: renewal failed');
          due = new Date(Date.now() + retry);
          schedule();
        });
      },
      Math.min(wait, MAX_TIMER),
    );
    timer.unref();
  }

  function install(c: AcmeCredentials, fresh: boolean): AcmeCredentials {
    creds = c;
    due = renewalTime(c.cert, fraction);
    log.info(
      { renewAt: due.toISOString() },
      fresh ? 'acme: certificate obtained' : 'acme: certificate loaded',
    );
    if (fresh) opts.onCertificate?.(c);
    schedule();
    return c;
  }

  const api: Acme = {
    http01: (token) => pending.get(token),
    async start() {
      await ensureDir();
      const [cert, key] = await Promise.all([readOptional(certPath), readOptional(keyPath)]);
      if (cert && key) {
        try {
          if (renewalTime(cert, fraction).getTime() > Date.now())
            return install({ cert: cert.toString(), key: key.toString() }, false);
        } catch {
          /* unreadable: obtain a new one */
        }
      }
      return api.renew();
    },
    current: () => creds,
    renewalDue: () => due,
    renew() {
      inFlight ??= obtain()
        .then((c) => install(c, true))
        .finally(() => {
          inFlight = undefined;
        });
      return inFlight;
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
  return api;
}
