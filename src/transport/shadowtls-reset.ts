/**
 * A ShadowTLS dial that the server's port reset during the handshake: what it means, in one line
 * for `ladder client`'s log (client/dial-hint.ts, code ERR_SHADOWTLS_RESET) and `ladder probe
 * --servers` (probe/servers.ts). A ShadowTLS v3 server relays the handshake to its site and
 * resets the client when it cannot reach that site (the server logs "handshake site cannot be
 * reached"), so the client sees only ECONNRESET. Names neither the server nor the password.
 */

/** The client-side code of a ShadowTLS handshake the server's port reset. */
export const SHADOWTLS_RESET = 'ERR_SHADOWTLS_RESET';

/** The advice for a reset ShadowTLS handshake (`code`: what the user's log line shows). */
export function shadowTlsResetAdvice(code: string): string {
  return `the ShadowTLS server reset the connection during the TLS handshake (${code}): most often it cannot reach its handshake site (the key's shadow-tls host=; the server's log then says "handshake site cannot be reached"), or that site refused the server; otherwise something between here and the server resets TLS connections to that name`;
}

/**
 * Whether a failed dial is a ShadowTLS handshake the peer reset: the dialer
 * (transport/shadowtls-dialer.ts) gives its cause this code, over the socket's ECONNRESET.
 */
export function isShadowTlsReset(err: unknown): boolean {
  return (err as { cause?: { code?: unknown } } | undefined)?.cause?.code === SHADOWTLS_RESET;
}
