// Ladder native addon: the SIP004 replay filters that the server's threads share through
// SharedArrayBuffers (src/server/workers/shared-salts.ts, SharedSaltFilter), read and written from
// C++ on the same bytes with the same lock, so that the accept's checks (tcp_accept.cc) need no
// JS. The layout, hash, probing and generation rotation are SharedSaltFilter's, step for step.
//
// The lock: JS holds it with the futex states 0 (free), 1 (held), 2 (held, maybe waiters) and
// sleeps in Atomics.wait, whose waiters V8 keeps in its own list, so C++ could never wake one. C++
// therefore only tries: a compare-and-swap of 0 to 3 (held by C++), never waiting; when the lock
// is busy the caller leaves the operation to JS. C++ releases it with a store of 0 and no wake:
// a JS thread that finds 3 spins briefly and then waits in 1 ms timed waits (shared-salts.ts), and
// no JS waiter sleeps on a value C++ set.
#ifndef LADDER_NATIVE_SHARED_SALTS_H_
#define LADDER_NATIVE_SHARED_SALTS_H_

#include <node_api.h>

#include <cstddef>
#include <cstdint>

namespace ladder {

// One filter's buffer (the whole SharedArrayBuffer).
struct SharedSalts {
  int32_t* h = nullptr;     // the header (16 int32)
  int32_t* slot = nullptr;  // per slot: stamp, log index
  uint8_t* log = nullptr;   // per log entry: length byte, salt bytes
  uint32_t slots = 0;
  uint32_t capacity = 0;
};

enum class SaltResult { kBusy, kSeen, kNew };

// Checks that `bytes` at `data` are an untimed filter's buffer (its header's sizes match); false
// leaves f empty.
bool SharedSaltsInit(SharedSalts* f, void* data, size_t bytes);

// SharedSaltsInit on the bytes of v, a Uint8Array over the whole buffer; false when it is not one.
bool SharedSaltsFrom(napi_env env, napi_value v, SharedSalts* f);

// SharedSaltFilter.has: kSeen or kNew (not seen); kBusy when the lock was held (nothing done).
SaltResult SharedSaltsHas(const SharedSalts& f, const uint8_t* salt, size_t len);

// SharedSaltFilter.checkAndAdd: kNew (it was not there and is now), kSeen (nothing changed), or
// kBusy (the lock was held, or the filter not set up yet: nothing done).
SaltResult SharedSaltsCheckAndAdd(const SharedSalts& f, const uint8_t* salt, size_t len);

}  // namespace ladder

#endif  // LADDER_NATIVE_SHARED_SALTS_H_
