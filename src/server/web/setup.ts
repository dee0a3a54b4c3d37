/**
 * One call for the CLI: turn the web-front settings (flags or config keys) into running
 * listeners — the decoy, the trusted-proxy list, TLS from files or from ACME (with the plain
 * HTTP-01 listener and hot-swapped renewals), and the web front itself. Settings are validated
 * before anything listens; errors name the flag.
 */
import type { PendingCaps } from '../pending-limits.js';
import { readFile } from 'node:fs/promises';
import { systemClock, type Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import { RepeatLimiter } from '../../shared/repeat-limiter.js';
import type { Acme } from './acme.js';
import { parseDecoy } from './decoy.js';
import {
  startWebFront,
  validateSecretPath,
  type H2TunnelHandler,
  type UpgradeHandler,
  type WebFront,
  type WebFrontTls,
} from './front.js';
import { parseTrustedProxies } from './trust-proxy.js';

export interface WebServiceSettings {
  /** --web-port */
  port: number;
  /** --web-host (default 0.0.0.0) */
  host?: string;
  /** --web-path: '/SECRET' (the caller generates and stores one when the user gave none). */
  secretPath: string;
  /** --decoy: 'builtin' (default) | 'dir:PATH' | PATH | 'https://…' */
  decoy?: string;
  /** --decoy-h2 on|off: offer ALPN h2 on the TLS web port for the decoy (default on). */
  decoyH2?: boolean;
  /** Seed for the builtin decoy's wording (stable per server; e.g. derived from stored state). */
  decoySeed?: string | Buffer;
  /** --tls-cert / --tls-key: PEM file paths. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** --acme DOMAIN[,DOMAIN…] (exclusive with the TLS files). */
  acmeDomains?: readonly string[];
  /** --acme-email */
  acmeEmail?: string;
  /** --acme-directory (default Let's Encrypt production) */
  acmeDirectoryUrl?: string;
  /** --acme-http-port: where HTTP-01 challenges are answered (default 80). */
  acmeHttpPort?: number;
  /** Test CA for the ACME server's HTTPS (pebble); not a user flag. */
  acmeDirectoryCa?: string | Buffer;
  /** Where ACME keeps its account and certificates (the server's data dir). */
  dataDir?: string;
  /** --trust-proxy CIDR (repeatable) */
  trustProxy?: readonly string[];
  /** --max-pending-per-ip / --max-pending (WebFrontOptions.pending); unset: the defaults. */
  pending?: PendingCaps | undefined;
  logger?: Logger;
  /** Time for the decoy upstream warning's window (tests; default the system clock). */
  clock?: Clock;
}

export interface WebService {
  readonly front: WebFront;
  /** The plain HTTP-01 listener when ACME is on. */
  readonly challengeFront?: WebFront;
  readonly acme?: Acme;
  close(): Promise<void>;
}

/** Check the settings without starting anything (for `--check`-style validation). */
export function validateWebSettings(s: WebServiceSettings): void {
  validateSecretPath(s.secretPath);
  if (!Number.isInteger(s.port) || s.port < 0 || s.port > 65535)
    throw new Error(`--web-port: expected 0..65535, got ${s.port}`);
  if (s.trustProxy) parseTrustedProxies(s.trustProxy);
  const files = s.tlsCertFile !== undefined || s.tlsKeyFile !== undefined;
  if (files && (s.tlsCertFile === undefined || s.tlsKeyFile === undefined))
    throw new Error('--tls-cert and --tls-key go together');
  if (files && s.acmeDomains?.length) throw new Error('--acme and --tls-cert/--tls-key are exclusive');
  if (s.acmeDomains?.length && s.dataDir === undefined)
    throw new Error('--acme needs a data directory for its account and certificates');
}

/**
 * Start the web front (and, with ACME, its challenge listener) for `onUpgrade` and, when given,
 * `onH2Tunnel` (gRPC calls on the secret path).
 */
export async function startWebService(
  s: WebServiceSettings,
  onUpgrade: UpgradeHandler,
  onH2Tunnel?: H2TunnelHandler,
): Promise<WebService> {
  validateWebSettings(s);
  const logger = s.logger;
  const common = {
    host: s.host ?? '0.0.0.0',
    secretPath: s.secretPath,
    ...(s.trustProxy ? { trustProxy: s.trustProxy } : {}),
    ...(s.pending ? { pending: s.pending } : {}),
    ...(logger ? { logger } : {}),
  };
  // A proxied decoy whose upstream fails (refused, untrusted certificate, timeout) shows visitors
  // nginx's 502/504: the operator hears why at once, and the failures of the next minute as one
  // count (by error code) when it ends.
  const upstreamMsg = 'decoy upstream request failed: visitors get an error page instead of the site';
  const upstreamFailures = new RepeatLimiter({
    clock: s.clock ?? systemClock,
    windowMs: 60_000,
    maxKinds: 1,
    onRepeats: (_kind, count, codes) =>
      logger?.warn({ alsoFailedSinceLastWarning: count, codes: Object.fromEntries(codes) }, upstreamMsg),
  });
  const onUpstreamError = (code: string): void => {
    if (upstreamFailures.hit('decoy upstream', code)) logger?.warn({ code }, upstreamMsg);
  };
  const newDecoy = () =>
    parseDecoy(s.decoy, { ...(s.decoySeed === undefined ? {} : { seed: s.decoySeed }), onUpstreamError });

  let tls: WebFrontTls | undefined;
  let acme: Acme | undefined;
  let challengeFront: WebFront | undefined;
  let front: WebFront | undefined;
  if (s.tlsCertFile !== undefined && s.tlsKeyFile !== undefined) {
    tls = { cert: await readFile(s.tlsCertFile), key: await readFile(s.tlsKeyFile) };
  } else if (s.acmeDomains?.length) {
    // acme-client (with axios) loads only for --acme: a web front with its own certificate or
    // behind a proxy does not pay its start-up time and memory.
    const { createAcme } = await import('./acme.js');
    acme = createAcme({
      domains: s.acmeDomains,
      dataDir: s.dataDir ?? '',
      ...(s.acmeDirectoryUrl ? { directoryUrl: s.acmeDirectoryUrl } : {}),
      ...(s.acmeEmail ? { email: s.acmeEmail } : {}),
      ...(s.acmeDirectoryCa ? { directoryCa: s.acmeDirectoryCa } : {}),
      ...(logger ? { logger } : {}),
      onCertificate: (c) => front?.setTlsCredentials(c),
    });
    // The challenge listener is an ordinary decoy site too; it never takes upgrades.
    challengeFront = await startWebFront({
      ...common,
      port: s.acmeHttpPort ?? 80,
      decoy: newDecoy(),
      onUpgrade: () => false,
      http01: acme.http01,
    });
    try {
      tls = await acme.start();
    } catch (err) {
      acme.stop();
      await challengeFront.close();
      throw err;
    }
  }
  try {
    front = await startWebFront({
      ...common,
      port: s.port,
      decoy: newDecoy(),
      onUpgrade,
      ...(onH2Tunnel ? { onH2Tunnel } : {}),
      ...(tls ? { tls } : {}),
      ...(s.decoyH2 === false ? { h2: false } : {}),
    });
  } catch (err) {
    acme?.stop();
    await challengeFront?.close();
    throw err;
  }
  const started = front;
  return {
    front: started,
    ...(challengeFront ? { challengeFront } : {}),
    ...(acme ? { acme } : {}),
    async close() {
      acme?.stop();
      upstreamFailures.flush();
      await Promise.all([started.close(), challengeFront?.close()]);
    },
  };
}
