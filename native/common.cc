// Ladder native addon: the process-wide cipher table (common.h) and available(method).
#include "common.h"

#include <mutex>

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

}  // namespace ladder
