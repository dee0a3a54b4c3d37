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

// RFC 5869 with SHA-1 and info "ss-subkey": out_len (<= kMaxSubkey) bytes from ikm (at most
// kMaxSubkey bytes: false otherwise) and salt.
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
  ~Subkey() { Wipe(key_, sizeof key_); }
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
// Hands the calling thread's one-shot context of method m to the caller (still keyed with what
// the last one-shot operation set, e.g. the subkey sip004Open's trial just opened with), so a
// codec can keep it instead of setting up and keying another; the thread takes a new one from
// the pool at its next one-shot operation. Give it back with PoolGive. nullptr when none.
EVP_CIPHER_CTX* DetachOneShotCtx(int m);

// Set-up contexts (cipher fetched, 12-byte IV) kept per thread and method, so a connection's
// codecs do not pay EVP_CIPHER_CTX_new + the provider's newctx + the IV length + free each.
// PoolTake: one with no usable key (a new one, or one PoolGive wiped); the caller keys it with
// EVP_CipherInit_ex(ctx, NULL, NULL, key, NULL, enc). nullptr when m is out of range, the cipher
// is unavailable or set-up failed.
EVP_CIPHER_CTX* PoolTake(int m);

// n (<= 64) bytes of CSPRNG output (salts) from this thread's 4 KiB block of RAND_bytes output,
// each byte handed out once and zeroed in the block (random-pool.ts's pool, in C++): one
// RAND_bytes call costs ~6k instructions under OpenSSL 3, a draw from the block ~0.1k. False
// (out untouched) when RAND_bytes fails.
bool RandomBytes(uint8_t* out, size_t n);
// Takes back a context of method m (nullptr: nothing). Its key is wiped now, as freeing it would:
// AES-GCM contexts are re-keyed with an all-zero key (the provider re-expands the key schedule
// over the old one and zeroes the whole GCM state - H, its table, counters, accumulator - before
// deriving them again), then kept if the thread holds fewer than kPoolMax of that method;
// ChaCha20-Poly1305 contexts (whose Poly1305 state a re-key would not reset) and any beyond the
// limit are freed (EVP_CIPHER_CTX_free cleanses them), as before the pool.
void PoolGive(int m, EVP_CIPHER_CTX* ctx);
// The most contexts of one method a thread keeps (each ~1 KiB with malloc's overhead). Codecs held
// by JS values come back only when V8 collects them, in bursts of one or two hundred on a busy
// thread (a young-generation scavenge every ~75 short connections), so the pool is sized for a
// burst: smaller, most of a burst is freed and the connections after it set up new contexts.
constexpr int kPoolMax = 128;
// The contexts the calling thread keeps now, of method m (tests).
int PoolSize(int m);

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
