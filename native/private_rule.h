// Ladder native addon: the server's private-destination rule (src/server/destination.ts,
// isPrivateAddress) on address bytes, for the UDP fast path (udp_fastpath.cc) and the TCP
// accept's checks (tcp_accept.cc); held equal to the JS rule by test/server/destination.test.ts
// (through isPrivateIp).
#ifndef LADDER_NATIVE_PRIVATE_RULE_H_
#define LADDER_NATIVE_PRIVATE_RULE_H_

#include <cstdint>
#include <cstring>

namespace ladder {

// IPv4 bytes: 0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12, 192.168/16, 224/4, 240/4.
inline bool IsPrivate4(const uint8_t* a) {
  return a[0] == 0 || a[0] == 10 || (a[0] == 100 && (a[1] & 0xc0) == 64) || a[0] == 127 ||
         (a[0] == 169 && a[1] == 254) || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
         a[0] >= 224;
}

// IPv6 bytes: fc00::/7, fe80::/10, ff00::/8, and by the IPv4 rule the addresses that carry an
// IPv4 address in their last 4 bytes: IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96 (which
// includes :: and ::1) and the NAT64 well-known prefix 64:ff9b::/96.
inline bool IsPrivate6(const uint8_t* a) {
  static const uint8_t kZero[12] = {0};
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (memcmp(a, kMapped, 12) == 0 || memcmp(a, kZero, 12) == 0 || memcmp(a, kNat64, 12) == 0) {
    return IsPrivate4(a + 12);
  }
  return (a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || a[0] == 0xff;
}

}  // namespace ladder

#endif  // LADDER_NATIVE_PRIVATE_RULE_H_
