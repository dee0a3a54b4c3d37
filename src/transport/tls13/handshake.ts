/**
 * A TLS 1.3 client handshake (RFC 8446) without I/O: records in, records to send out. Full
 * handshakes only (no PSK, no 0-RTT); X25519 key share, with secp256r1 or secp384r1 after a
 * HelloRetryRequest; the three TLS 1.3 cipher suites (protocol/tls13/key-schedule.ts); a
 * Chrome-shaped ClientHello (protocol/tls13/client-hello.ts). The driver is client.ts.
 *
 * The server's certificate is either verified (chain and name, certificate.ts) or — for ShadowTLS
 * v3 only — taken unverified, because there the ShadowTLS layer authenticates the server (its
 * HMAC tags over the handshake server's records prove it knows the password) and the
 * certificate is a real website's, not the ShadowTLS server's. The options make the caller say
 * which: `certificate: { ca }` or `certificate: 'authenticated-by-shadowtls'`; anything else is
 * refused. CertificateVerify's signature is checked with the leaf's key either way.
 */
import {
  createECDH,
  createHash,
  diffieHellman,
  generateKeyPairSync,
  createPublicKey,
  type KeyObject,
} from 'node:crypto';
import { brotliDecompressSync } from 'node:zlib';
import { ProtocolError } from '../../protocol/errors.js';
import {
  CERT_COMPRESSION_BROTLI,
  CHROME_SIGNATURE_ALGORITHMS,
  CLIENT_GROUPS,
  encodeClientHello,
  EXT_APPLICATION_SETTINGS,
  GROUP_SECP256R1,
  GROUP_SECP384R1,
  GROUP_X25519,
  HANDSHAKE_CERTIFICATE,
  HANDSHAKE_CERTIFICATE_VERIFY,
  HANDSHAKE_COMPRESSED_CERTIFICATE,
  HANDSHAKE_ENCRYPTED_EXTENSIONS,
  HANDSHAKE_FINISHED,
  HANDSHAKE_MESSAGE_HASH,
  HANDSHAKE_SERVER_HELLO,
  MLDSA_SIGNATURE_ALGORITHMS,
  newHelloSpec,
  Writer,
  type HelloSpec,
  type KeyShareEntry,
} from '../../protocol/tls13/client-hello.js';
import {
  CONTENT_ALERT,
  CONTENT_APPLICATION_DATA,
  CONTENT_CHANGE_CIPHER_SPEC,
  CONTENT_HANDSHAKE,
  KeySchedule,
  RecordProtection,
  SUITES,
  verifyDataEqual,
  type CipherSuite,
} from '../../protocol/tls13/key-schedule.js';
import {
  ALERT_NAMES,
  HandshakeReader,
  handshakeMessage,
  parseCertificate,
  parseCertificateVerify,
  parseCompressedCertificate,
  parseEncryptedExtensions,
  parseServerHello,
  serverSignedContent,
} from '../../protocol/tls13/messages.js';
import { leafKey, verifyChain, verifySignature } from './certificate.js';

/** How the server is authenticated: its certificate, or (ShadowTLS v3 only) the ShadowTLS layer. */
export type CertificateMode = { ca?: string | Buffer | undefined } | 'authenticated-by-shadowtls';

export interface Tls13ClientOptions {
  /** SNI and the name the certificate must hold; an IP address is checked but not sent. */
  serverName?: string | undefined;
  /** ALPN protocols offered (default Chrome's: h2, http/1.1; [] sends none). */
  alpn?: readonly string[] | undefined;
  /**
   * Required. `{ ca }`: verify the chain against these PEM CA certificates (the system roots when
   * `ca` is undefined) and the name. `'authenticated-by-shadowtls'`: skip the certificate check —
   * only for a ShadowTLS v3 handshake, whose tags authenticate the server; never otherwise.
   */
  certificate: CertificateMode;
  /** Rewrites the first ClientHello message (type, length, body) in place before it is sent: ShadowTLS writes its session id. */
  signHello?: ((message: Buffer) => void) | undefined;
}

/** A handshake failure the peer caused or we refused; `alert` is what we send (or got, `received`). */
export class Tls13Error extends ProtocolError {
  readonly alert: number;
  readonly received: boolean;

  constructor(message: string, alert: number, received = false) {
    super('ERR_TLS', message);
    this.alert = alert;
    this.received = received;
  }
}

const A_UNEXPECTED = 10;
const A_HANDSHAKE_FAILURE = 40;
const A_BAD_CERTIFICATE = 42;
const A_ILLEGAL_PARAMETER = 47;
const A_DECODE_ERROR = 50;
const A_DECRYPT_ERROR = 51;
const A_PROTOCOL_VERSION = 70;

export interface HandshakeResult {
  readonly suite: CipherSuite;
  readonly schedule: KeySchedule;
  readonly clientSecret: Buffer;
  readonly serverSecret: Buffer;
  readonly alpn: string | undefined;
  /** The ServerHello's random (ShadowTLS keys its tags on it). */
  readonly serverRandom: Buffer;
  /** The server asked for another key share (HelloRetryRequest) first. */
  readonly helloRetried: boolean;
}

interface Share {
  readonly group: number;
  readonly data: Buffer;
  shared(peer: Buffer): Buffer;
}

function x25519Share(): Share {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const data = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  return {
    group: GROUP_X25519,
    data,
    shared(peer) {
      if (peer.length !== 32)
        throw new Tls13Error('the server sent an X25519 share of the wrong length', A_ILLEGAL_PARAMETER);
      const pub: KeyObject = createPublicKey({
        key: { kty: 'OKP', crv: 'X25519', x: peer.toString('base64url') },
        format: 'jwk',
      });
      return diffieHellman({ privateKey, publicKey: pub });
    },
  };
}

function ecShare(group: number): Share {
  const ecdh = createECDH(group === GROUP_SECP256R1 ? 'prime256v1' : 'secp384r1');
  const data = ecdh.generateKeys();
  return {
    group,
    data,
    shared(peer) {
      if (peer[0] !== 4 || peer.length !== data.length)
        throw new Tls13Error('the server sent a malformed EC key share', A_ILLEGAL_PARAMETER);
      try {
        return ecdh.computeSecret(peer);
      } catch {
        throw new Tls13Error('the server sent an invalid EC key share', A_ILLEGAL_PARAMETER);
      }
    },
  };
}

function plainRecord(type: number, version: number, content: Buffer): Buffer {
  return Buffer.concat([
    Buffer.of(type, version >> 8, version & 0xff, content.length >> 8, content.length & 0xff),
    content,
  ]);
}

/** What a server may sign CertificateVerify with: the schemes offered, less RSA PKCS#1 (not for TLS 1.3 handshakes, §4.2.3). */
const CLIENT_SIGNATURE_SCHEMES = [
  ...MLDSA_SIGNATURE_ALGORITHMS,
  ...CHROME_SIGNATURE_ALGORITHMS.filter((s) => (s & 0xff) !== 0x01),
];

const CCS_RECORD = Buffer.of(CONTENT_CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1);

type State =
  'server-hello' | 'encrypted-extensions' | 'certificate' | 'certificate-verify' | 'finished' | 'done';

export class ClientHandshake {
  readonly #opts: Tls13ClientOptions;
  readonly #alpn: readonly string[];
  readonly #spec: HelloSpec;
  #shares: Share[];
  #transcript: Buffer[] = [];
  #state: State = 'server-hello';
  #retried = false;
  #sentCcs = false;
  readonly #reader = new HandshakeReader();
  #suite: CipherSuite | undefined;
  #schedule: KeySchedule | undefined;
  #serverRandom: Buffer | undefined;
  #hs: { client: Buffer; server: Buffer } | undefined;
  #read: RecordProtection | undefined;
  #write: RecordProtection | undefined;
  #alpnChosen: string | undefined;
  #alps = false;
  #leaf: KeyObject | undefined;
  #result: HandshakeResult | undefined;

  constructor(opts: Tls13ClientOptions) {
    const c = opts.certificate as unknown;
    if (c !== 'authenticated-by-shadowtls' && (typeof c !== 'object' || c === null))
      throw new TypeError(
        "tls13: options.certificate must be { ca } (verify the server) or 'authenticated-by-shadowtls' (ShadowTLS v3 only)",
      );
    this.#opts = opts;
    this.#alpn = opts.alpn ?? ['h2', 'http/1.1'];
    const sni = opts.serverName && !/^[\d.]+$|:/.test(opts.serverName) ? opts.serverName : undefined;
    this.#spec = newHelloSpec(sni, this.#alpn);
    this.#shares = [x25519Share()];
  }

  /** The first flight: the ClientHello record. */
  start(): Buffer {
    const hello = encodeClientHello(this.#spec, this.#shares);
    if (this.#opts.signHello) {
      this.#opts.signHello(hello);
      // A second hello (after HelloRetryRequest) repeats the session id as signed.
      hello.copy(this.#spec.sessionId, 0, 39, 71);
    }
    this.#transcript.push(hello);
    return plainRecord(CONTENT_HANDSHAKE, 0x0301, hello);
  }

  /** A fatal alert record for a failure: plaintext before ServerHello, under the client handshake key after. */
  alertRecord(desc: number): Buffer {
    const body = Buffer.of(2, desc);
    return this.#write ? this.#write.seal(CONTENT_ALERT, body) : plainRecord(CONTENT_ALERT, 0x0303, body);
  }

  get done(): boolean {
    return this.#state === 'done';
  }

  result(): HandshakeResult {
    if (!this.#result) throw new Error('tls13: handshake not done');
    return this.#result;
  }

  #hash(): Buffer {
    const h = createHash(this.#suite!.hash);
    for (const m of this.#transcript) h.update(m);
    return h.digest();
  }

  /** One whole record from the server (header included); the records to send in answer. */
  receive(record: Buffer): Buffer[] {
    const type = record[0]!;
    const content = record.subarray(5);
    if (type === CONTENT_ALERT && !this.#read) this.#alert(content);
    if (type === CONTENT_CHANGE_CIPHER_SPEC) {
      if (this.#state === 'server-hello' && !this.#retried)
        throw new Tls13Error('change_cipher_spec before ServerHello', A_UNEXPECTED);
      if (content.length !== 1 || content[0] !== 1)
        throw new Tls13Error('malformed change_cipher_spec', A_UNEXPECTED);
      return [];
    }
    if (this.#read) {
      if (type !== CONTENT_APPLICATION_DATA)
        throw new Tls13Error(`unexpected plaintext record (type ${type}) after ServerHello`, A_UNEXPECTED);
      let inner;
      try {
        inner = this.#read.open(record);
      } catch (err) {
        throw new Tls13Error((err as Error).message, 20);
      }
      if (inner.type === CONTENT_ALERT) this.#alert(inner.content);
      if (inner.type !== CONTENT_HANDSHAKE)
        throw new Tls13Error(`unexpected record (type ${inner.type}) during the handshake`, A_UNEXPECTED);
      this.#reader.push(inner.content);
    } else {
      if (type !== CONTENT_HANDSHAKE)
        throw new Tls13Error(
          `the server answered with a record of type ${type}, not a handshake`,
          A_UNEXPECTED,
        );
      this.#reader.push(content);
    }
    const out: Buffer[] = [];
    for (let m = this.#reader.next(); m; m = this.#reader.next()) {
      if (this.#state === 'done')
        throw new Tls13Error('handshake data after the server Finished in the same record', A_UNEXPECTED);
      const wasPlain = !this.#read;
      out.push(...this.#message(m.type, m.body, m.message));
      // Keys change at a record boundary (§5.1): nothing may follow a message that changed them.
      if (wasPlain && this.#read && this.#reader.pending > 0)
        throw new Tls13Error('ServerHello shares its record with later messages', A_UNEXPECTED);
    }
    return out;
  }

  #alert(content: Buffer): never {
    const desc = content[1] ?? -1;
    const name = ALERT_NAMES[desc] ?? `alert ${desc}`;
    throw new Tls13Error(
      desc === A_PROTOCOL_VERSION
        ? 'the server refused TLS 1.3 (alert protocol_version): it may speak only TLS 1.2 or older'
        : `the server sent ${name} during the handshake`,
      desc,
      true,
    );
  }

  #message(type: number, body: Buffer, message: Buffer): Buffer[] {
    switch (this.#state) {
      case 'server-hello':
        if (type !== HANDSHAKE_SERVER_HELLO)
          throw new Tls13Error(`expected ServerHello, got handshake message ${type}`, A_UNEXPECTED);
        return this.#serverHello(body, message);
      case 'encrypted-extensions': {
        if (type !== HANDSHAKE_ENCRYPTED_EXTENSIONS)
          throw new Tls13Error(`expected EncryptedExtensions, got ${type}`, A_UNEXPECTED);
        const ee = this.#decode(() => parseEncryptedExtensions(body, this.#alpn));
        this.#alpnChosen = ee.alpn;
        this.#alps = ee.alps;
        this.#transcript.push(message);
        this.#state = 'certificate';
        return [];
      }
      case 'certificate':
        if (type === 13)
          throw new Tls13Error(
            'the server asks for a client certificate, which this client does not have',
            A_HANDSHAKE_FAILURE,
          );
        if (type !== HANDSHAKE_CERTIFICATE && type !== HANDSHAKE_COMPRESSED_CERTIFICATE)
          throw new Tls13Error(`expected Certificate, got ${type}`, A_UNEXPECTED);
        this.#certificate(type === HANDSHAKE_CERTIFICATE ? body : this.#decompress(body));
        this.#transcript.push(message);
        this.#state = 'certificate-verify';
        return [];
      case 'certificate-verify': {
        if (type !== HANDSHAKE_CERTIFICATE_VERIFY)
          throw new Tls13Error(`expected CertificateVerify, got ${type}`, A_UNEXPECTED);
        const cv = this.#decode(() => parseCertificateVerify(body));
        if (!CLIENT_SIGNATURE_SCHEMES.includes(cv.scheme))
          throw new Tls13Error(
            `the server signed with scheme 0x${cv.scheme.toString(16)}, which we did not offer`,
            A_ILLEGAL_PARAMETER,
          );
        // ML-DSA (offered as Chrome does) cannot be checked with Node 20's crypto: refused when
        // the certificate is what authenticates the server, skipped when ShadowTLS's tags do.
        const mldsa = MLDSA_SIGNATURE_ALGORITHMS.includes(cv.scheme);
        if (mldsa && this.#opts.certificate !== 'authenticated-by-shadowtls')
          throw new Tls13Error(
            'the server signed with ML-DSA, which this client cannot check',
            A_HANDSHAKE_FAILURE,
          );
        try {
          if (!mldsa)
            verifySignature(this.#leaf!, cv.scheme, cv.signature, serverSignedContent(this.#hash()));
        } catch (err) {
          throw new Tls13Error((err as Error).message, A_DECRYPT_ERROR);
        }
        this.#transcript.push(message);
        this.#state = 'finished';
        return [];
      }
      case 'finished':
        if (type !== HANDSHAKE_FINISHED) throw new Tls13Error(`expected Finished, got ${type}`, A_UNEXPECTED);
        return this.#finished(body, message);
      default:
        throw new Tls13Error(`unexpected handshake message ${type}`, A_UNEXPECTED);
    }
  }

  #decode<T>(f: () => T): T {
    try {
      return f();
    } catch (err) {
      throw new Tls13Error((err as Error).message, A_DECODE_ERROR);
    }
  }

  #serverHello(body: Buffer, message: Buffer): Buffer[] {
    const sh = this.#decode(() => parseServerHello(body));
    if (sh.version !== 0x0304)
      throw new Tls13Error(
        `the server chose TLS ${sh.version === 0x0303 ? '1.2' : `version 0x${sh.version.toString(16)}`}: this client speaks only TLS 1.3`,
        A_PROTOCOL_VERSION,
      );
    if (!sh.sessionId.equals(this.#spec.sessionId))
      throw new Tls13Error('the server did not echo our session id', A_ILLEGAL_PARAMETER);
    const suite = SUITES.get(sh.suite);
    if (!suite || (this.#suite && this.#suite !== suite))
      throw new Tls13Error(`the server chose cipher suite 0x${sh.suite.toString(16)}`, A_ILLEGAL_PARAMETER);
    this.#suite = suite;
    if (sh.retry) return this.#helloRetry(sh.keyShare?.group, sh.cookie, message);
    const share = this.#shares.find((s) => s.group === sh.keyShare?.group);
    if (!share || !sh.keyShare?.data)
      throw new Tls13Error('the server answered a key share we did not offer', A_ILLEGAL_PARAMETER);
    const shared = share.shared(sh.keyShare.data);
    this.#transcript.push(message);
    this.#serverRandom = sh.random;
    this.#schedule = new KeySchedule(suite);
    this.#hs = this.#schedule.handshake(shared, this.#hash());
    this.#read = new RecordProtection(suite, this.#hs.server);
    this.#write = new RecordProtection(suite, this.#hs.client);
    this.#state = 'encrypted-extensions';
    return [];
  }

  #helloRetry(group: number | undefined, cookie: Buffer | undefined, message: Buffer): Buffer[] {
    if (this.#retried) throw new Tls13Error('a second HelloRetryRequest', A_UNEXPECTED);
    if (group === undefined || !CLIENT_GROUPS.includes(group) || this.#shares.some((s) => s.group === group))
      throw new Tls13Error(
        'HelloRetryRequest for a group we did not offer or already sent',
        A_ILLEGAL_PARAMETER,
      );
    this.#retried = true;
    // §4.4.1: the first ClientHello is replaced by a message_hash of it.
    const ch1 = createHash(this.#suite!.hash).update(this.#transcript[0]!).digest();
    this.#transcript = [handshakeMessage(HANDSHAKE_MESSAGE_HASH, ch1), message];
    this.#shares = [
      group === GROUP_X25519
        ? x25519Share()
        : ecShare(group === GROUP_SECP384R1 ? GROUP_SECP384R1 : GROUP_SECP256R1),
    ];
    const shares: KeyShareEntry[] = this.#shares;
    const hello = encodeClientHello(this.#spec, shares, { retry: true, cookie });
    this.#transcript.push(hello);
    this.#sentCcs = true;
    return [CCS_RECORD, plainRecord(CONTENT_HANDSHAKE, 0x0303, hello)];
  }

  #decompress(body: Buffer): Buffer {
    const cc = this.#decode(() => parseCompressedCertificate(body));
    if (cc.algorithm !== CERT_COMPRESSION_BROTLI)
      throw new Tls13Error(
        'the server compressed its certificate with an algorithm we did not offer',
        A_BAD_CERTIFICATE,
      );
    if (cc.length > 1 << 20) throw new Tls13Error('compressed certificate too long', A_BAD_CERTIFICATE);
    let out: Buffer;
    try {
      out = brotliDecompressSync(cc.data, { maxOutputLength: cc.length });
    } catch {
      throw new Tls13Error('the compressed certificate does not decompress', A_BAD_CERTIFICATE);
    }
    if (out.length !== cc.length)
      throw new Tls13Error('the compressed certificate has the wrong length', A_BAD_CERTIFICATE);
    return out;
  }

  #certificate(body: Buffer): void {
    const ders = this.#decode(() => parseCertificate(body));
    const mode = this.#opts.certificate;
    try {
      this.#leaf =
        mode === 'authenticated-by-shadowtls'
          ? leafKey(ders)
          : verifyChain(ders, this.#opts.serverName ?? '', mode.ca);
    } catch (err) {
      throw new Tls13Error((err as Error).message, A_BAD_CERTIFICATE);
    }
  }

  #finished(body: Buffer, message: Buffer): Buffer[] {
    const schedule = this.#schedule!;
    const hs = this.#hs!;
    const expected = schedule.finished(hs.server, this.#hash());
    if (!verifyDataEqual(expected, body))
      throw new Tls13Error("the server's Finished does not verify", A_DECRYPT_ERROR);
    this.#transcript.push(message);
    const app = schedule.application(this.#hash());
    const write = this.#write!;
    const out: Buffer[] = [];
    if (!this.#sentCcs) out.push(CCS_RECORD);
    if (this.#alps) {
      // ALPS (Chrome's application_settings): the client answers with its own settings in an
      // EncryptedExtensions message of its own; ours are empty (no HTTP/2 SETTINGS to announce).
      const ext = new Writer().vec(2, (w) => w.u16(EXT_APPLICATION_SETTINGS).vec(2, () => {})).done();
      const ee = handshakeMessage(HANDSHAKE_ENCRYPTED_EXTENSIONS, ext);
      this.#transcript.push(ee);
      out.push(write.seal(CONTENT_HANDSHAKE, ee));
    }
    const fin = handshakeMessage(HANDSHAKE_FINISHED, schedule.finished(hs.client, this.#hash()));
    out.push(write.seal(CONTENT_HANDSHAKE, fin));
    this.#transcript.push(fin);
    this.#state = 'done';
    this.#result = {
      suite: this.#suite!,
      schedule,
      clientSecret: app.client,
      serverSecret: app.server,
      alpn: this.#alpnChosen,
      serverRandom: this.#serverRandom!,
      helloRetried: this.#retried,
    };
    return out;
  }
}
