// Ladder native addon: the client's bare tunnels (client_bare.cc) for the SOCKS5 front.
#ifndef LADDER_NATIVE_CLIENT_BARE_H_
#define LADDER_NATIVE_CLIENT_BARE_H_

#include <cstddef>
#include <cstdint>

#include "common.h"

namespace ladder {

#if defined(__linux__)
// The set behind a bareTunnels() value; nullptr for anything else.
void* BareSetOf(napi_env env, napi_value v);
// Starts a bare tunnel for the application's socket fd (a CONNECT to addr = ATYP..PORT with
// first data data[0..n)): true when the set took fd (it is the set's from then, whatever
// happens); false with nothing done (JS then: a name that is not ASCII, a first write that is not
// one chunk outside the prober's trigger, no salt left, the set closed). parked: fd's watch is
// parked (socks5_front.cc handoff); the set unparks it (or its relay adopts it) when it returns true.
bool BareTake(void* set, int fd, const uint8_t* addr, size_t addr_len, const uint8_t* data, size_t n, bool parked);
#endif

}  // namespace ladder

#endif  // LADDER_NATIVE_CLIENT_BARE_H_
