/**
 * Which key a client's UDP datagram opens with (the UDP relay's and UDP over WebSocket's trial):
 * apart from udp-relay.ts, which it kept over 600 lines.
 */
import { decodeUdp2017 } from '../protocol/shadowsocks/udp.js';
import {
  openClientPacket2022,
  type SubkeyCache,
  type Udp2022OpenedClientPacket,
} from '../protocol/shadowsocks/udp2022.js';
import type { SocksAddress } from '../protocol/socks5/address.js';
import { isIdentityGroup, type Key2022Entry, type KeyEntry, type KeyRing } from './keys.js';

/** A datagram whose key was found: the key, what it carried, and (2022) the opened packet. */
export type Opened =
  | {
      edition: 2022;
      key: Key2022Entry;
      packet: Udp2022OpenedClientPacket<Key2022Entry>;
      address: SocksAddress;
      payload: Buffer;
    }
  | { edition: 2017; key: KeyEntry; address: SocksAddress; payload: Buffer };

/**
 * Find the key of a client datagram in the one trial order (KeyRing.walk): SIP023 identity
 * groups, 2022 single-user keys, then SIP004 keys (`first` tried first). A SIP004 datagram whose
 * salt `saltAdd` has seen is a replay and opens with no key. Used by the UDP relay and by UDP over
 * WebSocket (web/ws-udp.ts).
 */
export function openDatagram(
  keys: KeyRing,
  cache: SubkeyCache,
  msg: Buffer,
  now: number,
  first: readonly KeyEntry[],
  saltAdd: (salt: Buffer) => boolean,
): Opened | undefined {
  return keys.walk(first, (c): Opened | undefined => {
    if (isIdentityGroup(c)) {
      try {
        const packet = openClientPacket2022(c.method, msg, now, { identity: c.table, cache });
        if (!packet.user) return undefined;
        return { edition: 2022, key: packet.user, packet, address: packet.address, payload: packet.payload };
      } catch {
        return undefined; // not this group
      }
    }
    if (c.edition === 2022) {
      try {
        const packet = openClientPacket2022<Key2022Entry>(c.method, msg, now, { key: c.userKey, cache });
        return { edition: 2022, key: c, packet, address: packet.address, payload: packet.payload };
      } catch {
        return undefined; // not this key
      }
    }
    let d: ReturnType<typeof decodeUdp2017>;
    try {
      d = decodeUdp2017(c.method, c.masterKey, msg);
    } catch {
      return undefined;
    }
    // Every honest datagram has a fresh random salt: one seen before is a replay (a prober
    // re-sending a captured packet would otherwise get a reply, which garbage never gets).
    if (!saltAdd(msg.subarray(0, c.method.saltSize))) return undefined;
    return { edition: 2017, key: c, address: d.address, payload: d.payload };
  });
}
