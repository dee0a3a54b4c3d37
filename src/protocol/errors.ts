/**
 * Every codec failure is a ProtocolError with a stable string code. The code doubles as a
 * metric label (see src/metrics) and is the only thing callers should branch on; messages are
 * for humans and never contain secrets.
 */
export type ProtocolErrorCode =
  | 'ERR_METHOD' // unknown or refused cipher method (e.g. a stream cipher)
  | 'ERR_KEY' // key material of the wrong length or form
  | 'ERR_SHORT_HEADER' // input ended before a complete header
  | 'ERR_CIPHER' // AEAD authentication failed (wrong key or tampered bytes)
  | 'ERR_PAYLOAD_SIZE' // a chunk length above the protocol maximum
  | 'ERR_REPLAY' // salt or nonce seen before
  | 'ERR_TIMESTAMP' // timestamp outside the accepted window (SIP022)
  | 'ERR_HEADER' // malformed fixed or variable header (SIP022 type byte, lengths)
  | 'ERR_ADDRESS' // malformed SOCKS address (bad ATYP, bad length, bad IP text)
  | 'ERR_SOCKS' // SOCKS5 protocol violation
  | 'ERR_URL' // malformed ss:// or ssconf:// URL
  | 'ERR_CONFIG' // malformed online config (SIP008 / Outline dynamic key)
  | 'ERR_TLS' // malformed TLS record or ClientHello
  | 'ERR_DNS' // malformed DNS message
  | 'ERR_USAGE'; // a codec called out of order or with contradictory options (a bug in the caller, never the peer's bytes)

/** Control characters as \xNN, so a message quoting a peer's, key's or file's text stays one printable line. */
export function escapeControls(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;

  constructor(code: ProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    // One printable line whatever a peer's or a key's bytes that a message quotes hold.
    super(escapeControls(message), options);
    this.code = code;
  }
}

export function isProtocolError(err: unknown): err is ProtocolError {
  return err instanceof ProtocolError;
}
