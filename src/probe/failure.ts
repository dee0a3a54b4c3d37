/**
 * OONI-style failure strings (ooni/spec data-formats/df-007-errors) from Node errors, so a
 * measurement says how a step failed in the vocabulary OONI's tools read.
 */
export type Failure = string | null;

/** A step that gave up after its deadline (kept distinct so callers can tell it from a reset). */
export class ProbeTimeout extends Error {
  readonly code = 'ETIMEDOUT';
}

const BY_CODE: Readonly<Record<string, string>> = {
  ECONNRESET: 'connection_reset',
  EPIPE: 'connection_reset',
  // A ShadowTLS handshake its server's port reset (transport/shadowtls-reset.ts): a reset.
  ERR_SHADOWTLS_RESET: 'connection_reset',
  ECONNREFUSED: 'connection_refused',
  ETIMEDOUT: 'generic_timeout_error',
  ERR_CONNECT_TIMEOUT: 'generic_timeout_error',
  EHOSTUNREACH: 'host_unreachable',
  ENETUNREACH: 'network_unreachable',
  ENOTFOUND: 'dns_nxdomain_error',
  ENODATA: 'dns_no_answer',
  ESERVFAIL: 'dns_server_failure',
  ERR_TLS_CERT_ALTNAME_INVALID: 'ssl_invalid_hostname',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'ssl_unknown_authority',
  SELF_SIGNED_CERT_IN_CHAIN: 'ssl_unknown_authority',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'ssl_unknown_authority',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'ssl_unknown_authority',
  CERT_HAS_EXPIRED: 'ssl_invalid_certificate',
  CERT_NOT_YET_VALID: 'ssl_invalid_certificate',
  ERR_SSL_WRONG_VERSION_NUMBER: 'ssl_failed_handshake',
  ERR_PROBE_POLICY: 'refused_by_policy',
};

/** The OONI failure string for an error (unknown codes keep their code, prefixed). */
export function failureOf(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  if (BY_CODE[code]) return BY_CODE[code];
  // A web front that refused the upgrade (transport/upgrade-refused.ts): its HTTP status.
  if (code === 'ERR_UPGRADE_REFUSED')
    return `upgrade_refused: HTTP ${(err as { status?: number }).status ?? '?'}`;
  // A dial error (ERR_CONNECT) wraps the socket's errno: a tunnel to a server that refused.
  const cause = (err as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  if (typeof cause === 'string' && BY_CODE[cause]) return BY_CODE[cause];
  const msg = typeof e?.message === 'string' ? e.message : '';
  if (/before secure TLS connection was established|socket hang up|connection closed/i.test(msg))
    return 'eof_error';
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return 'ssl_failed_handshake';
  return `unknown_failure: ${code || msg.slice(0, 80) || 'error'}`;
}

export const isTimeout = (f: Failure): boolean => f === 'generic_timeout_error';

/** Race `p` against a real-time deadline; `onTimeout` cleans up (destroys sockets). */
export function withTimeout<T>(p: Promise<T>, ms: number, onTimeout?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(new ProbeTimeout(`no answer within ${ms} ms`));
    }, ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
