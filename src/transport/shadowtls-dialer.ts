/**
 * The client side of ShadowTLS v3 (ihciah/shadow-tls docs/protocol-v3-en.md; the client sing-box
 * and mihomo run is SagerNet/sing-shadowtls v3_client.go/v3_conn.go):
 *
 *  1. A TLS 1.3 handshake with the real website named by the SNI, relayed by the ShadowTLS
 *     server, from our own engine (tls13/): its ClientHello is Chrome-shaped and its session id is
 *     28 random bytes and a 4-byte HMAC-SHA1(password) over the hello (`signClientHello`), which
 *     tells the server this client knows the password.
 *  2. While it runs, every record from the server passes `HandshakeUntagger` first: the
 *     ServerHello gives the ServerRandom; an application-data record carrying the right tag proves
 *     the server knows the password too, and is un-XORed back into the website's record for the
 *     TLS engine. The certificate is therefore not verified (it is the website's, and the tags
 *     authenticate the ShadowTLS server: tls13 option 'authenticated-by-shadowtls'). If the last
 *     record had no tag, the server is not ours (a wrong ShadowTLS password, or a middlebox
 *     answering for the site): the dial fails with one line, after a close_notify as a browser
 *     would send.
 *  3. After the client Finished, the TLS session is dropped: the connection carries the
 *     Shadowsocks stream in data records tagged HMAC(password, ServerRandom‖"C") one way and
 *     ‖"S" the other (ShadowTlsStream), the first of ours switching the server over; records
 *     from the website still in flight (tagged with the handshake HMAC) are dropped.
 *  4. D14 (default on, `cover: false` turns it off): the stream's first 4 KB go out in records of
 *     browser-like sizes rather than one record per write (shadowtls-cover.ts).
 *
 * One TCP connection per stream, as sing-box and mihomo do (no pool: the handshake is the cover).
 */
import type { Duplex } from 'node:stream';
import {
  connectionHmac,
  DataOpener,
  HandshakeUntagger,
  serverRandomOf,
  signClientHello,
  TYPE_APPLICATION_DATA,
} from '../protocol/shadowtls/index.js';
import { CONTENT_ALERT, RecordProtection } from '../protocol/tls13/key-schedule.js';
import { connectTcp, DEFAULT_CONNECT_TIMEOUT_MS, UpstreamDialError, type NextHop } from './dialer.js';
import { ShadowTlsStream } from './shadowtls-stream.js';
import { RecordCutter, type ShadowTlsCoverOptions } from './shadowtls-cover.js';
import { SHADOWTLS_RESET } from './shadowtls-reset.js';
import { HRR_RANDOM } from '../protocol/tls13/messages.js';
import { runHandshake } from './tls13/client.js';
import { ClientHandshake, Tls13Error } from './tls13/handshake.js';

export interface ShadowTlsEndpoint {
  /** The ShadowTLS server. */
  readonly address: string;
  readonly port: number;
  /** The website whose handshake the server relays (SNI). */
  readonly sni: string;
  /** The ShadowTLS password (not the Shadowsocks one). */
  readonly password: string;
  /** ALPN offered in the hello (default Chrome's: h2, http/1.1). */
  readonly alpn?: readonly string[] | undefined;
  /** TCP connect and handshake, each (default 10 s). */
  readonly connectTimeoutMs?: number | undefined;
  /**
   * D14: the stream's first bytes cut into records of browser-like sizes (shadowtls-cover.ts),
   * so the inner handshake's record sizes do not show; default on, false turns it off.
   */
  readonly cover?: ShadowTlsCoverOptions | false | undefined;
}

/** Why a dial failed on the ShadowTLS layer (shown as is: no host, no password). */
export const NOT_AUTHENTICATED =
  'ShadowTLS server did not authenticate: wrong ShadowTLS password, or the address is not a ShadowTLS v3 server (the handshake reached a plain TLS server)';

/** Why a site that answers with a HelloRetryRequest cannot be used (its ShadowTLS server's key would be a constant). */
export const HELLO_RETRY =
  'the handshake site answered with a HelloRetryRequest (it wants a key share other than X25519), which ShadowTLS v3 cannot carry safely: choose another site';

/** Open one ShadowTLS v3 connection to `ep`: the Shadowsocks byte stream inside it. */
export async function dialShadowTls(ep: ShadowTlsEndpoint, signal?: AbortSignal): Promise<Duplex> {
  const timeoutMs = ep.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const socket = await connectTcp(ep.address, ep.port, { timeoutMs, signal });
  const password = ep.password;
  const hs = new ClientHandshake({
    serverName: ep.sni,
    alpn: ep.alpn,
    certificate: 'authenticated-by-shadowtls',
    signHello: (message) => void signClientHello(message, password),
  });
  let untagger: HandshakeUntagger | undefined;
  let serverRandom: Buffer | undefined;
  let tagged = false;
  const onRecord = (record: Buffer): Buffer => {
    const sr = serverRandomOf(record);
    // A HelloRetryRequest's "random" is a constant: tags keyed on it would repeat from one
    // connection to the next (the server keys on the first ServerHello it relays).
    if (sr?.equals(HRR_RANDOM)) throw new Tls13Error(HELLO_RETRY, 40);
    if (sr) {
      serverRandom = sr;
      untagger = new HandshakeUntagger(password, sr);
      return record;
    }
    if (record[0] !== TYPE_APPLICATION_DATA || !untagger) return record;
    const plain = untagger.untag(record);
    tagged = plain !== undefined;
    return plain ?? record;
  };
  let reader;
  try {
    reader = await runHandshake(socket, hs, { onRecord, signal, timeoutMs });
  } catch (err) {
    socket.destroy();
    if (signal?.aborted) throw new UpstreamDialError('ERR_ABORTED', 'dial aborted');
    const message = `ShadowTLS handshake failed: ${(err as Error).message}`;
    // The cause's code is what the client's log line and its hint name (client/dial-hint.ts): a
    // reset during the handshake is the server's port giving up on its handshake site
    // (shadowtls-reset.ts), told by this code rather than by the message's wording.
    const errno = (err as { code?: string }).code;
    const code =
      errno === 'ERR_TLS' ? 'ERR_SHADOWTLS_HANDSHAKE' : errno === 'ECONNRESET' ? SHADOWTLS_RESET : errno;
    throw new UpstreamDialError('ERR_CONNECT', message, {
      cause: Object.assign(new Error(message), { code, cause: err }),
    });
  }
  if (!tagged || !untagger || !serverRandom) {
    // Leave as a browser would: close_notify under the session's key, then FIN.
    const r = hs.result();
    socket.end(new RecordProtection(r.suite, r.clientSecret).seal(CONTENT_ALERT, Buffer.of(1, 0)));
    setTimeout(() => socket.destroy(), 1000).unref();
    throw new UpstreamDialError('ERR_CONNECT', NOT_AUTHENTICATED, {
      cause: Object.assign(new Error(NOT_AUTHENTICATED), { code: 'ERR_SHADOWTLS_AUTH' }),
    });
  }
  const stream = new ShadowTlsStream(socket, {
    held: reader.drain(),
    opener: new DataOpener(connectionHmac(password, serverRandom, 'S'), untagger.chain()),
    seal: connectionHmac(password, serverRandom, 'C'),
    cut: ep.cover === false ? undefined : new RecordCutter(ep.cover),
  });
  stream.on('error', () => {}); // until the tunnel attaches its own (as connectTcp does)
  return stream;
}

/** A NextHop dialling `ep` for each stream (key.ts loads this module at the first dial). */
export function shadowTlsNextHop(ep: ShadowTlsEndpoint): NextHop & { close(): void } {
  return Object.assign((signal?: AbortSignal) => dialShadowTls(ep, signal), { close: () => {} });
}
