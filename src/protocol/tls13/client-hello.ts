/**
 * A ClientHello shaped like current Chrome's — Chrome 156 (checked against Chromium
 * 156.0.8078.129's hello, test/interop/tls13-chrome-shape.test.ts), desktop, first connection, no
 * resumption — for the TLS 1.3 client in src/transport/tls13/ (ShadowTLS v3 needs a hello whose
 * session id it writes itself).
 *
 * What it copies from Chrome 156 (BoringSSL): the 16 cipher suites in Chrome's order with a
 * GREASE one first; compression `null` only; the extension set — GREASE (empty) first, then in a
 * fresh random order per connection (Chrome permutes them since 110): server_name,
 * extended_master_secret, renegotiation_info, supported_groups, ec_point_formats,
 * session_ticket (empty), ALPN (h2, http/1.1 by default), status_request, signature_algorithms
 * (a GREASE value, ML-DSA-44/65/87, then the 8 classic ones), signed_certificate_timestamp,
 * key_share (GREASE with one zero byte, then x25519), psk_key_exchange_modes (psk_dhe_ke),
 * supported_versions (GREASE, 1.3, 1.2), compress_certificate (brotli), application_settings
 * (ALPS, the new code point 17613, "h2"), trust_anchors (0xca34, Chrome's list of Chrome Root
 * Store trust anchor IDs, as sent), encrypted_client_hello GREASE (HPKE x25519/HKDF-SHA256/
 * AES-128-GCM, random config id, enc and payload of 144–240 bytes) — and last a GREASE extension
 * with one zero byte. GREASE values are per connection (0x?a?a), the two GREASE extensions
 * distinct; BoringSSL's padding rule (pad a hello of 256–511 bytes to 512) is applied, though
 * with the ECH GREASE the hello is always longer.
 *
 * What it cannot copy: Chrome's X25519MLKEM768 (0x11ec) group and its 1,216-byte key share
 * (Node 20's crypto has no ML-KEM). So supported_groups is (GREASE, x25519, secp256r1,
 * secp384r1) and the key shares (GREASE, x25519), as in a Chrome with the
 * PostQuantumKeyAgreementEnabled policy off, and the hello is about 1.2 KB shorter than a
 * default Chrome's (700–800 bytes against Chromium's 1,950–1,980). ML-DSA is offered in signature_algorithms as
 * Chrome does, but Node 20 cannot check such a signature: a server that signs with it fails the
 * verified mode (the ShadowTLS mode skips that check; no public site uses ML-DSA certificates yet).
 * No session resumption (no pre_shared_key, no early_data): every connection is a full
 * handshake, as Chrome's first one to a site.
 */
import { randomBytes, randomInt } from 'node:crypto';

export const HANDSHAKE_CLIENT_HELLO = 1;
export const HANDSHAKE_SERVER_HELLO = 2;
export const HANDSHAKE_NEW_SESSION_TICKET = 4;
export const HANDSHAKE_ENCRYPTED_EXTENSIONS = 8;
export const HANDSHAKE_CERTIFICATE = 11;
export const HANDSHAKE_CERTIFICATE_VERIFY = 15;
export const HANDSHAKE_FINISHED = 20;
export const HANDSHAKE_KEY_UPDATE = 24;
export const HANDSHAKE_COMPRESSED_CERTIFICATE = 25;
export const HANDSHAKE_MESSAGE_HASH = 254;

export const EXT_SERVER_NAME = 0;
export const EXT_STATUS_REQUEST = 5;
export const EXT_SUPPORTED_GROUPS = 10;
export const EXT_EC_POINT_FORMATS = 11;
export const EXT_SIGNATURE_ALGORITHMS = 13;
export const EXT_ALPN = 16;
export const EXT_SCT = 18;
export const EXT_PADDING = 21;
export const EXT_EXTENDED_MASTER_SECRET = 23;
export const EXT_COMPRESS_CERTIFICATE = 27;
export const EXT_SESSION_TICKET = 35;
export const EXT_SUPPORTED_VERSIONS = 43;
export const EXT_COOKIE = 44;
export const EXT_PSK_KEY_EXCHANGE_MODES = 45;
export const EXT_KEY_SHARE = 51;
export const EXT_APPLICATION_SETTINGS = 17613;
export const EXT_TRUST_ANCHORS = 0xca34;
export const EXT_ECH = 0xfe0d;
export const EXT_RENEGOTIATION_INFO = 0xff01;

export const GROUP_X25519 = 0x001d;
export const GROUP_SECP256R1 = 0x0017;
export const GROUP_SECP384R1 = 0x0018;
export const CERT_COMPRESSION_BROTLI = 2;

/** Chrome's cipher suites after the GREASE one: the three TLS 1.3 suites, then 1.2's. */
const CHROME_SUITES = [
  0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d,
  0x002f, 0x0035,
];
/** ML-DSA-44, -65, -87 (Chrome offers them first, after a GREASE value). */
export const MLDSA_SIGNATURE_ALGORITHMS = [0x0904, 0x0905, 0x0906];
/** Then ecdsa_p256_sha256, rsa_pss_sha256, rsa_pkcs1_sha256, …384, pss_sha512, pkcs1_sha512. */
export const CHROME_SIGNATURE_ALGORITHMS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601];
/**
 * Chrome 156's trust_anchors body (draft-ietf-tls-trust-anchor-ids): the Chrome Root Store's
 * trust anchor IDs, the same bytes in every hello.
 */
const CHROME_TRUST_ANCHORS = Buffer.from(
  '00b80582df1302010582df1302060582df13020d0582df13020e0582df13020f0582df1302120582df1302130582df13021408839a648c9b2d0107' +
    '08839a648c9b2d010808839a648c9b2d010908839a648c9b2d010a08839a648c9b2d010b08839a648c9b2d010c08839a648c9b2d010d08839a64' +
    '8c9b2d011208839a648c9b2d011304d679090104d679090404d679090504d679090604d679090704d679090804d679090a04d679090b04d679090c' +
    '04d679090d04d679090f',
  'hex',
);
/** supported_groups after the GREASE one. */
export const CLIENT_GROUPS = [GROUP_X25519, GROUP_SECP256R1, GROUP_SECP384R1];
/** BoringSSL's ECH GREASE payload lengths (128–224 bytes of "inner hello" plus the 16-byte tag). */
const ECH_PAYLOAD_LENGTHS = [144, 176, 208, 240];

export interface KeyShareEntry {
  readonly group: number;
  readonly data: Uint8Array;
}

/** The parts of one connection's hello that stay the same in a second hello after HelloRetryRequest. */
export interface HelloSpec {
  readonly random: Buffer;
  /** 32 bytes; ShadowTLS rewrites it in the encoded message (see encodeClientHello's caller). */
  readonly sessionId: Buffer;
  readonly serverName?: string | undefined;
  readonly alpn: readonly string[];
  /** The GREASE values: cipher suite, group, first and second extension, version. */
  readonly grease: {
    suite: number;
    group: number;
    ext1: number;
    ext2: number;
    version: number;
    sigalg: number;
  };
  /** Extension types after the first GREASE one, in the order sent. */
  readonly order: readonly number[];
  readonly ech: { configId: number; enc: Buffer; payload: Buffer };
}

function greaseValue(): number {
  const v = (randomInt(16) << 4) | 0x0a;
  return (v << 8) | v;
}

/** A fresh spec: randoms, GREASE values and a permuted extension order (Chrome's permutation). */
export function newHelloSpec(serverName: string | undefined, alpn: readonly string[]): HelloSpec {
  const ext1 = greaseValue();
  let ext2 = greaseValue();
  if (ext2 === ext1) ext2 ^= 0x1010;
  const order = [
    EXT_SERVER_NAME,
    EXT_EXTENDED_MASTER_SECRET,
    EXT_RENEGOTIATION_INFO,
    EXT_SUPPORTED_GROUPS,
    EXT_EC_POINT_FORMATS,
    EXT_SESSION_TICKET,
    EXT_ALPN,
    EXT_STATUS_REQUEST,
    EXT_SIGNATURE_ALGORITHMS,
    EXT_SCT,
    EXT_KEY_SHARE,
    EXT_PSK_KEY_EXCHANGE_MODES,
    EXT_SUPPORTED_VERSIONS,
    EXT_COMPRESS_CERTIFICATE,
    EXT_APPLICATION_SETTINGS,
    EXT_TRUST_ANCHORS,
    EXT_ECH,
  ];
  for (let i = order.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return {
    random: randomBytes(32),
    sessionId: randomBytes(32),
    serverName,
    alpn,
    grease: {
      suite: greaseValue(),
      group: greaseValue(),
      ext1,
      ext2,
      version: greaseValue(),
      sigalg: greaseValue(),
    },
    order,
    ech: {
      configId: randomInt(256),
      enc: randomBytes(32),
      payload: randomBytes(ECH_PAYLOAD_LENGTHS[randomInt(ECH_PAYLOAD_LENGTHS.length)]!),
    },
  };
}

/** Byte-vector writer: u8/u16/u24 lengths around nested content. */
export class Writer {
  #parts: Buffer[] = [];

  u8(v: number): this {
    this.#parts.push(Buffer.of(v));
    return this;
  }

  u16(v: number): this {
    this.#parts.push(Buffer.of(v >> 8, v & 0xff));
    return this;
  }

  bytes(b: Uint8Array): this {
    this.#parts.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    return this;
  }

  /** `fill` writes into a nested Writer whose length goes first in `lenBytes` (1, 2 or 3) bytes. */
  vec(lenBytes: 1 | 2 | 3, fill: (w: Writer) => void): this {
    const inner = new Writer();
    fill(inner);
    const body = inner.done();
    const len = Buffer.alloc(lenBytes);
    len.writeUIntBE(body.length, 0, lenBytes);
    this.#parts.push(len, body);
    return this;
  }

  done(): Buffer {
    return Buffer.concat(this.#parts);
  }
}

function extensionBody(
  type: number,
  spec: HelloSpec,
  keyShares: readonly KeyShareEntry[],
  w: Writer,
): boolean {
  switch (type) {
    case EXT_SERVER_NAME:
      if (!spec.serverName) return false;
      w.vec(2, (l) => l.u8(0).vec(2, (n) => n.bytes(Buffer.from(spec.serverName!, 'ascii'))));
      return true;
    case EXT_EXTENDED_MASTER_SECRET:
    case EXT_SESSION_TICKET:
    case EXT_SCT:
      return true;
    case EXT_RENEGOTIATION_INFO:
      w.u8(0);
      return true;
    case EXT_SUPPORTED_GROUPS:
      w.vec(2, (l) => {
        l.u16(spec.grease.group);
        for (const g of CLIENT_GROUPS) l.u16(g);
      });
      return true;
    case EXT_EC_POINT_FORMATS:
      w.vec(1, (l) => l.u8(0));
      return true;
    case EXT_ALPN:
      if (spec.alpn.length === 0) return false;
      w.vec(2, (l) => {
        for (const p of spec.alpn) l.vec(1, (s) => s.bytes(Buffer.from(p, 'latin1')));
      });
      return true;
    case EXT_STATUS_REQUEST:
      w.u8(1).u16(0).u16(0);
      return true;
    case EXT_SIGNATURE_ALGORITHMS:
      w.vec(2, (l) => {
        l.u16(spec.grease.sigalg);
        for (const s of [...MLDSA_SIGNATURE_ALGORITHMS, ...CHROME_SIGNATURE_ALGORITHMS]) l.u16(s);
      });
      return true;
    case EXT_TRUST_ANCHORS:
      w.bytes(CHROME_TRUST_ANCHORS);
      return true;
    case EXT_KEY_SHARE:
      w.vec(2, (l) => {
        for (const k of keyShares) l.u16(k.group).vec(2, (d) => d.bytes(k.data));
      });
      return true;
    case EXT_PSK_KEY_EXCHANGE_MODES:
      w.vec(1, (l) => l.u8(1));
      return true;
    case EXT_SUPPORTED_VERSIONS:
      w.vec(1, (l) => l.u16(spec.grease.version).u16(0x0304).u16(0x0303));
      return true;
    case EXT_COMPRESS_CERTIFICATE:
      w.vec(1, (l) => l.u16(CERT_COMPRESSION_BROTLI));
      return true;
    case EXT_APPLICATION_SETTINGS:
      if (!spec.alpn.includes('h2')) return false;
      w.vec(2, (l) => l.vec(1, (s) => s.bytes(Buffer.from('h2'))));
      return true;
    case EXT_ECH:
      w.u8(0).u16(0x0001).u16(0x0001).u8(spec.ech.configId);
      w.vec(2, (e) => e.bytes(spec.ech.enc)).vec(2, (p) => p.bytes(spec.ech.payload));
      return true;
    default:
      return false;
  }
}

/**
 * The ClientHello handshake message (type, length, body) for `spec` with these key shares (a
 * GREASE share of one zero byte goes first in a first hello, as Chrome's); `cookie`: the
 * HelloRetryRequest's, echoed in a second hello.
 */
export function encodeClientHello(
  spec: HelloSpec,
  keyShares: readonly KeyShareEntry[],
  opts: { retry?: boolean; cookie?: Uint8Array | undefined } = {},
): Buffer {
  const shares = opts.retry ? keyShares : [{ group: spec.grease.group, data: Buffer.of(0) }, ...keyShares];
  const exts = new Writer();
  exts.u16(spec.grease.ext1).u16(0);
  for (const type of spec.order) {
    const body = new Writer();
    if (!extensionBody(type, spec, shares, body)) continue;
    const b = body.done();
    exts.u16(type).vec(2, (w) => w.bytes(b));
    if (type === EXT_KEY_SHARE && opts.cookie)
      exts.u16(EXT_COOKIE).vec(2, (w) => w.vec(2, (c) => c.bytes(opts.cookie!)));
  }
  exts.u16(spec.grease.ext2).u16(1).u8(0);
  const head = new Writer()
    .u16(0x0303)
    .bytes(spec.random)
    .vec(1, (w) => w.bytes(spec.sessionId))
    .vec(2, (w) => {
      w.u16(spec.grease.suite);
      for (const s of CHROME_SUITES) w.u16(s);
    })
    .vec(1, (w) => w.u8(0))
    .done();
  let extBytes = exts.done();
  // BoringSSL: a hello whose handshake message would be 256–511 bytes is padded to 512.
  const unpadded = 4 + head.length + 2 + extBytes.length;
  if (unpadded > 0xff && unpadded < 0x200) {
    let pad = 0x200 - unpadded;
    pad = pad >= 4 + 1 ? pad - 4 : 1;
    extBytes = Buffer.concat([
      extBytes,
      new Writer()
        .u16(EXT_PADDING)
        .vec(2, (w) => w.bytes(Buffer.alloc(pad)))
        .done(),
    ]);
  }
  return new Writer()
    .u8(HANDSHAKE_CLIENT_HELLO)
    .vec(3, (w) => w.bytes(head).vec(2, (e) => e.bytes(extBytes)))
    .done();
}
