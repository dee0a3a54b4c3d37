import { ProtocolError } from '../errors.js';
import { decodeAddress, encodeAddress, type SocksAddress } from '../socks5/address.js';
import { cipher } from './cipher.js';
import { checkSalt, type AeadMethod } from './methods.js';

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
  if (salt !== undefined) checkSalt(method, salt);
  return cipher().udpSeal(method, masterKey, plain, EMPTY, salt);
}

/** Open one datagram; throws ERR_SHORT_HEADER when too short, ERR_CIPHER when it does not authenticate. */
export function openUdpPacket(method: AeadMethod, masterKey: Uint8Array, packet: Uint8Array): Buffer {
  if (packet.length < method.saltSize + TAG) {
    throw new ProtocolError(
      'ERR_SHORT_HEADER',
      `datagram of ${packet.length} bytes is shorter than salt and tag`,
    );
  }
  const plain = cipher().udpOpen(method, masterKey, packet);
  if (plain === null) throw new ProtocolError('ERR_CIPHER', 'AEAD authentication failed');
  return plain;
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
  if (salt !== undefined) checkSalt(method, salt);
  return cipher().udpSeal(method, masterKey, addr, payload, salt);
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
  return cipher().udpSeal(method, masterKey, head, payload);
}

/** Open a datagram and split off its SOCKS address; ERR_ADDRESS when the address is malformed or truncated. */
export function decodeUdp2017(method: AeadMethod, masterKey: Uint8Array, packet: Uint8Array): UdpDatagram {
  const plain = openUdpPacket(method, masterKey, packet);
  const decoded = decodeAddress(plain, 0);
  if (!decoded) throw new ProtocolError('ERR_ADDRESS', 'datagram ends inside its address');
  return { address: decoded.address, payload: plain.subarray(decoded.length) };
}
