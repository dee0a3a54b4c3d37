/**
 * TLS settings shared by the client's web transports (WebSocket: ws-dialer.ts; HTTPUpgrade:
 * httpupgrade-dialer.ts): the server name apart from the dialled address (domain fronting
 * through a CDN edge), a CA of the key's own, or a pinned certificate in place of chain and name
 * checks.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate, type TLSSocket } from 'node:tls';

/** What a web endpoint says about its TLS (a subset of WsEndpoint). */
export interface WebTlsEndpoint {
  /** TLS server name (default: the Host header's name; '' sends none). */
  servername?: string | undefined;
  /** TLS: verify the server's certificate against the system CAs (default true). */
  verify?: boolean | undefined;
  /** TLS: trust these CA certificates (PEM) instead of the system's. */
  ca?: string | Buffer | undefined;
  /** TLS: accept exactly the certificate with this SHA-256 fingerprint (hex, colons allowed), self-signed or not. */
  pinSha256?: string | undefined;
}

export interface WebTlsOptions {
  servername: string;
  ca?: string | Buffer;
  rejectUnauthorized: boolean;
  /** With a pin: connects and destroys the socket when the certificate is not the pinned one. */
  createConnection?: (o: ConnectionOptions) => TLSSocket;
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

/** TLS options for a web endpoint whose Host header is `host`. */
export function webTlsOptions(ep: WebTlsEndpoint, host: string): WebTlsOptions {
  const pin = ep.pinSha256?.replace(/:/g, '').toLowerCase();
  return {
    // RFC 6066: no IP addresses in SNI.
    servername: ep.servername ?? (isIP(hostName(host)) ? '' : hostName(host)),
    ...(ep.ca !== undefined ? { ca: ep.ca } : {}),
    ...(pin
      ? {
          // The pin replaces chain and name checks (self-signed origins); checked as soon as the
          // handshake is done, before the upgrade request leaves.
          rejectUnauthorized: false,
          createConnection: (o: ConnectionOptions) => {
            const s = tlsConnect(o);
            s.once('secureConnect', () => {
              if (fingerprint(s.getPeerCertificate()) !== pin)
                s.destroy(new Error('server certificate does not match the pin'));
            });
            return s;
          },
        }
      : { rejectUnauthorized: ep.verify ?? true }),
  };
}
