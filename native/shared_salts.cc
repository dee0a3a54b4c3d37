// Ladder native addon: SharedSaltFilter's operations in C++ (see shared_salts.h). Each function
// here mirrors the method of the same name in src/server/workers/shared-salts.ts; a change to one
// is a change to both (test/server/lean-path.test.ts checks salts one side adds on the other).
#include "shared_salts.h"

#include <cstring>

namespace ladder {

namespace {

constexpr size_t kMaxSalt = 32;
constexpr size_t kStride = 1 + kMaxSalt;
constexpr size_t kSlotInts = 2;
constexpr size_t kHeaderInts = 16;
constexpr int kLock = 0;
constexpr int kSeed = 1;
constexpr int kStamp = 2;  // 2, 3
constexpr int kCount = 4;  // 4, 5
constexpr int kChanges = 6;
constexpr int kCurrent = 7;
constexpr int kSlots = 9;
constexpr int kCapacity = 10;
constexpr int32_t kHeldByC = 3;  // the lock's state while C++ holds it (JS uses 0, 1, 2)

bool TryLock(const SharedSalts& f) {
  int32_t expected = 0;
  return __atomic_compare_exchange_n(&f.h[kLock], &expected, kHeldByC, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
}

void Unlock(const SharedSalts& f) { __atomic_store_n(&f.h[kLock], 0, __ATOMIC_SEQ_CST); }

uint32_t Rotl(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

// Tables.hash
uint32_t Hash(const SharedSalts& f, const uint8_t* salt, size_t len) {
  uint32_t h = static_cast<uint32_t>(f.h[kSeed]) ^ static_cast<uint32_t>(len);
  for (size_t i = 0; i < len; i += 4) {
    uint32_t k = 0;
    for (size_t j = 0; j < 4 && i + j < len; j++) k |= static_cast<uint32_t>(salt[i + j]) << (8 * j);
    k *= 0xcc9e2d51u;
    k = Rotl(k, 15);
    h ^= k * 0x1b873593u;
    h = Rotl(h, 13);
    h = h * 5 + 0xe6546b64u;
  }
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  return h ^ (h >> 16);
}

// Tables.entry
uint32_t Entry(const SharedSalts& f, uint32_t s) {
  const uint32_t t = s < f.slots ? 0 : 1;
  return t * f.capacity + static_cast<uint32_t>(f.slot[s * kSlotInts + 1]);
}

bool Equals(const SharedSalts& f, uint32_t e, const uint8_t* salt, size_t len) {
  const uint8_t* o = f.log + static_cast<size_t>(e) * kStride;
  return o[0] == len && memcmp(o + 1, salt, len) == 0;
}

// Tables.find: the slot (>= 0) of the salt in table t, or -(free slot + 1).
int64_t Find(const SharedSalts& f, uint32_t t, const uint8_t* salt, size_t len, uint32_t hash) {
  const int32_t stamp = f.h[kStamp + t];
  const uint32_t mask = f.slots - 1;
  const uint32_t base = t * f.slots;
  for (uint32_t i = hash & mask, n = 0; n < f.slots; i = (i + 1) & mask, n++) {
    const uint32_t s = base + i;
    if (stamp == 0 || f.slot[s * kSlotInts] != stamp) return -static_cast<int64_t>(s) - 1;
    if (Equals(f, Entry(f, s), salt, len)) return s;
  }
  return -static_cast<int64_t>(f.slots) * 2 - 1;  // a full table: cannot happen at load <= 1/2
}

// Tables.put
void Put(const SharedSalts& f, uint32_t t, uint32_t s, const uint8_t* salt, size_t len) {
  const int32_t i = f.h[kCount + t];
  uint8_t* o = f.log + (static_cast<size_t>(t) * f.capacity + static_cast<uint32_t>(i)) * kStride;
  o[0] = static_cast<uint8_t>(len);
  memcpy(o + 1, salt, len);
  f.slot[s * kSlotInts + 1] = i;
  f.slot[s * kSlotInts] = f.h[kStamp + t];
  f.h[kCount + t] = i + 1;
  f.h[kChanges]++;
}

// Tables.reset
void Reset(const SharedSalts& f, uint32_t t, int32_t stamp) {
  f.h[kStamp + t] = stamp;
  f.h[kCount + t] = 0;
  f.h[kChanges]++;
}

bool SaltOk(size_t len) { return len >= 1 && len <= kMaxSalt; }

}  // namespace

bool SharedSaltsInit(SharedSalts* f, void* data, size_t bytes) {
  *f = SharedSalts();
  if (data == nullptr || bytes < kHeaderInts * 4 || reinterpret_cast<uintptr_t>(data) % 8 != 0) return false;
  int32_t* h = static_cast<int32_t*>(data);
  const int64_t slots = h[kSlots], capacity = h[kCapacity];
  if (slots < 16 || (slots & (slots - 1)) != 0 || capacity < 1 || slots < capacity * 2) return false;
  const uint64_t want = kHeaderInts * 4 + 2 * static_cast<uint64_t>(slots) * kSlotInts * 4 +
                        2 * static_cast<uint64_t>(capacity) * kStride;
  if (want != bytes) return false;  // a timed window's buffer (or anything else): not a filter
  f->h = h;
  f->slot = h + kHeaderInts;
  f->log = static_cast<uint8_t*>(data) + kHeaderInts * 4 + 2 * slots * kSlotInts * 4;
  f->slots = static_cast<uint32_t>(slots);
  f->capacity = static_cast<uint32_t>(capacity);
  return true;
}

bool SharedSaltsFrom(napi_env env, napi_value v, SharedSalts* f) {
  bool is = false;
  napi_typedarray_type tt;
  size_t len = 0;
  void* data = nullptr;
  return napi_is_typedarray(env, v, &is) == napi_ok && is &&
         napi_get_typedarray_info(env, v, &tt, &len, &data, nullptr, nullptr) == napi_ok &&
         tt == napi_uint8_array && SharedSaltsInit(f, data, len);
}

SaltResult SharedSaltsHas(const SharedSalts& f, const uint8_t* salt, size_t len) {
  if (f.h == nullptr || !SaltOk(len) || !TryLock(f)) return SaltResult::kBusy;
  const uint32_t h = Hash(f, salt, len);
  const bool seen = Find(f, 0, salt, len, h) >= 0 || Find(f, 1, salt, len, h) >= 0;
  Unlock(f);
  return seen ? SaltResult::kSeen : SaltResult::kNew;
}

SaltResult SharedSaltsCheckAndAdd(const SharedSalts& f, const uint8_t* salt, size_t len) {
  if (f.h == nullptr || !SaltOk(len) || !TryLock(f)) return SaltResult::kBusy;
  SaltResult r = SaltResult::kBusy;
  const int32_t cur = f.h[kCurrent];
  if (f.h[kStamp] != 0 && (cur == 0 || cur == 1)) {  // set up by a SharedSaltFilter
    const uint32_t c = static_cast<uint32_t>(cur), prev = 1 - c;
    const uint32_t h = Hash(f, salt, len);
    int64_t at;
    if (Find(f, prev, salt, len, h) >= 0 || (at = Find(f, c, salt, len, h)) >= 0) {
      r = SaltResult::kSeen;
    } else if (f.h[kCount + c] >= static_cast<int32_t>(f.capacity)) {
      // The current generation is full: it becomes the previous one, the old previous is dropped.
      const int32_t next = (f.h[kStamp] > f.h[kStamp + 1] ? f.h[kStamp] : f.h[kStamp + 1]) + 1;
      Reset(f, prev, next);
      f.h[kCurrent] = static_cast<int32_t>(prev);
      at = Find(f, prev, salt, len, h);  // a fresh table: always a free slot
      Put(f, prev, static_cast<uint32_t>(-at - 1), salt, len);
      r = SaltResult::kNew;
    } else if (-at - 1 < static_cast<int64_t>(f.slots) * 2) {
      Put(f, c, static_cast<uint32_t>(-at - 1), salt, len);
      r = SaltResult::kNew;
    }
  }
  Unlock(f);
  return r;
}

}  // namespace ladder
