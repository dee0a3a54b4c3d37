/**
 * The base of every layer's error class: a stable string `code` from that layer's own union
 * (ParseErrorCode, StoreErrorCode, DnsErrorCode…). Callers branch on the code, never on the
 * message; where a code is also a metric label it must never change. (src/protocol, which
 * imports nothing, has the same shape in ProtocolError.)
 */
export class CodedError<Code extends string> extends Error {
  readonly code: Code;

  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
