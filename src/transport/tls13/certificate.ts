/**
 * The server's certificate for the TLS 1.3 client (handshake.ts): the chain checked against trust
 * anchors and the name, and CertificateVerify's signature with the leaf's key.
 *
 * The chain check is a plain path check: each certificate signed by the next (which must be a
 * CA), the last by a trust anchor (the given CA certificates, or Node's bundled roots), each
 * within its validity dates, the leaf valid for the server name (X509Certificate.checkHost /
 * checkIP). It does not check revocation (OCSP, CRL), name constraints, key usage or policies, or
 * Certificate Transparency: enough for a server whose CA the user gives (tests, a private front),
 * not a browser's checks. ShadowTLS does not rely on it (tls13 options `certificate`).
 */
import { constants, verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { ProtocolError } from '../../protocol/errors.js';

function bad(msg: string): ProtocolError {
  return new ProtocolError('ERR_TLS', msg);
}

let systemRoots: X509Certificate[] | undefined;

function anchorsFrom(ca: string | Buffer | undefined): X509Certificate[] {
  if (ca === undefined) return (systemRoots ??= rootCertificates.map((pem) => new X509Certificate(pem)));
  const pem = typeof ca === 'string' ? ca : ca.toString('latin1');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error('tls13: the ca option holds no PEM certificate');
  return blocks.map((b) => new X509Certificate(b));
}

function current(cert: X509Certificate, now: number, what: string): void {
  if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo))
    throw bad(`the server's ${what} certificate is outside its validity dates`);
}

/**
 * Check the server's chain (`ders`: leaf first, as sent) for `serverName` against `ca` (PEM; the
 * system roots when undefined). Returns the leaf's public key.
 */
export function verifyChain(
  ders: readonly Buffer[],
  serverName: string,
  ca: string | Buffer | undefined,
): KeyObject {
  let certs: X509Certificate[];
  try {
    certs = ders.map((d) => new X509Certificate(d));
  } catch {
    throw bad('the server sent a certificate that does not parse');
  }
  const leaf = certs[0]!;
  const nameOk = isIP(serverName)
    ? leaf.checkIP(serverName) !== undefined
    : leaf.checkHost(serverName) !== undefined;
  if (!serverName || !nameOk) throw bad("the server's certificate is not valid for the server name");
  const now = Date.now();
  const anchors = anchorsFrom(ca);
  let cur = leaf;
  current(cur, now, 'leaf');
  for (let depth = 0; depth < 10; depth++) {
    if (anchors.some((a) => a.fingerprint256 === cur.fingerprint256)) return leaf.publicKey;
    const anchor = anchors.find((a) => cur.checkIssued(a) && cur.verify(a.publicKey));
    if (anchor) {
      current(anchor, now, 'root');
      return leaf.publicKey;
    }
    const next = certs.find((c) => c !== cur && c.ca && cur.checkIssued(c) && cur.verify(c.publicKey));
    if (!next) throw bad("the server's certificate does not chain to a trusted CA");
    current(next, now, 'intermediate');
    cur = next;
  }
  throw bad("the server's certificate chain is too long");
}

/** The leaf's key without any check (ShadowTLS: the server is authenticated by its tags). */
export function leafKey(ders: readonly Buffer[]): KeyObject {
  try {
    return new X509Certificate(ders[0]!).publicKey;
  } catch {
    throw bad('the server sent a certificate that does not parse');
  }
}

const ECDSA: Readonly<Record<number, string>> = { 0x0403: 'sha256', 0x0503: 'sha384', 0x0603: 'sha512' };
const RSA_PSS: Readonly<Record<number, string>> = { 0x0804: 'sha256', 0x0805: 'sha384', 0x0806: 'sha512' };

/** Check CertificateVerify: `signature` by `key` under `scheme` over `content`. */
export function verifySignature(key: KeyObject, scheme: number, signature: Buffer, content: Buffer): void {
  let ok: boolean;
  try {
    if (ECDSA[scheme] && key.asymmetricKeyType === 'ec') {
      ok = cryptoVerify(ECDSA[scheme], content, { key, dsaEncoding: 'der' }, signature);
    } else if (RSA_PSS[scheme] && key.asymmetricKeyType === 'rsa') {
      ok = cryptoVerify(
        RSA_PSS[scheme],
        content,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
        signature,
      );
    } else {
      throw bad(
        `the server signed with scheme 0x${scheme.toString(16).padStart(4, '0')}, which we did not offer for its key`,
      );
    }
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    ok = false;
  }
  if (!ok) throw bad("the server's CertificateVerify signature does not verify");
}
