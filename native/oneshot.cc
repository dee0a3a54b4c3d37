// Ladder native addon: stateless one-shot operations (datagrams, key derivation), since
// abiVersion 3:
//   hkdfSha1(key, salt) -> Buffer               HKDF-SHA1(ikm = key, salt, info "ss-subkey"),
//                                               key.length bytes (the SIP004 subkey)
//   sealParts(method, key, nonce, prefix, a, b?) -> Buffer
//                                               prefix || AEAD(key, nonce, a || b) || tag
//   openAt(method, key, nonce, sealed, offset) -> Buffer | number
//                                               plaintext of sealed[offset..] (tag last), or 1
//   udpSeal(method, masterKey, head, payload, out?) -> Buffer (or its length, written into out)
//                                               SIP004 datagram: a random salt (RandomBytes),
//                                               subkey = hkdfSha1(masterKey, salt), zero nonce,
//                                               salt || AEAD(head || payload) || tag
//   udpOpen(method, masterKey, packet, out?) -> Buffer | number (with out: its length, or -1)
//                                               the plaintext of a SIP004 datagram, or 1 when it
//                                               is too short or does not authenticate
//   ctxPoolSize(method) -> number               contexts the thread's pool keeps (tests; optional)
// These share one EVP_CIPHER_CTX per method and thread whose key is set on every call.
#include "oneshot.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstring>

#include "exports.h"

namespace ladder {

const uint8_t kZeroNonce[kNonce] = {0};

namespace {

// HMAC-SHA1 over SHA1_Transform (one 64-byte block into a SHA_CTX's h0..h4): every message here
// is the 64-byte padded key plus at most kMaxTail bytes, so the padding is written once by hand
// and each HMAC is whole compressions only - none of SHA1_Update/SHA1_Final's buffering, byte
// counts and per-call cleanse (about a sixth of HKDF's instructions, more with SHA-NI).
constexpr size_t kMaxTail = 128 - 9;  // what two blocks hold after the 0x80 byte and bit count
static_assert(kMaxSubkey <= kMaxTail, "HKDF's ikm must fit the two tail blocks");

// Everything secret HKDF holds, wiped once at the end.
struct HkdfWork {
  SHA_CTX inner;  // after the padded key XOR 0x36
  SHA_CTX outer;  // after the padded key XOR 0x5c
  SHA_CTX t;
  uint8_t pad[64];
  uint8_t buf[128];
  uint8_t prk[SHA_DIGEST_LENGTH];
  uint8_t okm[SHA_DIGEST_LENGTH];
};

void HmacInit(HkdfWork* w, const uint8_t* key, size_t key_len) {
  uint8_t* k = w->buf;  // the padded key
  memset(k, 0, 64);
  if (key_len > 64) {
    SHA_CTX t;
    SHA1_Init(&t);
    SHA1_Update(&t, key, key_len);
    SHA1_Final(k, &t);
    Wipe(&t, sizeof t);
  } else if (key_len > 0) {
    memcpy(k, key, key_len);
  }
  for (size_t i = 0; i < 64; i++) w->pad[i] = k[i] ^ 0x36;
  SHA1_Init(&w->inner);
  SHA1_Transform(&w->inner, w->pad);
  for (size_t i = 0; i < 64; i++) w->pad[i] = k[i] ^ 0x5c;
  SHA1_Init(&w->outer);
  SHA1_Transform(&w->outer, w->pad);
}

// w->t = *from, then absorbs w->buf[0..n) (n <= kMaxTail), the last bytes of a message that began
// with one 64-byte block, with SHA-1's padding; out (20 bytes, may be w->buf) = the digest.
void FinishTail(HkdfWork* w, const SHA_CTX* from, size_t n, uint8_t* out) {
  // Only h0..h4 are state: the compression reads and writes nothing else of a SHA_CTX.
  w->t.h0 = from->h0;
  w->t.h1 = from->h1;
  w->t.h2 = from->h2;
  w->t.h3 = from->h3;
  w->t.h4 = from->h4;
  const size_t blocks = n + 9 <= 64 ? 1 : 2;
  uint8_t* b = w->buf;
  b[n] = 0x80;
  // The message's bit count, (64 + n) * 8 < 2^16, in the block's last 8 bytes, big-endian.
  const size_t bits = (64 + n) * 8;
  memset(b + n + 1, 0, blocks * 64 - n - 3);
  b[blocks * 64 - 2] = static_cast<uint8_t>(bits >> 8);
  b[blocks * 64 - 1] = static_cast<uint8_t>(bits);
  SHA1_Transform(&w->t, b);
  if (blocks == 2) SHA1_Transform(&w->t, b + 64);
  const SHA_LONG h[5] = {w->t.h0, w->t.h1, w->t.h2, w->t.h3, w->t.h4};
  for (size_t i = 0; i < 5; i++) {
    out[4 * i] = static_cast<uint8_t>(h[i] >> 24);
    out[4 * i + 1] = static_cast<uint8_t>(h[i] >> 16);
    out[4 * i + 2] = static_cast<uint8_t>(h[i] >> 8);
    out[4 * i + 3] = static_cast<uint8_t>(h[i]);
  }
}

// out (20 bytes) = HMAC(key of HmacInit, w->buf[0..n)), n <= kMaxTail.
void HmacMac(HkdfWork* w, size_t n, uint8_t* out) {
  FinishTail(w, &w->inner, n, w->buf);  // the inner digest is the outer hash's tail
  FinishTail(w, &w->outer, SHA_DIGEST_LENGTH, out);
}

constexpr uint8_t kSsSubkeyInfo[] = {'s', 's', '-', 's', 'u', 'b', 'k', 'e', 'y'};

}  // namespace

// RFC 5869 with SHA-1: PRK = HMAC(salt, ikm); T(i) = HMAC(PRK, T(i-1) || info || i).
bool HkdfSha1(const uint8_t* ikm, size_t ikm_len, const uint8_t* salt, size_t salt_len, uint8_t* out,
              size_t out_len) {
  if (out_len > kMaxSubkey || ikm_len > kMaxSubkey) return false;
  HkdfWork w;
  HmacInit(&w, salt, salt_len);
  if (ikm_len > 0) memcpy(w.buf, ikm, ikm_len);
  HmacMac(&w, ikm_len, w.prk);
  HmacInit(&w, w.prk, sizeof w.prk);
  size_t t_len = 0;
  size_t done = 0;
  for (uint8_t i = 1; done < out_len; i++) {
    memcpy(w.buf, w.okm, t_len);  // T(i-1)
    memcpy(w.buf + t_len, kSsSubkeyInfo, sizeof kSsSubkeyInfo);
    w.buf[t_len + sizeof kSsSubkeyInfo] = i;
    HmacMac(&w, t_len + sizeof kSsSubkeyInfo + 1, w.okm);
    t_len = sizeof w.okm;
    const size_t take = out_len - done < t_len ? out_len - done : t_len;
    memcpy(out + done, w.okm, take);
    done += take;
  }
  Wipe(&w, sizeof w);
  return true;
}

namespace {

// A wiping re-key's key: as long as the longest AES key.
const uint8_t kZeroKey[32] = {0};

// The calling thread's set-up contexts, per method (PoolTake/PoolGive), and its one-shot
// contexts (t_oneshot). Freed when the thread exits (a worker's end); `dead` then sends any later
// PoolGive (a finalizer running after the thread's destructors) straight to EVP_CIPHER_CTX_free.
struct CtxPool {
  EVP_CIPHER_CTX* ctx[kMethods][kPoolMax] = {};
  int n[kMethods] = {};
  ~CtxPool();
};
thread_local bool t_pool_dead = false;  // trivially destructible: still readable after ~CtxPool
// The one-shot operations' context per method (OneShotCtx): keyed with the last subkey used,
// until its next use; freed (and so cleansed) with the pool when the thread exits.
thread_local EVP_CIPHER_CTX* t_oneshot[kMethods] = {nullptr, nullptr, nullptr, nullptr};
thread_local CtxPool t_pool;

CtxPool::~CtxPool() {
  t_pool_dead = true;
  for (int m = 0; m < kMethods; m++) {
    for (int i = 0; i < n[m]; i++) EVP_CIPHER_CTX_free(ctx[m][i]);
    n[m] = 0;
    EVP_CIPHER_CTX_free(t_oneshot[m]);  // cleanses the last subkey's schedule
    t_oneshot[m] = nullptr;
  }
}

// Only AES-GCM contexts are kept: a re-key resets all of their key-derived state (see PoolGive).
bool Poolable(int m) { return m == 0 || m == 1 || m == 3; }

// A new context of method m's cipher with a 12-byte IV and no key yet.
EVP_CIPHER_CTX* NewCtx(int m) {
  const EVP_CIPHER* cipher = CipherOf(m);
  if (cipher == nullptr) return nullptr;
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  if (c == nullptr || EVP_CipherInit_ex(c, cipher, nullptr, nullptr, nullptr, 1) != 1 ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, static_cast<int>(kNonce), nullptr) != 1) {
    EVP_CIPHER_CTX_free(c);
    return nullptr;
  }
  return c;
}

}  // namespace

EVP_CIPHER_CTX* PoolTake(int m) {
  if (m < 0 || m >= kMethods) return nullptr;
  if (!t_pool_dead) {
    CtxPool& p = t_pool;
    if (p.n[m] > 0) return p.ctx[m][--p.n[m]];
  }
  return NewCtx(m);
}

void PoolGive(int m, EVP_CIPHER_CTX* ctx) {
  if (ctx == nullptr) return;
  if (!t_pool_dead && m >= 0 && m < kMethods && Poolable(m)) {
    CtxPool& p = t_pool;
    // The zero key has the method's key length (the context's own), so every round key of the
    // old schedule is overwritten, and the GCM state is cleared and rebuilt from the zero key.
    if (p.n[m] < kPoolMax && EVP_CipherInit_ex(ctx, nullptr, nullptr, kZeroKey, nullptr, 1) == 1) {
      p.ctx[m][p.n[m]++] = ctx;
      return;
    }
  }
  EVP_CIPHER_CTX_free(ctx);  // cleanses the key schedule
}

int PoolSize(int m) { return m >= 0 && m < kMethods && !t_pool_dead ? t_pool.n[m] : 0; }

bool RandomBytes(uint8_t* out, size_t n) {
  static thread_local uint8_t block[4096];
  static thread_local size_t pos = sizeof(block);  // empty: filled on first use
  if (n > 64) return false;
  if (pos + n > sizeof(block)) {
    if (RAND_bytes(block, static_cast<int>(sizeof(block))) != 1) return false;
    pos = 0;
  }
  memcpy(out, block + pos, n);
  memset(block + pos, 0, n);
  pos += n;
  return true;
}

EVP_CIPHER_CTX* OneShotCtx(int m) {
  if (m < 0 || m >= kMethods) return nullptr;
  if (t_oneshot[m] == nullptr) t_oneshot[m] = PoolTake(m);
  return t_oneshot[m];
}

EVP_CIPHER_CTX* DetachOneShotCtx(int m) {
  if (m < 0 || m >= kMethods) return nullptr;
  EVP_CIPHER_CTX* c = t_oneshot[m];
  t_oneshot[m] = nullptr;
  return c;
}

// out receives AEAD(a || b) then the tag (an + bn + 16 bytes).
bool SealTwo(EVP_CIPHER_CTX* ctx, const uint8_t* key, const uint8_t* nonce, const uint8_t* a, size_t an,
             const uint8_t* b, size_t bn, uint8_t* out) {
  int outl = 0;
  int finl = 0;
  if (an > kMaxOp || bn > kMaxOp) return false;
  if (EVP_CipherInit_ex(ctx, nullptr, nullptr, key, nonce, 1) != 1) return false;
  size_t o = 0;
  if (an > 0) {
    if (EVP_CipherUpdate(ctx, out, &outl, a, static_cast<int>(an)) != 1 || static_cast<size_t>(outl) != an) {
      return false;
    }
    o = an;
  }
  if (bn > 0) {
    if (EVP_CipherUpdate(ctx, out + o, &outl, b, static_cast<int>(bn)) != 1 || static_cast<size_t>(outl) != bn) {
      return false;
    }
    o += bn;
  }
  if (EVP_CipherFinal_ex(ctx, out + o, &finl) != 1 || finl != 0) return false;
  return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTag), out + o) == 1;
}

bool OpenTagged(EVP_CIPHER_CTX* ctx, const uint8_t* key, const uint8_t* nonce, const uint8_t* in, size_t n,
                uint8_t* out) {
  int outl = 0;
  int finl = 0;
  if (n > kMaxOp) return false;
  if (EVP_CipherInit_ex(ctx, nullptr, nullptr, key, nonce, 0) != 1) return false;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTag), const_cast<uint8_t*>(in + n)) != 1) {
    return false;
  }
  if (n > 0 && EVP_CipherUpdate(ctx, out, &outl, in, static_cast<int>(n)) != 1) return false;
  if (static_cast<size_t>(outl) > n) return false;
  if (EVP_CipherFinal_ex(ctx, out + outl, &finl) != 1) return false;
  return static_cast<size_t>(outl) + static_cast<size_t>(finl) == n;
}

bool GetMethod(const Args& a, size_t i, int* m, EVP_CIPHER_CTX** ctx, size_t* key_len) {
  int32_t v = -1;
  if (!a.Int32(i, &v) || v < 0 || v >= kMethods) return Throw(a.env(), "method must be 0, 1, 2 or 3");
  *ctx = OneShotCtx(v);
  if (*ctx == nullptr) return Throw(a.env(), "cipher not available in this OpenSSL");
  *m = v;
  *key_len = static_cast<size_t>(EVP_CIPHER_get_key_length(CipherOf(v)));
  return true;
}

bool GetMethodAndMasterKey(const Args& a, size_t i, int* m, EVP_CIPHER_CTX** ctx, size_t* key_len,
                           const uint8_t** master, size_t* master_len) {
  return GetMethod(a, i, m, ctx, key_len) && a.Bytes(i + 1, master, master_len, "masterKey must be a Uint8Array");
}

napi_value HkdfSha1Js(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  const uint8_t* key = nullptr;
  size_t key_len = 0;
  const uint8_t* salt = nullptr;
  size_t salt_len = 0;
  if (!a.Need(2, "hkdfSha1(key, salt)") || !a.Bytes(0, &key, &key_len, "key must be a Uint8Array") ||
      !a.Bytes(1, &salt, &salt_len, "salt must be a Uint8Array")) {
    return nullptr;
  }
  if (key_len == 0 || key_len > kMaxSubkey) {
    Throw(env, "key must be 1..64 bytes");
    return nullptr;
  }
  void* out = nullptr;
  napi_value result;
  if (napi_create_buffer(env, key_len, &out, &result) != napi_ok) return AllocFailed(env);
  HkdfSha1(key, key_len, salt, salt_len, static_cast<uint8_t*>(out), key_len);
  return result;
}

napi_value SealParts(napi_env env, napi_callback_info info) {
  const Args args(env, info);
  int m;
  EVP_CIPHER_CTX* ctx;
  size_t key_len_want;
  const uint8_t *key, *nonce, *prefix, *a, *b;
  size_t key_len, nonce_len, prefix_len, an, bn;
  if (!args.Need(5, "sealParts(method, key, nonce, prefix, a, b?)") ||
      !GetMethod(args, 0, &m, &ctx, &key_len_want) || !args.Bytes(1, &key, &key_len, "key must be a Uint8Array") ||
      !args.Bytes(2, &nonce, &nonce_len, "nonce must be a Uint8Array") ||
      !args.OptionalBytes(3, &prefix, &prefix_len, "prefix must be a Uint8Array") ||
      !args.Bytes(4, &a, &an, "a must be a Uint8Array") || !args.OptionalBytes(5, &b, &bn, "b must be a Uint8Array")) {
    return nullptr;
  }
  if (key_len != key_len_want || nonce_len != kNonce) {
    Throw(env, "key or nonce has the wrong length for this method");
    return nullptr;
  }
  if (an > kMaxOp || bn > kMaxOp - an || prefix_len > kMaxOp) {
    Throw(env, "input too long");
    return nullptr;
  }
  void* out_ptr = nullptr;
  napi_value result;
  if (napi_create_buffer(env, prefix_len + an + bn + kTag, &out_ptr, &result) != napi_ok) return AllocFailed(env);
  uint8_t* out = static_cast<uint8_t*>(out_ptr);
  if (prefix_len > 0) memcpy(out, prefix, prefix_len);
  if (!SealTwo(ctx, key, nonce, a, an, b, bn, out + prefix_len)) {
    napi_throw_error(env, "ERR_LADDER_AEAD", "EVP seal failed");
    return nullptr;
  }
  return result;
}

napi_value OpenAt(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  int m;
  EVP_CIPHER_CTX* ctx;
  size_t key_len_want;
  const uint8_t *key, *nonce, *sealed;
  size_t key_len, nonce_len, n;
  int64_t offset = -1;
  if (!a.Need(5, "openAt(method, key, nonce, sealed, offset)") || !GetMethod(a, 0, &m, &ctx, &key_len_want) ||
      !a.Bytes(1, &key, &key_len, "key must be a Uint8Array") ||
      !a.Bytes(2, &nonce, &nonce_len, "nonce must be a Uint8Array") ||
      !a.Bytes(3, &sealed, &n, "sealed must be a Uint8Array")) {
    return nullptr;
  }
  if (!a.Int64(4, &offset) || offset < 0 || static_cast<uint64_t>(offset) > n) {
    Throw(env, "offset outside sealed");
    return nullptr;
  }
  if (key_len != key_len_want || nonce_len != kNonce) {
    Throw(env, "key or nonce has the wrong length for this method");
    return nullptr;
  }
  const size_t avail = n - static_cast<size_t>(offset);
  if (avail < kTag || avail - kTag > kMaxOp) return Number(env, kErrCipher);
  void* out = nullptr;
  napi_value result;
  if (napi_create_buffer(env, avail - kTag, &out, &result) != napi_ok) return AllocFailed(env);
  if (!OpenTagged(ctx, key, nonce, sealed + offset, avail - kTag, static_cast<uint8_t*>(out))) {
    return Number(env, kErrCipher);
  }
  return result;
}

napi_value UdpSeal(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  int m;
  EVP_CIPHER_CTX* ctx;
  size_t key_len;
  const uint8_t *master, *head, *payload;
  size_t master_len, hn, pn;
  if (!a.Need(4, "udpSeal(method, masterKey, head, payload)") ||
      !GetMethodAndMasterKey(a, 0, &m, &ctx, &key_len, &master, &master_len) ||
      !a.Bytes(2, &head, &hn, "head must be a Uint8Array") ||
      !a.Bytes(3, &payload, &pn, "payload must be a Uint8Array")) {
    return nullptr;
  }
  if (master_len != key_len) {
    Throw(env, "masterKey has the wrong length for this method");
    return nullptr;
  }
  if (hn > kMaxOp || pn > kMaxOp - hn) {
    Throw(env, "datagram too long");
    return nullptr;
  }
  const size_t salt_len = key_len;  // SIP004: salt size = key size for every method here
  const size_t total = salt_len + hn + pn + kTag;
  void* out_ptr = nullptr;
  napi_value result = nullptr;
  if (a.Has(4)) {  // into a caller's buffer of exactly the datagram's size (node's pooled allocUnsafe)
    const uint8_t* o = nullptr;
    size_t on = 0;
    if (!a.Bytes(4, &o, &on, "out must be a Uint8Array")) return nullptr;
    if (on != total) {
      Throw(env, "out must be exactly salt + head + payload + 16 bytes");
      return nullptr;
    }
    out_ptr = const_cast<uint8_t*>(o);
    // head or payload overlapping out would be read after being overwritten
    if ((hn > 0 && head < o + on && o < head + hn) || (pn > 0 && payload < o + on && o < payload + pn)) {
      Throw(env, "out overlaps the input");
      return nullptr;
    }
  } else if (napi_create_buffer(env, total, &out_ptr, &result) != napi_ok) {
    return AllocFailed(env);
  }
  uint8_t* out = static_cast<uint8_t*>(out_ptr);
  const bool salted = RandomBytes(out, salt_len);
  const Subkey subkey(master, master_len, out, salt_len);
  if (!salted || !subkey.ok() || !SealTwo(ctx, subkey.data(), kZeroNonce, head, hn, payload, pn, out + salt_len)) {
    napi_throw_error(env, "ERR_LADDER_AEAD", "datagram seal failed");
    return nullptr;
  }
  return result != nullptr ? result : Number(env, static_cast<int32_t>(total));
}

// ctxPoolSize(method) -> number: the set-up contexts of method the calling thread keeps (tests).
napi_value CtxPoolSize(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  int32_t m = -1;
  if (!a.Need(1, "ctxPoolSize(method)") || !a.Int32(0, &m)) return nullptr;
  return Number(env, PoolSize(m));
}

napi_value UdpOpen(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  int m;
  EVP_CIPHER_CTX* ctx;
  size_t key_len;
  const uint8_t *master, *packet;
  size_t master_len, n;
  if (!a.Need(3, "udpOpen(method, masterKey, packet)") ||
      !GetMethodAndMasterKey(a, 0, &m, &ctx, &key_len, &master, &master_len) ||
      !a.Bytes(2, &packet, &n, "packet must be a Uint8Array")) {
    return nullptr;
  }
  if (master_len != key_len) {
    Throw(env, "masterKey has the wrong length for this method");
    return nullptr;
  }
  const size_t salt_len = key_len;
  const bool has_out = a.Has(3);  // with out: a length, or -1 for anything that does not open
  if (n < salt_len + kTag || n - salt_len - kTag > kMaxOp) return Number(env, has_out ? -1 : kErrCipher);
  const size_t plain_len = n - salt_len - kTag;
  void* out = nullptr;
  napi_value result = nullptr;
  uint8_t empty_out = 0;
  if (has_out) {  // into a caller's buffer of exactly the plaintext's size
    const uint8_t* o = nullptr;
    size_t on = 0;
    if (!a.Bytes(3, &o, &on, "out must be a Uint8Array")) return nullptr;
    if (on != plain_len) {
      Throw(env, "out must be exactly the plaintext size");
      return nullptr;
    }
    if (plain_len > 0 && packet < o + on && o < packet + n) {
      Throw(env, "out overlaps the packet");
      return nullptr;
    }
    out = plain_len > 0 ? const_cast<uint8_t*>(o) : &empty_out;  // Buffer.alloc(0) has no data pointer
  }
  const Subkey subkey(master, master_len, packet, salt_len);
  if (!has_out && napi_create_buffer(env, plain_len, &out, &result) != napi_ok) return AllocFailed(env);
  if (!subkey.ok() ||
      !OpenTagged(ctx, subkey.data(), kZeroNonce, packet + salt_len, plain_len, static_cast<uint8_t*>(out))) {
    return Number(env, has_out ? -1 : kErrCipher);
  }
  return has_out ? Number(env, static_cast<int32_t>(plain_len)) : result;
}

}  // namespace ladder
