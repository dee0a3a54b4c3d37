import { randomBytes } from 'node:crypto';
import { ProtocolError } from '../errors.js';
import { decodeAddress, encodeAddress, type SocksAddress } from '../socks5/address.js';
import { AeadSession } from './aead.js';
import { deriveSubkey } from './kdf.js';
import { nativeOneShot } from './native.js';
import type { AeadMethod } from './methods.js';

/**
 * SIP004 UDP (2017 edition): every datagram is salt | AEAD(subkey, nonce 0, plaintext) where
 * subkey = HKDF-SHA1(masterKey, salt, "ss-subkey") and plaintext = SOCKS address | data, in both
 * directions (from the server the address is the source of the reply).
 */

const TAG = 16;
const EMPTY = new Uint8Array(0);

/** Seal one datagram's plaintext with a fresh (or given) salt. */
export function sealUdpPacket(
  method: AeadMethod,
  masterKey: Uint8Array,
  plain: Uint8Array,
  salt?: Uint8Array,
): Buffer {
  if (salt === undefined) {
    const sealed = nativeOneShot.udpSeal(method.cipher, masterKey, plain, EMPTY);
    if (sealed) return sealed;
  }
  const s = salt ?? randomBytes(method.saltSize);
  if (s.length !== method.saltSize) {
    throw new ProtocolError('ERR_KEY', `salt must be ${method.saltSize} bytes for ${method.name}`);
  }
  const out = Buffer.allocUnsafe(s.length + plain.length + TAG);
  out.set(s, 0);
  new AeadSession(method, deriveSubkey(masterKey, s)).sealInto(plain, out, s.length);
  return out;
}

/** Open one datagram; throws ERR_SHORT_HEADER when too short, ERR_CIPHER when it does not authenticate. */
export function openUdpPacket(method: AeadMethod, masterKey: Uint8Array, packet: Uint8Array): Buffer {
  if (packet.length < method.saltSize + TAG) {
    throw new ProtocolError(
      'ERR_SHORT_HEADER',
      `datagram of ${packet.length} bytes is shorter than salt and tag`,
    );
  }
  const opened = nativeOneShot.udpOpen(method.cipher, masterKey, packet);
  if (opened === null) throw new ProtocolError('ERR_CIPHER', 'AEAD authentication failed');
  if (opened) return opened;
  const salt = packet.subarray(0, method.saltSize);
  return new AeadSession(method, deriveSubkey(masterKey, salt)).open(packet.subarray(method.saltSize));
}

export interface UdpDatagram {
  /** Destination (client to server) or source (server to client) of the payload. */
  readonly address: SocksAddress;
  readonly payload: Buffer;
}

/** salt | AEAD(address | payload). */
export function encodeUdp2017(
  method: AeadMethod,
  masterKey: Uint8Array,
  address: SocksAddress,
  payload: Uint8Array,
  salt?: Uint8Array,
): Buffer {
  const addr = encodeAddress(address);
  if (salt === undefined) {
    const sealed = nativeOneShot.udpSeal(method.cipher, masterKey, addr, payload);
    if (sealed) return sealed;
  }
  const plain = Buffer.allocUnsafe(addr.length + payload.length);
  addr.copy(plain, 0);
  plain.set(payload, addr.length);
  return sealUdpPacket(method, masterKey, plain, salt);
}

/**
 * salt | AEAD(head | payload) where `head` is an already encoded SOCKS address (the relay's
 * replies build it straight from the source's address bytes).
 */
export function encodeUdp2017Raw(
  method: AeadMethod,
  masterKey: Uint8Array,
  head: Uint8Array,
  payload: Uint8Array,
): Buffer {
  const sealed = nativeOneShot.udpSeal(method.cipher, masterKey, head, payload);
  if (sealed) return sealed;
  const plain = Buffer.allocUnsafe(head.length + payload.length);
  plain.set(head, 0);
  plain.set(payload, head.length);
  return sealUdpPacket(method, masterKey, plain);
}

/** Open a datagram and split off its SOCKS address; ERR_ADDRESS when the address is malformed or truncated. */
export function decodeUdp2017(method: AeadMethod, masterKey: Uint8Array, packet: Uint8Array): UdpDatagram {
  const plain = openUdpPacket(method, masterKey, packet);
  const decoded = decodeAddress(plain, 0);
  if (!decoded) throw new ProtocolError('ERR_ADDRESS', 'datagram ends inside its address');
  return { address: decoded.address, payload: plain.subarray(decoded.length) };
}
