// Ladder native addon: the hooks through which the batched UDP sockets (udp_sockets.cc) hand
// datagrams to the SIP004 fast path (udp_fastpath.cc) and release its state.
#ifndef LADDER_NATIVE_UDP_FASTPATH_H_
#define LADDER_NATIVE_UDP_FASTPATH_H_

#include "udp_sockets.h"

#if defined(__linux__)

namespace ladder {

// True when the listener has client routes, so its datagrams are offered to FastForwardFrom.
bool HasRoutes(const Sock* l);

// A datagram on the listener from `from`: when that client is routed, open, check and forward it
// in C. True when handled here (forwarded or dropped); false leaves it to JS untouched.
bool FastForwardFrom(Sock* l, const sockaddr_storage& from, const uint8_t* pkt, size_t n);

// One datagram on an outbound socket with a relay (s->relay_to set): seal it as a SIP004 reply
// and send it to the client from the listener.
void RelayReply(Sock* s, const sockaddr_storage& from, const uint8_t* data, size_t n);

// On close: drop the relay's listener reference and key, and every route (their socket
// references and keys).
void ReleaseFastPath(Sock* s);

// When the socket's memory goes: the route table and the salt set.
void FreeFastPath(Sock* s);

}  // namespace ladder

#endif  // __linux__

#endif  // LADDER_NATIVE_UDP_FASTPATH_H_
