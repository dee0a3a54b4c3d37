/**
 * TLS for the web transports' client side (WebSocket, gRPC): the dialled address, the Host (or
 * :authority) and the TLS server name set apart (domain fronting through a CDN edge), the
 * certificate checked against the system CAs, a given CA, or a pinned SHA-256 fingerprint.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import {
  connect as tlsConnect,
  type ConnectionOptions,
  type PeerCertificate,
  type TLSSocket,
} from 'node:tls';

/** What a web endpoint says about its TLS (WsEndpoint and the gRPC options carry these). */
export interface WebTlsEndpoint {
  /** TLS server name (default: the Host header's name; '' sends none). */
  servername?: string | undefined;
  /** Verify the server's certificate against the system CAs (default true). */
  verify?: boolean | undefined;
  /** Trust these CA certificates (PEM) instead of the system's. */
  ca?: string | Buffer | undefined;
  /** Accept exactly the certificate with this SHA-256 fingerprint (hex, colons allowed), self-signed or not. */
  pinSha256?: string | undefined;
}

function fingerprint(cert: PeerCertificate | undefined): string {
  return cert?.raw ? createHash('sha256').update(cert.raw).digest('hex') : '';
}

/** The Host header's name without port or brackets. */
export function hostName(hostHeader: string): string {
  if (hostHeader.startsWith('[')) return hostHeader.slice(1, hostHeader.indexOf(']'));
  const colon = hostHeader.lastIndexOf(':');
  return colon > 0 && hostHeader.indexOf(':') === colon ? hostHeader.slice(0, colon) : hostHeader;
}

export interface WebTlsOptions {
  servername: string;
  ca?: string | Buffer;
  rejectUnauthorized: boolean;
  /** The pinned fingerprint (lower-case hex): check it with pinnedTlsConnect. */
  pin?: string;
}

/** The TLS options of `ep` whose Host header is `host`. */
export function webTlsOptions(ep: WebTlsEndpoint, host: string): WebTlsOptions {
  const pin = ep.pinSha256?.replace(/:/g, '').toLowerCase();
  return {
    // RFC 6066: no IP addresses in SNI.
    servername: ep.servername ?? (isIP(hostName(host)) ? '' : hostName(host)),
    ...(ep.ca !== undefined ? { ca: ep.ca } : {}),
    // The pin replaces chain and name checks (self-signed origins).
    rejectUnauthorized: pin ? false : (ep.verify ?? true),
    ...(pin ? { pin } : {}),
  };
}

/**
 * tls.connect, with the certificate checked against `pin` as soon as the handshake is done,
 * before any request leaves (the socket is destroyed on a mismatch).
 */
export function pinnedTlsConnect(o: ConnectionOptions, pin: string | undefined): TLSSocket {
  const s = tlsConnect(o);
  if (pin)
    s.once('secureConnect', () => {
      if (fingerprint(s.getPeerCertificate()) !== pin)
        s.destroy(new Error('server certificate does not match the pin'));
    });
  return s;
}
