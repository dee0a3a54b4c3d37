// Ladder native addon: the process-wide cipher table (common.h), available(method) and
// tuneHeap(trimBytes, mmapBytes).
#include "common.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <mutex>

#if defined(__linux__)
#include <dlfcn.h>
#endif

#include "exports.h"
#include "napi_args.h"

namespace ladder {

namespace {

// Never freed: they live as long as libcrypto.
const EVP_CIPHER* g_cipher[kMethods] = {nullptr, nullptr, nullptr, nullptr};
std::once_flag g_fetch_once;

void FetchCiphers() {
  static const char* const kNames[kMethods] = {"AES-128-GCM", "AES-256-GCM", "ChaCha20-Poly1305",
                                                 "AES-192-GCM"};
  static const size_t kKeyLen[kMethods] = {16, 32, 32, 24};
  for (int i = 0; i < kMethods; i++) {
    const EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, kNames[i], nullptr);
    if (c == nullptr) {
      // Fall back to the legacy constant (OpenSSL then fetches implicitly at key set-up only).
      c = i == 0 ? EVP_aes_128_gcm() : i == 1 ? EVP_aes_256_gcm() : i == 2 ? EVP_chacha20_poly1305() : EVP_aes_192_gcm();
    }
    if (c != nullptr && (static_cast<size_t>(EVP_CIPHER_get_key_length(c)) != kKeyLen[i] ||
                         EVP_CIPHER_get_iv_length(c) != static_cast<int>(kNonce))) {
      c = nullptr;
    }
    g_cipher[i] = c;
  }
}

}  // namespace

const EVP_CIPHER* CipherOf(int m) {
  std::call_once(g_fetch_once, FetchCiphers);
  return m >= 0 && m < kMethods ? g_cipher[m] : nullptr;
}

napi_value Available(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  int32_t m = -1;
  if (!a.Need(1) || !a.Int32(0, &m)) return Bool(env, false);
  return Bool(env, CipherOf(m) != nullptr);
}

// tuneHeap(trimBytes, mmapBytes) -> boolean: fixed glibc malloc thresholds for this process.
// A relay allocates and frees a 64 KiB buffer per socket read and per encoded write. With glibc's
// defaults (trim above 128 KiB of free heap top, a threshold that moves with every freed mmap),
// a free that lands at the top of the heap gives the memory back with brk() and the next
// allocation takes it again and page-faults it in: 0.5-1.4 faults per 4 KiB relayed, about half
// of a relay process's CPU (docs/benchmarks.md). M_TRIM_THRESHOLD keeps up to trimBytes of free
// heap top; M_MMAP_THRESHOLD keeps allocations below mmapBytes in the heap. False (and nothing
// changed) where the C library is not glibc.
napi_value TuneHeap(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  int32_t trim = -1;
  int32_t mmap_min = -1;
  if (!a.Need(2, "tuneHeap(trimBytes, mmapBytes)")) return nullptr;
  if (!a.Int32(0, &trim) || !a.Int32(1, &mmap_min) || trim <= 0 || mmap_min <= 0) {
    Throw(env, "tuneHeap: trimBytes and mmapBytes must be positive int32");
    return nullptr;
  }
#if defined(__GLIBC__)
  const bool ok = mallopt(M_TRIM_THRESHOLD, trim) == 1 && mallopt(M_MMAP_THRESHOLD, mmap_min) == 1;
  return Bool(env, ok);
#else
  return Bool(env, false);
#endif
}

void PinLibrary() {
#if defined(__linux__)
  static std::once_flag once;
  std::call_once(once, [] {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&PinLibrary), &info) != 0 && info.dli_fname != nullptr) {
      dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);
    }
  });
#endif
}

void RaisePendingException(napi_env env) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) return;
  napi_value err;
  if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
}

}  // namespace ladder
