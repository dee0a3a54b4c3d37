/**
 * ShadowTLS v3 record transforms (ihciah/shadow-tls docs/protocol-v3-en.md; SagerNet/sing-shadowtls
 * v3_server.go copyByFrameWithModification / copyByFrameUntilHMACMatches, v3_conn.go verifiedConn,
 * v3_client.go streamWrapper). Four HMAC-SHA1(password) instances per connection, each started with
 * the ServerRandom:
 *
 *  - `HMAC_SR` (ServerRandom): the server tags the handshake server's application-data records on
 *    their way to the client. Each such record's body is XORed with SHA-256(password ‖ ServerRandom)
 *    (the key restarting at each record), the XORed body fed to HMAC_SR, and its 4-byte tag put
 *    before the body (length + 4). The tag itself is not fed back. Other record types pass as they are.
 *  - `HMAC_SR_C` (ServerRandom ‖ "C"): the client's data records. Until one of the client's
 *    application-data records carries the tag of HMAC_SR_C over its body, the server relays the
 *    client's records to the handshake server; that record switches the connection.
 *  - `HMAC_SR_S` (ServerRandom ‖ "S"): the server's data records.
 *
 * A data record is `17 03 03 len(4 + n)`, the 4-byte tag, then n payload bytes (n ≤ 16384, as
 * sing-box writes). For each record the sender feeds the payload, takes the tag, then feeds the
 * tag too (so records cannot be cut, merged, reordered or replayed). The receiver does the same
 * and answers a mismatch with an alert and a close.
 *
 * After the switch the server may still send the client handshake-server records tagged with
 * HMAC_SR (in flight when the client switched); the client drops records that match HMAC_SR
 * until the first one that does not (`DataOpener`'s `ignoreHandshake`).
 */
import { RECORD_HEADER, TYPE_APPLICATION_DATA, TYPE_ALERT } from './record.js';
import { RunningHmac, TAG_SIZE, tagsEqual, xorInPlace, xorKey } from './hmac.js';

/** The most payload one data record carries (sing-box's verifiedConn.Write). */
export const MAX_DATA_PAYLOAD = 16384;
const DATA_HEADER = RECORD_HEADER + TAG_SIZE;
const C = Buffer.from('C');
const S = Buffer.from('S');

export type Direction = 'C' | 'S';

/** HMAC_SR (no direction) or HMAC_SR_C / HMAC_SR_S. */
export function connectionHmac(
  password: string | Buffer,
  serverRandom: Uint8Array,
  dir?: Direction,
): RunningHmac {
  return dir === undefined
    ? new RunningHmac(password, serverRandom)
    : new RunningHmac(password, serverRandom, dir === 'C' ? C : S);
}

/** HMAC_SR and the XOR key: the handshake phase's state, one per side. */
abstract class HandshakeChain {
  protected readonly hmac: RunningHmac;
  protected readonly key: Buffer;

  constructor(password: string | Buffer, serverRandom: Uint8Array) {
    this.hmac = connectionHmac(password, serverRandom);
    this.key = xorKey(password, serverRandom);
  }
}

/** Server: the handshake server's records on their way to an authenticated client. */
export class HandshakeTagger extends HandshakeChain {
  /** One whole record in, the record to send the client out (a new buffer for application data). */
  tag(record: Buffer): Buffer {
    if (record[0] !== TYPE_APPLICATION_DATA) return record;
    const bodyLen = record.length - RECORD_HEADER;
    const out = Buffer.allocUnsafe(record.length + TAG_SIZE);
    record.copy(out, 0, 0, 3);
    out.writeUInt16BE(bodyLen + TAG_SIZE, 3);
    const body = out.subarray(DATA_HEADER);
    record.copy(body, 0, RECORD_HEADER);
    xorInPlace(body, this.key);
    this.hmac.update(body);
    this.hmac.tag().copy(out, RECORD_HEADER);
    return out;
  }
}

/**
 * Client: undo HandshakeTagger on the handshake server's records. `untag` returns the original
 * record when an application-data record carries the expected tag (and proves the server knows the
 * password), undefined when it does not (a hijacked connection); other records come back as they are.
 */
export class HandshakeUntagger extends HandshakeChain {
  /** HMAC_SR as it stands (for DataOpener's `ignore` once the client switches). */
  chain(): RunningHmac {
    return this.hmac;
  }

  untag(record: Buffer): Buffer | undefined {
    if (record[0] !== TYPE_APPLICATION_DATA) return record;
    if (record.length <= DATA_HEADER) return undefined;
    const body = record.subarray(DATA_HEADER);
    if (!tagsEqual(this.hmac.update(body).tag(), record.subarray(RECORD_HEADER, DATA_HEADER)))
      return undefined;
    const out = Buffer.allocUnsafe(record.length - TAG_SIZE);
    record.copy(out, 0, 0, 3);
    out.writeUInt16BE(body.length, 3);
    body.copy(out, RECORD_HEADER);
    xorInPlace(out.subarray(RECORD_HEADER), this.key);
    return out;
  }
}

/**
 * Server: whether this client record is the first data record (tagged with HMAC_SR_C over its
 * body). On a match the HMAC advances (payload, then tag) and the payload is returned; otherwise
 * the HMAC is untouched and the record is to be relayed to the handshake server.
 */
export function matchFirstData(hmacC: RunningHmac, record: Buffer): Buffer | undefined {
  if (record[0] !== TYPE_APPLICATION_DATA || record.length <= DATA_HEADER) return undefined;
  const payload = record.subarray(DATA_HEADER);
  const tag = record.subarray(RECORD_HEADER, DATA_HEADER);
  const trial = hmacC.clone().update(payload).tag();
  if (!tagsEqual(trial, tag)) return undefined;
  hmacC.update(payload).update(tag);
  return payload;
}

/** Frame `payload` as data records (≤ 16384 payload bytes each), advancing `hmac`; one buffer (empty for no payload). */
export function sealData(hmac: RunningHmac, payload: Uint8Array): Buffer {
  const records = Math.ceil(payload.length / MAX_DATA_PAYLOAD);
  const out = Buffer.allocUnsafe(payload.length + records * DATA_HEADER);
  let o = 0;
  for (let p = 0; p < payload.length; p += MAX_DATA_PAYLOAD) {
    const chunk = payload.subarray(p, p + MAX_DATA_PAYLOAD);
    out[o] = TYPE_APPLICATION_DATA;
    out[o + 1] = 3;
    out[o + 2] = 3;
    out.writeUInt16BE(chunk.length + TAG_SIZE, o + 3);
    const tag = hmac.update(chunk).tag();
    hmac.update(tag);
    tag.copy(out, o + RECORD_HEADER);
    out.set(chunk, o + DATA_HEADER);
    o += DATA_HEADER + chunk.length;
  }
  return out;
}

export type OpenResult =
  | { readonly kind: 'data'; readonly payload: Buffer }
  | { readonly kind: 'ignored' } // a leftover handshake record (client side)
  | { readonly kind: 'alert' } // the peer closed with an alert
  | { readonly kind: 'bad' }; // wrong tag, wrong version, or a record type that has no place here

/**
 * The receiving side of data records. Server: `new DataOpener(hmacC)` with the HMAC_SR_C that
 * matchFirstData advanced. Client: `new DataOpener(connectionHmac(pw, sr, 'S'), untagger.chain())`
 * — `ignore`, HandshakeUntagger's HMAC_SR continued, drops leftover handshake records until the
 * first record that does not match it.
 */
export class DataOpener {
  constructor(
    private readonly hmac: RunningHmac,
    private ignore?: RunningHmac,
  ) {}

  open(record: Buffer): OpenResult {
    const type = record[0];
    if (type === TYPE_ALERT) return { kind: 'alert' };
    if (type !== TYPE_APPLICATION_DATA || record[1] !== 3 || record[2] !== 3 || record.length < DATA_HEADER) {
      return { kind: 'bad' };
    }
    const payload = record.subarray(DATA_HEADER);
    const tag = record.subarray(RECORD_HEADER, DATA_HEADER);
    if (this.ignore) {
      if (tagsEqual(this.ignore.clone().update(payload).tag(), tag)) {
        this.ignore.update(payload);
        return { kind: 'ignored' };
      }
      this.ignore = undefined;
    }
    const expected = this.hmac.update(payload).tag();
    this.hmac.update(expected);
    return tagsEqual(expected, tag) ? { kind: 'data', payload } : { kind: 'bad' };
  }
}

/**
 * The alert both implementations send before closing on a bad record: a 31-byte alert record
 * (`15 03 03 00 1a`) whose body is 26 random bytes, the size of an encrypted TLS 1.3 alert.
 */
export function closingAlert(random26: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(31);
  out[0] = TYPE_ALERT;
  out[1] = 3;
  out[2] = 3;
  out.writeUInt16BE(26, 3);
  out.set(random26.subarray(0, 26), RECORD_HEADER);
  return out;
}
