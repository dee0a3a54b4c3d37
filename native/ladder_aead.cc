// Ladder: SIP004 (Shadowsocks AEAD 2017) chunk codec as a small N-API addon.
//
// Why: node:crypto cannot re-key a cipher with a new nonce, so the JS codec pays a
// createCipheriv/createDecipheriv object life cycle for every length and every payload of
// every chunk (see docs/benchmarks.md). Here each direction keeps one EVP_CIPHER_CTX whose key
// is set once; each AEAD operation only re-initialises the nonce:
//   EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, enc)
// and the whole chunking loop runs in C++, so one call handles one socket read or write.
//
// Wire format (SIP004): [salt][sealed len][sealed payload]... where sealed len is the 2-byte
// big-endian payload length (1..0x3FFF) plus a 16-byte tag, sealed payload is the payload plus
// a 16-byte tag, and the 12-byte nonce is a little-endian counter that starts at zero and
// increments after every seal/open. The salt and the subkey derivation stay in JS.
//
// OpenSSL comes from the node binary itself (it exports its bundled libcrypto), built against
// the headers node ships in include/node/openssl; nothing is linked here.
//
// JS surface (wrapped by src/protocol/shadowsocks/native.ts):
//   available(method) -> boolean
//   create(method, key, encrypt) -> codec     method: 0 aes-128-gcm, 1 aes-256-gcm, 2 chacha20-poly1305
//   encode(codec, data, prefix?) -> Buffer    [prefix][sealed len][sealed payload]...
//   decode(codec, data, info) -> Buffer | number
//       Buffer: the plaintext of every chunk completed by data (possibly empty); bytes of an
//       incomplete length or payload are copied into the codec (so data may be reused at once).
//       number: 1 = authentication failed, 2 = chunk length 0 or > 0x3FFF; the codec is then
//       failed for good. info (Int32Array, length >= 4) receives after every call:
//       [0] bytes buffered in the codec, [1] size of the element being read (18, or len + 16),
//       [2] state (0 reading a length, 1 reading a payload), [3] the bad length for error 2.
//   createSession(method, key) -> codec        for single operations in either direction
//   seal(codec, plain) -> Buffer                ciphertext || tag with the next nonce
//   sealInto(codec, plain, out, offset) -> n    the same written into out at offset
//   open(codec, sealed) -> Buffer | number      plaintext, or 1 when authentication fails
//       seal/sealInto take an encoder or session codec, open a decoder or session codec; one
//       nonce counter per codec, advanced by every successful operation.

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace {

constexpr size_t kTag = 16;
constexpr size_t kNonce = 12;
constexpr size_t kMaxPayload = 0x3FFF;
constexpr size_t kLenChunk = 2 + kTag;
constexpr size_t kMaxElement = kMaxPayload + kTag;
// Largest single seal/open (datagrams can exceed a stream chunk; EVP takes an int length).
constexpr size_t kMaxOp = size_t{1} << 30;
constexpr int kMethods = 3;
// What we tell V8 each codec costs outside its heap (ctx + struct; the decoder's carry buffer is
// accounted separately when allocated).
constexpr int64_t kCodecExternal = 1024;

enum Status : int32_t { kOk = 0, kErrCipher = 1, kErrPayloadSize = 2 };
enum State : int32_t { kReadLength = 0, kReadPayload = 1 };

// Cipher objects fetched once per process (EVP_CIPHER is reference counted and immutable after
// fetch, so sharing across worker threads is fine). Never freed: they live as long as libcrypto.
const EVP_CIPHER* g_cipher[kMethods] = {nullptr, nullptr, nullptr};
std::once_flag g_fetch_once;

void FetchCiphers() {
  static const char* const kNames[kMethods] = {"AES-128-GCM", "AES-256-GCM", "ChaCha20-Poly1305"};
  static const size_t kKeyLen[kMethods] = {16, 32, 32};
  for (int i = 0; i < kMethods; i++) {
    const EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, kNames[i], nullptr);
    if (c == nullptr) {
      // Fall back to the legacy constant (OpenSSL then fetches implicitly at key set-up only).
      c = i == 0 ? EVP_aes_128_gcm() : i == 1 ? EVP_aes_256_gcm() : EVP_chacha20_poly1305();
    }
    if (c != nullptr && (static_cast<size_t>(EVP_CIPHER_get_key_length(c)) != kKeyLen[i] ||
                         EVP_CIPHER_get_iv_length(c) != static_cast<int>(kNonce))) {
      c = nullptr;
    }
    g_cipher[i] = c;
  }
}

// Tags the externals we hand out, so a foreign external can never be cast to Codec.
const napi_type_tag kCodecTag = {0x6c61646465724145ULL, 0x4144353030340001ULL};

struct Record {  // one payload found by decode's first pass
  const uint8_t* src;
  size_t len;  // plaintext length (without tag)
  uint8_t nonce[kNonce];
};

constexpr int kSession = 2;  // Codec::enc for a codec that may seal and open

struct Codec {
  EVP_CIPHER_CTX* ctx = nullptr;
  int enc = 0;  // 1 encoder, 0 decoder, kSession either
  uint8_t nonce[kNonce] = {0};
  bool failed = false;
  // Decoder only.
  State state = kReadLength;
  size_t need = kLenChunk;
  uint8_t* carry = nullptr;  // bytes of the current, incomplete element
  size_t carry_len = 0;
  size_t carry_cap = 0;
  Record* recs = nullptr;
  size_t recs_cap = 0;
  int64_t external = 0;  // bytes reported to V8
};

void Increment(uint8_t* n) {
  for (size_t i = 0; i < kNonce; i++) {
    if (++n[i] != 0) return;
  }
}

void FreeCodec(Codec* c) {
  if (c == nullptr) return;
  EVP_CIPHER_CTX_free(c->ctx);  // cleanses the key schedule
  if (c->carry != nullptr) {
    OPENSSL_cleanse(c->carry, c->carry_cap);
    free(c->carry);
  }
  free(c->recs);
  delete c;
}

void Finalize(napi_env env, void* data, void* /*hint*/) {
  Codec* c = static_cast<Codec*>(data);
  int64_t ignored;
  if (c != nullptr && c->external != 0) napi_adjust_external_memory(env, -c->external, &ignored);
  FreeCodec(c);
}

// One AEAD seal: out receives n bytes of ciphertext then the 16-byte tag.
bool SealOne(Codec* c, const uint8_t* in, size_t n, uint8_t* out) {
  int outl = 0;
  int finl = 0;
  if (n > kMaxOp) return false;
  if (EVP_CipherInit_ex(c->ctx, nullptr, nullptr, nullptr, c->nonce, 1) != 1) return false;
  if (n > 0 && EVP_CipherUpdate(c->ctx, out, &outl, in, static_cast<int>(n)) != 1) return false;
  if (static_cast<size_t>(outl) > n) return false;
  if (EVP_CipherFinal_ex(c->ctx, out + outl, &finl) != 1) return false;
  if (static_cast<size_t>(outl) + static_cast<size_t>(finl) != n) return false;
  if (EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTag), out + n) != 1) return false;
  Increment(c->nonce);
  return true;
}

// One AEAD open of in[0..n) with the tag at in[n..n+16), under `nonce`; out receives n bytes.
// out may hold garbage when this returns false; callers then discard it.
bool OpenOne(Codec* c, const uint8_t* nonce, const uint8_t* in, size_t n, uint8_t* out) {
  int outl = 0;
  int finl = 0;
  if (n > kMaxOp) return false;
  if (EVP_CipherInit_ex(c->ctx, nullptr, nullptr, nullptr, nonce, 0) != 1) return false;
  if (EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTag),
                          const_cast<uint8_t*>(in + n)) != 1) {
    return false;
  }
  if (n > 0 && EVP_CipherUpdate(c->ctx, out, &outl, in, static_cast<int>(n)) != 1) return false;
  if (static_cast<size_t>(outl) > n) return false;
  if (EVP_CipherFinal_ex(c->ctx, out + outl, &finl) != 1) return false;
  return static_cast<size_t>(outl) + static_cast<size_t>(finl) == n;
}

// ---- argument helpers ------------------------------------------------------------------------

bool Throw(napi_env env, const char* msg) {
  napi_throw_type_error(env, "ERR_LADDER_AEAD", msg);
  return false;
}

// Any Uint8Array (Buffer included), honouring its byte offset into a larger ArrayBuffer.
bool GetBytes(napi_env env, napi_value v, const uint8_t** data, size_t* len, const char* what) {
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return Throw(env, what);
  napi_typedarray_type type;
  size_t length = 0;
  void* ptr = nullptr;
  if (napi_get_typedarray_info(env, v, &type, &length, &ptr, nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array) {
    return Throw(env, what);
  }
  if (ptr == nullptr && length != 0) return Throw(env, what);  // detached
  *data = static_cast<const uint8_t*>(ptr);
  *len = length;
  return true;
}

// enc: 1 for an encoding operation, 0 for decoding; single operations (allow_session) also
// accept a session codec.
bool GetCodec(napi_env env, napi_value v, Codec** out, int enc, bool allow_session = false) {
  napi_valuetype t;
  bool tagged = false;
  void* p = nullptr;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_check_object_type_tag(env, v, &kCodecTag, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, v, &p) != napi_ok || p == nullptr) {
    return Throw(env, "expected a ladder_aead codec");
  }
  Codec* c = static_cast<Codec*>(p);
  if (c->enc != enc && !(allow_session && c->enc == kSession)) {
    return Throw(env, enc ? "codec is not an encoder" : "codec is not a decoder");
  }
  *out = c;
  return true;
}

// After a failed napi_create_buffer: make sure JS sees an exception, never a bare undefined.
napi_value AllocFailed(napi_env env) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) {
    napi_throw_range_error(env, "ERR_LADDER_AEAD", "cannot allocate the output buffer");
  }
  return nullptr;
}

napi_value Number(napi_env env, int32_t v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

napi_value Bool(napi_env env, bool v) {
  napi_value r;
  napi_get_boolean(env, v, &r);
  return r;
}

// ---- exported functions ----------------------------------------------------------------------

napi_value Available(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t m = -1;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &m) != napi_ok) {
    return Bool(env, false);
  }
  std::call_once(g_fetch_once, FetchCiphers);
  return Bool(env, m >= 0 && m < kMethods && g_cipher[m] != nullptr);
}

// A codec for method argv[0] and key argv[1]; mode 1 encoder, 0 decoder, kSession both.
napi_value MakeCodec(napi_env env, napi_value* argv, int mode) {
  int32_t m = -1;
  const uint8_t* key = nullptr;
  size_t key_len = 0;
  if (napi_get_value_int32(env, argv[0], &m) != napi_ok || m < 0 || m >= kMethods) {
    Throw(env, "method must be 0, 1 or 2");
    return nullptr;
  }
  if (!GetBytes(env, argv[1], &key, &key_len, "key must be a Uint8Array")) return nullptr;
  std::call_once(g_fetch_once, FetchCiphers);
  const EVP_CIPHER* cipher = g_cipher[m];
  if (cipher == nullptr) {
    Throw(env, "cipher not available in this OpenSSL");
    return nullptr;
  }
  if (key_len != static_cast<size_t>(EVP_CIPHER_get_key_length(cipher))) {
    Throw(env, "key has the wrong length for this method");
    return nullptr;
  }
  Codec* c = new (std::nothrow) Codec();
  if (c == nullptr) {
    napi_throw_error(env, "ERR_LADDER_AEAD", "out of memory");
    return nullptr;
  }
  c->enc = mode;
  const int init_enc = mode == 0 ? 0 : 1;  // every operation sets its direction again anyway
  c->ctx = EVP_CIPHER_CTX_new();
  if (c->ctx == nullptr || EVP_CipherInit_ex(c->ctx, cipher, nullptr, nullptr, nullptr, init_enc) != 1 ||
      EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_AEAD_SET_IVLEN, static_cast<int>(kNonce), nullptr) != 1 ||
      EVP_CipherInit_ex(c->ctx, nullptr, nullptr, key, nullptr, init_enc) != 1) {
    FreeCodec(c);
    napi_throw_error(env, "ERR_LADDER_AEAD", "EVP cipher set-up failed");
    return nullptr;
  }
  napi_value ext;
  if (napi_create_external(env, c, Finalize, nullptr, &ext) != napi_ok) {
    FreeCodec(c);
    napi_throw_error(env, "ERR_LADDER_AEAD", "napi_create_external failed");
    return nullptr;
  }
  // From here the finalizer owns c.
  napi_type_tag_object(env, ext, &kCodecTag);
  int64_t ignored;
  if (napi_adjust_external_memory(env, kCodecExternal, &ignored) == napi_ok) c->external = kCodecExternal;
  return ext;
}

napi_value Create(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  bool enc = false;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 3) {
    Throw(env, "create(method, key, encrypt)");
    return nullptr;
  }
  if (napi_get_value_bool(env, argv[2], &enc) != napi_ok) {
    Throw(env, "encrypt must be a boolean");
    return nullptr;
  }
  return MakeCodec(env, argv, enc ? 1 : 0);
}

napi_value CreateSession(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) {
    Throw(env, "createSession(method, key)");
    return nullptr;
  }
  return MakeCodec(env, argv, kSession);
}

napi_value Encode(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) {
    Throw(env, "encode(codec, data, prefix?)");
    return nullptr;
  }
  Codec* c;
  const uint8_t* data = nullptr;
  size_t n = 0;
  const uint8_t* prefix = nullptr;
  size_t prefix_len = 0;
  if (!GetCodec(env, argv[0], &c, 1)) return nullptr;
  if (!GetBytes(env, argv[1], &data, &n, "data must be a Uint8Array")) return nullptr;
  if (argc >= 3) {
    napi_valuetype t;
    if (napi_typeof(env, argv[2], &t) != napi_ok) return nullptr;
    if (t != napi_undefined && !GetBytes(env, argv[2], &prefix, &prefix_len, "prefix must be a Uint8Array")) {
      return nullptr;
    }
  }
  if (c->failed) {
    napi_throw_error(env, "ERR_LADDER_AEAD", "encoder failed earlier");
    return nullptr;
  }
  const size_t chunks = n / kMaxPayload + (n % kMaxPayload != 0 ? 1 : 0);
  // n + chunks * 34 + prefix_len cannot overflow size_t for any n a Uint8Array can have, but a
  // too-large result is refused by napi_create_buffer below.
  const size_t out_len = prefix_len + n + chunks * (kLenChunk + kTag);
  void* out_ptr = nullptr;
  napi_value result;
  if (napi_create_buffer(env, out_len, &out_ptr, &result) != napi_ok) return AllocFailed(env);
  uint8_t* out = static_cast<uint8_t*>(out_ptr);
  size_t o = 0;
  if (prefix_len > 0) {
    memcpy(out, prefix, prefix_len);
    o = prefix_len;
  }
  for (size_t i = 0; i < n; i += kMaxPayload) {
    const size_t piece = n - i < kMaxPayload ? n - i : kMaxPayload;
    const uint8_t len[2] = {static_cast<uint8_t>(piece >> 8), static_cast<uint8_t>(piece & 0xff)};
    // o + 18 + piece + 16 <= out_len by construction of out_len.
    if (!SealOne(c, len, 2, out + o) || !SealOne(c, data + i, piece, out + o + kLenChunk)) {
      c->failed = true;
      napi_throw_error(env, "ERR_LADDER_AEAD", "EVP seal failed");
      return nullptr;
    }
    o += kLenChunk + piece + kTag;
  }
  if (o != out_len) {
    c->failed = true;
    napi_throw_error(env, "ERR_LADDER_AEAD", "internal length mismatch");
    return nullptr;
  }
  return result;
}

// Opens a sealed length field (18 bytes at p) with the codec's nonce. On success sets the
// payload state; returns a Status.
Status OpenLength(Codec* c, const uint8_t* p, int32_t* bad_len) {
  uint8_t len[2];
  if (!OpenOne(c, c->nonce, p, 2, len)) return kErrCipher;
  Increment(c->nonce);
  const size_t l = (static_cast<size_t>(len[0]) << 8) | len[1];
  if (l == 0 || l > kMaxPayload) {
    *bad_len = static_cast<int32_t>(l);
    return kErrPayloadSize;
  }
  c->state = kReadPayload;
  c->need = l + kTag;
  return kOk;
}

bool AddRecord(Codec* c, size_t* count, const uint8_t* src, size_t len) {
  if (*count == c->recs_cap) {
    const size_t cap = c->recs_cap == 0 ? 8 : c->recs_cap * 2;
    Record* r = static_cast<Record*>(realloc(c->recs, cap * sizeof(Record)));
    if (r == nullptr) return false;
    c->recs = r;
    c->recs_cap = cap;
  }
  Record* r = &c->recs[(*count)++];
  r->src = src;
  r->len = len;
  memcpy(r->nonce, c->nonce, kNonce);
  Increment(c->nonce);
  c->state = kReadLength;
  c->need = kLenChunk;
  return true;
}

// Frees the carry buffer (its bytes are no longer needed) and un-reports it to V8.
void ReleaseCarry(napi_env env, Codec* c) {
  if (c->carry == nullptr) return;
  OPENSSL_cleanse(c->carry, c->carry_cap);
  free(c->carry);
  int64_t ignored;
  const int64_t delta = static_cast<int64_t>(c->carry_cap);
  if (c->external >= delta && napi_adjust_external_memory(env, -delta, &ignored) == napi_ok) c->external -= delta;
  c->carry = nullptr;
  c->carry_cap = 0;
  c->carry_len = 0;
}

void WriteInfo(Codec* c, int32_t* info, int32_t bad_len) {
  info[0] = static_cast<int32_t>(c->carry_len);
  info[1] = static_cast<int32_t>(c->need);
  info[2] = c->state;
  info[3] = bad_len;
}

napi_value Decode(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 3) {
    Throw(env, "decode(codec, data, info)");
    return nullptr;
  }
  Codec* c;
  const uint8_t* data = nullptr;
  size_t n = 0;
  if (!GetCodec(env, argv[0], &c, 0)) return nullptr;
  if (!GetBytes(env, argv[1], &data, &n, "data must be a Uint8Array")) return nullptr;
  int32_t* out_info = nullptr;
  {
    bool is_ta = false;
    napi_typedarray_type type;
    size_t length = 0;
    void* ptr = nullptr;
    if (napi_is_typedarray(env, argv[2], &is_ta) != napi_ok || !is_ta ||
        napi_get_typedarray_info(env, argv[2], &type, &length, &ptr, nullptr, nullptr) != napi_ok ||
        type != napi_int32_array || length < 4 || ptr == nullptr) {
      Throw(env, "info must be an Int32Array of length >= 4");
      return nullptr;
    }
    out_info = static_cast<int32_t*>(ptr);
  }
  if (c->failed) {
    WriteInfo(c, out_info, 0);
    return Number(env, kErrCipher);
  }

  // Pass 1: walk [carry][data], opening length fields and recording complete payloads. Nothing
  // is copied yet except into the carry when it was already non-empty.
  Status status = kOk;
  int32_t bad_len = 0;
  size_t count = 0;
  size_t total = 0;
  size_t off = 0;
  if (c->carry_len > 0) {
    // carry_len < need <= carry_cap: the carry buffer was sized for this element.
    const size_t want = c->need - c->carry_len;
    const size_t take = n < want ? n : want;
    if (take > 0) memcpy(c->carry + c->carry_len, data, take);
    c->carry_len += take;
    off = take;
    if (c->carry_len < c->need) {
      WriteInfo(c, out_info, 0);
      napi_value empty;
      void* ignored;
      if (napi_create_buffer(env, 0, &ignored, &empty) != napi_ok) return AllocFailed(env);
      return empty;
    }
    c->carry_len = 0;  // its bytes stay valid until the carry is refilled after pass 2
    if (c->state == kReadLength) {
      status = OpenLength(c, c->carry, &bad_len);
    } else {
      const size_t len = c->need - kTag;
      if (!AddRecord(c, &count, c->carry, len)) {
        napi_throw_error(env, "ERR_LADDER_AEAD", "out of memory");
        c->failed = true;
        return nullptr;
      }
      total += len;
    }
  }
  while (status == kOk) {
    const size_t avail = n - off;
    if (avail < c->need) break;
    if (c->state == kReadLength) {
      status = OpenLength(c, data + off, &bad_len);
      if (status != kOk) break;
      off += kLenChunk;
    } else {
      const size_t len = c->need - kTag;
      if (!AddRecord(c, &count, data + off, len)) {
        napi_throw_error(env, "ERR_LADDER_AEAD", "out of memory");
        c->failed = true;
        return nullptr;
      }
      off += len + kTag;
      total += len;
    }
  }

  // Pass 2: one output buffer of exactly the plaintext size, payloads opened straight into it.
  // Payloads recorded in pass 1 all precede a pass-1 error in the stream, so checking them first
  // reports the first failure in stream order.
  void* out_ptr = nullptr;
  napi_value result;
  if (napi_create_buffer(env, total, &out_ptr, &result) != napi_ok) {
    c->failed = true;
    return AllocFailed(env);
  }
  uint8_t* out = static_cast<uint8_t*>(out_ptr);
  size_t o = 0;
  for (size_t i = 0; i < count; i++) {
    const Record& r = c->recs[i];
    if (o + r.len > total || !OpenOne(c, r.nonce, r.src, r.len, out + o)) {
      status = kErrCipher;
      bad_len = 0;
      break;
    }
    o += r.len;
  }
  if (status != kOk) {
    c->failed = true;
    c->carry_len = 0;
    WriteInfo(c, out_info, bad_len);
    return Number(env, status);
  }

  // Keep the bytes of the incomplete element (fewer than need) for the next call.
  const size_t rest = n - off;
  if (rest > 0) {
    if (c->need > kMaxElement || rest >= c->need) {  // cannot happen; refuse rather than overflow
      c->failed = true;
      napi_throw_error(env, "ERR_LADDER_AEAD", "internal state error");
      return nullptr;
    }
    if (c->carry_cap < c->need) {
      // Sized once for the largest element, so a bulk stream allocates this only once.
      uint8_t* buf = static_cast<uint8_t*>(malloc(kMaxElement));
      if (buf == nullptr) {
        c->failed = true;
        napi_throw_error(env, "ERR_LADDER_AEAD", "out of memory");
        return nullptr;
      }
      ReleaseCarry(env, c);
      c->carry = buf;
      int64_t ignored;
      const int64_t delta = static_cast<int64_t>(kMaxElement);
      if (napi_adjust_external_memory(env, delta, &ignored) == napi_ok) c->external += delta;
      c->carry_cap = kMaxElement;
    }
    memcpy(c->carry, data + off, rest);
    c->carry_len = rest;
  } else if (c->carry != nullptr) {
    // On a boundary with nothing pending (an idle connection, typically): give the 16 KiB back.
    ReleaseCarry(env, c);
  }
  WriteInfo(c, out_info, 0);
  return result;
}

// Single AEAD operations with the codec's nonce (for datagram-style use and tests).
napi_value Seal(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  Codec* c;
  const uint8_t* data = nullptr;
  size_t n = 0;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) {
    Throw(env, "seal(codec, plain)");
    return nullptr;
  }
  if (!GetCodec(env, argv[0], &c, 1, true) || !GetBytes(env, argv[1], &data, &n, "plain must be a Uint8Array")) {
    return nullptr;
  }
  if (n > kMaxOp) {
    Throw(env, "plain too long");
    return nullptr;
  }
  void* out = nullptr;
  napi_value result;
  if (napi_create_buffer(env, n + kTag, &out, &result) != napi_ok) return AllocFailed(env);
  if (c->failed || !SealOne(c, data, n, static_cast<uint8_t*>(out))) {
    c->failed = true;
    napi_throw_error(env, "ERR_LADDER_AEAD", "EVP seal failed");
    return nullptr;
  }
  return result;
}

napi_value SealInto(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  Codec* c;
  const uint8_t* data = nullptr;
  size_t n = 0;
  const uint8_t* out_c = nullptr;
  size_t out_len = 0;
  int64_t offset = -1;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 4) {
    Throw(env, "sealInto(codec, plain, out, offset)");
    return nullptr;
  }
  if (!GetCodec(env, argv[0], &c, 1, true) || !GetBytes(env, argv[1], &data, &n, "plain must be a Uint8Array") ||
      !GetBytes(env, argv[2], &out_c, &out_len, "out must be a Uint8Array")) {
    return nullptr;
  }
  double off_d = -1;
  if (napi_get_value_double(env, argv[3], &off_d) == napi_ok && off_d >= 0 && off_d <= 9007199254740991.0 &&
      off_d == static_cast<double>(static_cast<int64_t>(off_d))) {
    offset = static_cast<int64_t>(off_d);  // a non-negative safe integer; NaN and fractions fail
  }
  if (offset < 0 ||
      static_cast<uint64_t>(offset) > out_len || n > kMaxOp || out_len - static_cast<size_t>(offset) < n + kTag) {
    Throw(env, "sealInto: offset outside out, or out too small for plain + tag");
    return nullptr;
  }
  uint8_t* dst = const_cast<uint8_t*>(out_c) + offset;
  const uint8_t* src = data;
  uint8_t* tmp = nullptr;
  // EVP allows only exact in-place operation; any other overlap goes through a copy.
  if (n > 0 && src < dst + n + kTag && dst < src + n) {
    tmp = static_cast<uint8_t*>(malloc(n));
    if (tmp == nullptr) {
      napi_throw_error(env, "ERR_LADDER_AEAD", "out of memory");
      return nullptr;
    }
    memcpy(tmp, src, n);
    src = tmp;
  }
  const bool ok = !c->failed && SealOne(c, src, n, dst);
  free(tmp);
  if (!ok) {
    c->failed = true;
    napi_throw_error(env, "ERR_LADDER_AEAD", "EVP seal failed");
    return nullptr;
  }
  napi_value r;
  napi_create_int64(env, static_cast<int64_t>(n + kTag), &r);
  return r;
}

napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  Codec* c;
  const uint8_t* data = nullptr;
  size_t n = 0;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) {
    Throw(env, "open(codec, sealed)");
    return nullptr;
  }
  if (!GetCodec(env, argv[0], &c, 0, true) || !GetBytes(env, argv[1], &data, &n, "sealed must be a Uint8Array")) {
    return nullptr;
  }
  if (n < kTag || n - kTag > kMaxOp) {
    Throw(env, "sealed shorter than its tag or too long");
    return nullptr;
  }
  void* out = nullptr;
  napi_value result;
  if (napi_create_buffer(env, n - kTag, &out, &result) != napi_ok) return AllocFailed(env);
  if (c->failed || !OpenOne(c, c->nonce, data, n - kTag, static_cast<uint8_t*>(out))) {
    return Number(env, kErrCipher);  // the nonce does not advance on failure
  }
  Increment(c->nonce);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"available", nullptr, Available, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"create", nullptr, Create, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"encode", nullptr, Encode, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decode", nullptr, Decode, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"createSession", nullptr, CreateSession, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"seal", nullptr, Seal, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sealInto", nullptr, SealInto, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"open", nullptr, Open, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  napi_value version;
  napi_create_int32(env, 2, &version);
  napi_set_named_property(env, exports, "abiVersion", version);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
