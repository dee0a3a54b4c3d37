// Ladder native addon: the stateless AEAD and HKDF-SHA1 primitives that the one-shot exports
// (oneshot.cc) and the UDP fast path (udp_fastpath.cc) share.
#ifndef LADDER_NATIVE_ONESHOT_H_
#define LADDER_NATIVE_ONESHOT_H_

#include <openssl/crypto.h>

#include "common.h"
#include "napi_args.h"

namespace ladder {

// Longest HKDF-SHA1 output (and so master key) the one-shot operations take.
constexpr size_t kMaxSubkey = 64;
// The nonce of every SIP004 datagram.
extern const uint8_t kZeroNonce[kNonce];

// RFC 5869 with SHA-1 and info "ss-subkey": out_len (<= kMaxSubkey) bytes from ikm and salt.
bool HkdfSha1(const uint8_t* ikm, size_t ikm_len, const uint8_t* salt, size_t salt_len, uint8_t* out,
              size_t out_len);

// SIP004's subkey, HkdfSha1(master, salt) as long as the master key, on the stack and wiped when
// it goes out of scope (every return path). ok() is false when the master key is empty or longer
// than kMaxSubkey, or HKDF failed: then data() holds nothing usable.
class Subkey {
 public:
  Subkey(const uint8_t* master, size_t master_len, const uint8_t* salt, size_t salt_len)
      : len_(master_len),
        ok_(master_len > 0 && master_len <= kMaxSubkey &&
            HkdfSha1(master, master_len, salt, salt_len, key_, master_len)) {}
  ~Subkey() { OPENSSL_cleanse(key_, sizeof key_); }
  Subkey(const Subkey&) = delete;
  Subkey& operator=(const Subkey&) = delete;
  bool ok() const { return ok_; }
  const uint8_t* data() const { return key_; }
  size_t size() const { return len_; }

 private:
  uint8_t key_[kMaxSubkey];
  size_t len_;
  bool ok_;
};

// One context per method and thread for the one-shot operations; the key is set per call.
// nullptr when the method is out of range or unavailable.
EVP_CIPHER_CTX* OneShotCtx(int m);

// out receives AEAD(a || b) then the tag (an + bn + 16 bytes).
bool SealTwo(EVP_CIPHER_CTX* ctx, const uint8_t* key, const uint8_t* nonce, const uint8_t* a, size_t an,
             const uint8_t* b, size_t bn, uint8_t* out);

// Opens in[0..n) with the tag at in[n..n+16) into out (n bytes).
bool OpenTagged(EVP_CIPHER_CTX* ctx, const uint8_t* key, const uint8_t* nonce, const uint8_t* in, size_t n,
                uint8_t* out);

// The method argument at i: its one-shot context and key length. Throws TypeError otherwise.
bool GetMethod(const Args& a, size_t i, int* m, EVP_CIPHER_CTX** ctx, size_t* key_len);

// GetMethod at i, then the master key (a Uint8Array, its length not checked) at i + 1.
bool GetMethodAndMasterKey(const Args& a, size_t i, int* m, EVP_CIPHER_CTX** ctx, size_t* key_len,
                           const uint8_t** master, size_t* master_len);

}  // namespace ladder

#endif  // LADDER_NATIVE_ONESHOT_H_
