/**
 * Per-connection outcome of the Shadowsocks server. The codes double as metric label values
 * (the composition root wires ServerHooks to the metrics; the server never imports metrics).
 *
 * Failures before a key is proven (and replays) all get the same wire reaction (see
 * docs/probing-defenses.md); the code only says which check failed, for counting.
 */
export const CONNECTION_STATUSES = [
  'OK', // authenticated, relayed, closed normally (including the idle timeout)
  'ERR_SHORT_HEADER', // the peer went away (or idled out) before enough bytes arrived to test every key
  'ERR_CIPHER', // no key authenticates the first chunk, or a later chunk fails authentication
  'ERR_PAYLOAD_SIZE', // an authenticated length field outside 1..0x3FFF
  'ERR_REPLAY_CLIENT', // salt already used by an earlier client connection
  'ERR_REPLAY_SERVER', // salt is one this server sent (its own response reflected back)
  'ERR_TIMESTAMP', // 2022 edition: the authenticated request timestamp is more than 30 s off
  'ERR_HEADER', // 2022 edition: authenticated header with a wrong type byte or malformed fields
  'ERR_ADDRESS', // the target address in the first chunk is malformed or incomplete
  'ERR_RESOLVE', // the destination name did not resolve
  'ERR_FORBIDDEN', // the destination resolved only to loopback/private/link-local addresses
  'ERR_CONNECT', // the destination refused, was unreachable or timed out
  'ERR_RELAY', // a socket error while relaying
  'ERR_CLOSED', // closed by the operator: key revoked/changed, or server shutting down
] as const;

export type ConnectionStatus = (typeof CONNECTION_STATUSES)[number];

export interface AuthEvent {
  readonly keyId: string;
  /** Milliseconds from accept to the key being found. */
  readonly timeToAuthMs: number;
  /**
   * Keys tried by trial decryption before (and including) the one that matched. A SIP023
   * identity group counts as one, whatever its number of users.
   */
  readonly keysTried: number;
  /** True when the key came from this client IP's recently-used list. */
  readonly recent: boolean;
  /** Shadowsocks edition of the key: 2017 (SIP004 AEAD) or 2022 (SIP022). */
  readonly edition?: 2017 | 2022;
}

export interface ConnectionClosedEvent {
  readonly status: ConnectionStatus;
  /** Undefined when no key authenticated (or a replay was refused). */
  readonly keyId: string | undefined;
  /** True when the connection never got past authentication: garbage, probe or replay. */
  readonly probe: boolean;
  /** Milliseconds from accept to the key being found, when one was. */
  readonly timeToAuthMs: number | undefined;
  readonly durationMs: number;
  /** Bytes read from the client stream (encrypted, including the handshake). */
  readonly bytesUp: number;
  /** Bytes written to the client stream (encrypted). */
  readonly bytesDown: number;
  /** ERR_CONNECT: the system error code of the dial (ECONNREFUSED, ETIMEDOUT…), never the host. */
  readonly errno?: string;
}

/** Optional callbacks; each is called synchronously and must not throw. */
export interface ServerHooks {
  /** A connection (TCP socket or handed-in stream) was accepted, authenticated or not. */
  onConnectionOpened?(): void;
  onAuthenticated?(e: AuthEvent): void;
  onConnectionClosed?(e: ConnectionClosedEvent): void;
  /**
   * A data-plane worker thread stopped unexpectedly (whether or not it is restarted): its open
   * connections are gone without a close event each.
   */
  onWorkerCrashed?(e: { readonly worker: number; readonly lostConnections: number }): void;
}
