/**
 * What a tunnel dial's failure means and what to do about it (a web front's TLS certificate, a
 * server that is not running or not reachable), logged once per error code per process (the
 * "tunnel dial failed" line repeats for every connection; the advice need not). Names no server,
 * key or path: the error code and which key option or setting fixes it. A web front that refused
 * the upgrade (ERR_UPGRADE_REFUSED) is advised by its HTTP status (code `HTTP_404` here).
 */
import type { Logger } from '../shared/logger.js';
import { isShadowTlsReset, SHADOWTLS_RESET, shadowTlsResetAdvice } from '../transport/shadowtls-reset.js';
import { upgradeRefusalAdvice } from '../transport/upgrade-refused.js';

/** Node's codes for a certificate chain that does not lead to a trusted root. */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

const hinted = new Set<string>();

/** The advice for `code`, or undefined when it is not a certificate problem. */
export function dialHint(code: string): string | undefined {
  if (UNTRUSTED.has(code))
    return `the web front's TLS certificate is not trusted (${code}): add cert=PATH (the front's certificate or its CA, PEM) to the key's v2ray-plugin options (a WebSocket or HTTPUpgrade ss:// key; a fetched key's cert= is ignored), or, for any key (gRPC's too), start the client with NODE_EXTRA_CA_CERTS=PATH`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return `the web front's TLS certificate does not name the key's host (${code}): check the key's v2ray-plugin host= option (without it v2ray-plugin's default, cloudfront.com, is used)`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID')
    return `the web front's TLS certificate is not valid now (${code}): renew it on the server, or check this computer's clock`;
  if (code === 'ERR_SHADOWTLS_AUTH')
    return `the ShadowTLS server did not authenticate (${code}): the key's shadow-tls password= is wrong, or its address is not a ShadowTLS v3 server (the connection reached a plain TLS site)`;
  if (code === 'ERR_SHADOWTLS_HANDSHAKE')
    return `the TLS handshake through ShadowTLS failed (${code}): the key's shadow-tls host= site must speak TLS 1.3 (--log-level debug shows why)`;
  if (code === SHADOWTLS_RESET) return shadowTlsResetAdvice(code);
  const refused = /^HTTP_(\d{3}|unknown)$/.exec(code);
  return refused
    ? upgradeRefusalAdvice(refused[1] === 'unknown' ? undefined : Number(refused[1]))
    : serverDialHint(code);
}

/** The advice for a TCP connect to the server that failed, or undefined (the words `ladder probe --servers` uses). */
function serverDialHint(code: string): string | undefined {
  if (code === 'ECONNREFUSED')
    return `the server refused the connection (${code}): nothing listens on its port (is the server running? is the key's port right?), or a firewall refuses it`;
  if (code === 'ETIMEDOUT')
    return `no answer from the server (${code}): it is down, or its address is blocked on this network (try: ladder probe --servers KEY)`;
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH')
    return `the server cannot be reached from here (${code}): no route to its address (no network, or the address is blocked)`;
  return undefined;
}

/** Log the advice for a failed dial's error code, the first time that code is seen. */
export function hintDialFailureOnce(code: string | undefined, log: Logger): void {
  if (code === undefined || hinted.has(code)) return;
  const hint = dialHint(code);
  if (hint === undefined) return;
  hinted.add(code);
  log.warn({ code }, hint);
}

/**
 * The errno or TLS code behind a failed dial (its cause's code), `HTTP_404`-style for a refused
 * upgrade (ERR_UPGRADE_REFUSED, transport/dialer.ts upgradeRefused), ERR_SHADOWTLS_RESET for a
 * ShadowTLS handshake the server's port reset (its errno alone, ECONNRESET, says nothing), if any.
 */
export function dialErrno(err: unknown): string | undefined {
  const e = err as { code?: unknown; status?: unknown; cause?: { code?: string } } | undefined;
  if (e?.code === 'ERR_UPGRADE_REFUSED') return `HTTP_${typeof e.status === 'number' ? e.status : 'unknown'}`;
  if (isShadowTlsReset(err)) return SHADOWTLS_RESET;
  return (e?.cause ?? {}).code;
}
