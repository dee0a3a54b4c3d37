// Ladder native addon: the SIP004 / SIP022 stream chunk codec and the single-operation session.
//
// Why: node:crypto cannot re-key a cipher with a new nonce, so the JS codec pays a
// createCipheriv/createDecipheriv object life cycle for every length and every payload of
// every chunk (see docs/benchmarks.md). Here each direction keeps one EVP_CIPHER_CTX whose key
// is set once; each AEAD operation only re-initialises the nonce:
//   EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, enc)
// and the whole chunking loop runs in C++, so one call handles one socket read or write.
// The contexts come from a per-thread pool (oneshot.h PoolTake/PoolGive): a codec keys one that
// an ended codec gave back (its key wiped then), so a connection pays a key schedule per
// direction but not the provider's context set-up and free.
//
// Wire format (SIP004): [salt][sealed len][sealed payload]... where sealed len is the 2-byte
// big-endian payload length (1..0x3FFF) plus a 16-byte tag, sealed payload is the payload plus
// a 16-byte tag, and the 12-byte nonce is a little-endian counter that starts at zero and
// increments after every seal/open. The salt and the subkey derivation stay in JS.
//
// JS surface (wrapped by src/protocol/shadowsocks/native.ts):
//   create(method, key, encrypt, maxPayload?, minPayload?, nonceStart?) -> codec
//       method: 0 aes-128-gcm, 1 aes-256-gcm, 2 chacha20-poly1305, 3 aes-192-gcm; chunk payloads maxPayload
//       (default 0x3FFF, up to 0xFFFF for SIP022) and minPayload (1, or 0 to accept empty
//       chunks); the nonce counter starts after nonceStart operations (SIP022 headers).
//   createSalted(method, masterKey, salt, encrypt, ...) -> codec
//       create() keyed with HKDF-SHA1(masterKey, salt, "ss-subkey") (SIP004's subkey), derived
//       here: one call for what took hkdfSha1 and create, and no subkey Buffer in JS.
//   encode(codec, data, prefix?) -> Buffer    [prefix][sealed len][sealed payload]...
//   decodeInPlace(codec, data, info) -> number | [Buffer, number]      (since abiVersion 4)
//       decode that opens payloads inside `data` and moves them to its front (see DecodeInPlace);
//       `data` is overwritten, so only for buffers the caller owns and does not read again
//   decode(codec, data, info) -> Buffer | number
//       Buffer: the plaintext of every chunk completed by data (possibly empty); bytes of an
//       incomplete length or payload are copied into the codec (so data may be reused at once).
//       number: 1 = authentication failed, 2 = chunk length 0 or > 0x3FFF; the codec is then
//       failed for good. info (Int32Array, length >= 4) receives after every call:
//       [0] bytes buffered in the codec, [1] size of the element being read (18, or len + 16),
//       [2] state (0 reading a length, 1 reading a payload), [3] the bad length for error 2.
//   sip004Open(method, masterKey, head, info) -> codec | 0 | 2
//       the server's key trial and decoder in one (see Sip004Open): one HKDF per connection
//   createSession(method, key) -> codec        for single operations in either direction
//   seal(codec, plain) -> Buffer                ciphertext || tag with the next nonce
//   sealInto(codec, plain, out, offset) -> n    the same written into out at offset
//   open(codec, sealed) -> Buffer | number      plaintext, or 1 when authentication fails
//       seal/sealInto take an encoder or session codec, open a decoder or session codec; one
//       nonce counter per codec, advanced by every successful operation.
#include <cstdlib>
#include <cstring>
#include <new>

#include "common.h"
#include "exports.h"
#include "napi_args.h"
#include "oneshot.h"
#include "stream_codec.h"

namespace ladder {

namespace {

constexpr size_t kMaxPayload = 0x3FFF;
constexpr size_t kLenChunk = 2 + kTag;
// SIP022 chunks carry up to 0xFFFF bytes; create() takes the limits per codec.
constexpr size_t kMaxPayloadLimit = 0xFFFF;
// What we tell V8 each codec costs outside its heap (ctx + struct; the decoder's carry buffer is
// accounted separately when allocated).
constexpr int64_t kCodecExternal = 1024;

enum State : int32_t { kReadLength = 0, kReadPayload = 1 };

// Tags the externals we hand out, so a foreign external can never be cast to Codec.
const napi_type_tag kCodecTag = {0x6c61646465724145ULL, 0x4144353030340001ULL};

struct Record {  // one payload found by decode's first pass
  const uint8_t* src;
  size_t len;  // plaintext length (without tag)
  uint8_t nonce[kNonce];
};

constexpr int kSession = 2;  // Codec::enc for a codec that may seal and open

}  // namespace

// Declared in stream_codec.h (other parts hold pointers to it); defined here only.
struct Codec {
  EVP_CIPHER_CTX* ctx = nullptr;
  int method = -1;  // 0..3, as create() takes it
  int enc = 0;  // 1 encoder, 0 decoder, kSession either
  uint8_t nonce[kNonce] = {0};
  bool failed = false;
  size_t max_payload = kMaxPayload;  // chunk payload bounds (SIP004: 1..0x3FFF; SIP022: 0..0xFFFF)
  size_t min_payload = 1;
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

namespace {

void Increment(uint8_t* n) {
  for (size_t i = 0; i < kNonce; i++) {
    if (++n[i] != 0) return;
  }
}

void FreeCodec(Codec* c) {
  if (c == nullptr) return;
  PoolGive(c->method, c->ctx);  // wipes the key now (re-keyed with zeros, or freed and cleansed)
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

// The codec at argument i. enc: 1 for an encoding operation, 0 for decoding; single operations
// (allow_session) also accept a session codec.
bool GetCodec(const Args& a, size_t i, Codec** out, int enc, bool allow_session = false) {
  void* p = nullptr;
  if (!a.Tagged(i, kCodecTag, &p, "expected a ladder_aead codec")) return false;
  Codec* c = static_cast<Codec*>(p);
  if (c->enc != enc && !(allow_session && c->enc == kSession)) {
    return Throw(a.env(), enc ? "codec is not an encoder" : "codec is not a decoder");
  }
  *out = c;
  return true;
}

napi_value NewCodec(napi_env env, int32_t m, const uint8_t* key, size_t key_len, int mode, Codec** out,
                    EVP_CIPHER_CTX* keyed = nullptr);

// A codec for method a[0] and key a[1] (or `key` when given); mode 1 encoder, 0 decoder, kSession both.
napi_value MakeCodec(const Args& a, int mode, const uint8_t* key = nullptr, size_t key_len = 0) {
  napi_env env = a.env();
  int32_t m = -1;
  if (!a.Int32(0, &m) || m < 0 || m >= kMethods) {
    Throw(env, "method must be 0, 1, 2 or 3");
    return nullptr;
  }
  if (key == nullptr && !a.Bytes(1, &key, &key_len, "key must be a Uint8Array")) return nullptr;
  Codec* ignored = nullptr;
  return NewCodec(env, m, key, key_len, mode, &ignored);
}

// A codec of method m keyed with key (not a JS value yet). nullptr with *why set on failure.
// keyed: a set-up context of method m already keyed with key (taken over, given back to the pool
// on failure); otherwise one from the thread's pool (oneshot.h), keyed here.
Codec* AllocCodec(int32_t m, const uint8_t* key, size_t key_len, int mode, const char** why,
                  EVP_CIPHER_CTX* keyed = nullptr) {
  const EVP_CIPHER* cipher = m >= 0 && m < kMethods ? CipherOf(m) : nullptr;
  if (cipher == nullptr || key_len != static_cast<size_t>(EVP_CIPHER_get_key_length(cipher))) {
    PoolGive(m, keyed);
    *why = cipher == nullptr ? "cipher not available in this OpenSSL" : "key has the wrong length for this method";
    return nullptr;
  }
  Codec* c = new (std::nothrow) Codec();
  if (c == nullptr) {
    PoolGive(m, keyed);
    *why = "out of memory";
    return nullptr;
  }
  c->method = m;
  c->enc = mode;
  c->ctx = keyed;
  if (c->ctx == nullptr) {
    const int init_enc = mode == 0 ? 0 : 1;  // every operation sets its direction again anyway
    c->ctx = PoolTake(m);
    if (c->ctx == nullptr || EVP_CipherInit_ex(c->ctx, nullptr, nullptr, key, nullptr, init_enc) != 1) {
      FreeCodec(c);
      *why = "EVP cipher set-up failed";
      return nullptr;
    }
  }
  return c;
}

// A codec of method m (0..3) keyed with key; *out is the codec behind the returned value, which
// owns it. nullptr after throwing.
napi_value NewCodec(napi_env env, int32_t m, const uint8_t* key, size_t key_len, int mode, Codec** out,
                    EVP_CIPHER_CTX* keyed) {
  const char* why = nullptr;
  Codec* c = AllocCodec(m, key, key_len, mode, &why, keyed);
  if (c == nullptr) {
    if (why[0] == 'k' || why[0] == 'c') Throw(env, why);  // the key or the method: a TypeError, as before
    else napi_throw_error(env, "ERR_LADDER_AEAD", why);
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
  *out = c;
  return ext;
}

// Opens a sealed length field (18 bytes at p) with the codec's nonce. On success sets the
// payload state; returns a Status.
Status OpenLength(Codec* c, const uint8_t* p, int32_t* bad_len) {
  uint8_t len[2];
  if (!OpenOne(c, c->nonce, p, 2, len)) return kErrCipher;
  Increment(c->nonce);
  const size_t l = (static_cast<size_t>(len[0]) << 8) | len[1];
  if (l < c->min_payload || l > c->max_payload) {
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

// Adds data's first bytes to the incomplete element held in the carry (carry_len < need <=
// carry_cap: the buffer was sized for this element); returns how many it took. *complete: the
// element is whole in the carry now (carry_len is reset; the bytes stay valid until refilled).
size_t FillCarry(Codec* c, const uint8_t* data, size_t n, bool* complete) {
  const size_t want = c->need - c->carry_len;
  const size_t take = n < want ? n : want;
  if (take > 0) memcpy(c->carry + c->carry_len, data, take);
  c->carry_len += take;
  *complete = c->carry_len == c->need;
  if (*complete) c->carry_len = 0;
  return take;
}

void WriteInfo(Codec* c, int32_t* info, int32_t bad_len) {
  info[0] = static_cast<int32_t>(c->carry_len);
  info[1] = static_cast<int32_t>(c->need);
  info[2] = c->state;
  info[3] = bad_len;
}

// Copies the bytes of the incomplete element (fewer than need) into the codec's carry buffer,
// sized once for the largest element so a bulk stream allocates it only once. False (codec
// failed, exception set) when that cannot be done.
bool KeepRest(napi_env env, Codec* c, const uint8_t* rest_ptr, size_t rest, bool throws = true) {
  const size_t max_element = c->max_payload + kTag;
  if (c->need > max_element || rest >= c->need) {  // cannot happen; refuse rather than overflow
    c->failed = true;
    if (throws) napi_throw_error(env, "ERR_LADDER_AEAD", "internal state error");
    return false;
  }
  if (c->carry_cap < c->need) {
    // At least a full SIP004 element, so a SIP004 stream (and a SIP022 one from our writers,
    // 16 KiB chunks) allocates this once; larger only for larger elements (up to 0xFFFF + 16).
    const size_t floor_size = kMaxPayload + kTag;
    const size_t cap = c->need > floor_size ? c->need : (floor_size < max_element ? floor_size : max_element);
    uint8_t* buf = static_cast<uint8_t*>(malloc(cap));
    if (buf == nullptr) {
      c->failed = true;
      if (throws) napi_throw_error(env, "ERR_LADDER_AEAD", "out of memory");
      return false;
    }
    ReleaseCarry(env, c);
    c->carry = buf;
    int64_t ignored;
    const int64_t delta = static_cast<int64_t>(cap);
    if (napi_adjust_external_memory(env, delta, &ignored) == napi_ok) c->external += delta;
    c->carry_cap = cap;
  }
  memcpy(c->carry, rest_ptr, rest);
  c->carry_len = rest;
  return true;
}

// The arguments every codec operation starts with: at least `need` of them, the codec (see
// GetCodec) and a Uint8Array (`what` names it in the TypeError). False with an exception set.
bool CodecArgs(const Args& a, size_t need, const char* usage, int enc, bool allow_session, Codec** c,
               const uint8_t** data, size_t* n, const char* what) {
  return a.Need(need, usage) && GetCodec(a, 0, c, enc, allow_session) && a.Bytes(1, data, n, what);
}

// The arguments of decode and decodeInPlace: (codec, data, info). False with an exception set.
bool DecodeArgs(napi_env env, napi_callback_info info, const char* usage, Codec** c, const uint8_t** data,
                size_t* n, int32_t** out_info) {
  const Args a(env, info);
  return CodecArgs(a, 3, usage, 0, false, c, data, n, "data must be a Uint8Array") &&
         a.Int32Array(2, 4, out_info, "info must be an Int32Array of length >= 4");
}

// After a decode call: keep the bytes of the incomplete element (data[off..n)) for the next
// call, or on a boundary with nothing pending (an idle connection, typically) give the carry
// buffer back; then report the state. False with an exception set.
bool FinishDecode(napi_env env, Codec* c, const uint8_t* data, size_t n, size_t off, int32_t* out_info) {
  const size_t rest = n - off;
  if (rest > 0) {
    if (!KeepRest(env, c, data + off, rest)) return false;
  } else if (c->carry != nullptr) {
    ReleaseCarry(env, c);
  }
  WriteInfo(c, out_info, 0);
  return true;
}

}  // namespace

namespace {

// create() from a[e] on (encrypt, maxPayload?, minPayload?, nonceStart?), keyed with `key`
// (nullptr: a[1]).
napi_value CreateFrom(const Args& a, size_t e, const uint8_t* key, size_t key_len) {
  napi_env env = a.env();
  bool enc = false;
  if (!a.Boolean(e, &enc)) {
    Throw(env, "encrypt must be a boolean");
    return nullptr;
  }
  int32_t max_p = static_cast<int32_t>(kMaxPayload);
  int32_t min_p = 1;
  int32_t start = 0;
  if ((a.Has(e + 1) && !a.Int32(e + 1, &max_p)) || (a.Has(e + 2) && !a.Int32(e + 2, &min_p)) ||
      (a.Has(e + 3) && !a.Int32(e + 3, &start)) || max_p < 1 || static_cast<size_t>(max_p) > kMaxPayloadLimit ||
      min_p < 0 || min_p > 1 || start < 0 || start > 1024) {
    Throw(env, "maxPayload must be 1..65535, minPayload 0 or 1, nonceStart 0..1024");
    return nullptr;
  }
  napi_value ext = MakeCodec(a, enc ? 1 : 0, key, key_len);
  if (ext == nullptr) return nullptr;
  void* p = nullptr;
  if (napi_get_value_external(env, ext, &p) != napi_ok || p == nullptr) return nullptr;
  Codec* c = static_cast<Codec*>(p);
  c->max_payload = static_cast<size_t>(max_p);
  c->min_payload = static_cast<size_t>(min_p);
  for (int32_t i = 0; i < start; i++) Increment(c->nonce);
  return ext;
}

}  // namespace

napi_value Create(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  if (!a.Need(3, "create(method, key, encrypt, maxPayload?, minPayload?, nonceStart?)")) return nullptr;
  return CreateFrom(a, 2, nullptr, 0);
}

napi_value CreateSalted(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  const uint8_t* master = nullptr;
  const uint8_t* salt = nullptr;
  size_t master_len = 0, salt_len = 0;
  if (!a.Need(4, "createSalted(method, masterKey, salt, encrypt, maxPayload?, minPayload?, nonceStart?)") ||
      !a.Bytes(1, &master, &master_len, "masterKey must be a Uint8Array") ||
      !a.Bytes(2, &salt, &salt_len, "salt must be a Uint8Array")) {
    return nullptr;
  }
  if (master_len == 0 || master_len > kMaxSubkey) {
    Throw(env, "masterKey must be 1..64 bytes");
    return nullptr;
  }
  const Subkey subkey(master, master_len, salt, salt_len);
  if (!subkey.ok()) {
    napi_throw_error(env, "ERR_LADDER_AEAD", "HKDF failed");
    return nullptr;
  }
  return CreateFrom(a, 3, subkey.data(), subkey.size());
}

napi_value CreateSession(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  if (!a.Need(2, "createSession(method, key)")) return nullptr;
  return MakeCodec(a, kSession);
}

// sip004Open(method, masterKey, head, info) -> codec | 0 | 2
// The server's SIP004 key trial and its decoder in one call: head is the salt (as long as the
// key) and the sealed length chunk (18 bytes) a connection began with. The subkey is derived once
// (HKDF-SHA1), the length chunk opened with it; 0 when it does not authenticate (another key's
// connection, or garbage), 2 when it does but the length is outside 1..0x3FFF (info[3] holds
// it), else a decoder codec keyed with that subkey that has read the length chunk (info as after
// decode: [0, length + 16, 1, 0]), the same state decode(create(...), head minus salt) leaves.
napi_value Sip004Trial(napi_env env, int m, const uint8_t* master, const uint8_t* head, int32_t* out_info,
                       int32_t* status) {
  EVP_CIPHER_CTX* ctx = m >= 0 && m < kMethods ? OneShotCtx(m) : nullptr;
  *status = kErrCipher;
  if (ctx == nullptr) return nullptr;
  const size_t key_len = static_cast<size_t>(EVP_CIPHER_get_key_length(CipherOf(m)));
  // The salt is as long as the key for every SIP004 method.
  const Subkey subkey(master, key_len, head, key_len);
  uint8_t len[2];
  if (!subkey.ok() || !OpenTagged(ctx, subkey.data(), kZeroNonce, head + key_len, 2, len)) return nullptr;
  const size_t l = (static_cast<size_t>(len[0]) << 8) | len[1];
  if (l < 1 || l > kMaxPayload) {
    out_info[3] = static_cast<int32_t>(l);
    *status = kErrPayloadSize;
    return nullptr;
  }
  *status = kOk;
  // The one-shot context is keyed with the subkey now: the decoder keeps it (no second set-up
  // and key schedule) and the length chunk it opened counts as read; this thread's next one-shot
  // operation takes another context from the pool.
  Codec* c = nullptr;
  napi_value ext = NewCodec(env, m, subkey.data(), key_len, 0, &c, DetachOneShotCtx(m));
  if (ext == nullptr) return nullptr;
  Increment(c->nonce);
  c->state = kReadPayload;
  c->need = l + kTag;
  WriteInfo(c, out_info, 0);
  return ext;
}

napi_value Sip004Open(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  int m = -1;
  EVP_CIPHER_CTX* ctx = nullptr;
  size_t key_len = 0, master_len = 0, hn = 0;
  const uint8_t *master = nullptr, *head = nullptr;
  int32_t* out_info = nullptr;
  if (!a.Need(4, "sip004Open(method, masterKey, head, info)") ||
      !GetMethodAndMasterKey(a, 0, &m, &ctx, &key_len, &master, &master_len) ||
      !a.Bytes(2, &head, &hn, "head must be a Uint8Array") ||
      !a.Int32Array(3, 4, &out_info, "info must be an Int32Array of length >= 4")) {
    return nullptr;
  }
  if (master_len != key_len || key_len > kMaxSubkey || hn < key_len + kLenChunk) {
    Throw(env, "sip004Open: masterKey has the wrong length, or head is shorter than salt + 18 bytes");
    return nullptr;
  }
  int32_t status = kOk;
  napi_value ext = Sip004Trial(env, m, master, head, out_info, &status);
  if (status == kOk) return ext;  // nullptr: an exception is pending
  return Number(env, status == kErrPayloadSize ? kErrPayloadSize : 0);
}

napi_value Encode(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  Codec* c = nullptr;
  const uint8_t* data = nullptr;
  size_t n = 0;
  const uint8_t* prefix = nullptr;
  size_t prefix_len = 0;
  if (!CodecArgs(a, 2, "encode(codec, data, prefix?)", 1, false, &c, &data, &n, "data must be a Uint8Array") ||
      (!a.Undefined(2) && !a.Bytes(2, &prefix, &prefix_len, "prefix must be a Uint8Array"))) {
    return nullptr;
  }
  if (c->failed) {
    napi_throw_error(env, "ERR_LADDER_AEAD", "encoder failed earlier");
    return nullptr;
  }
  const size_t out_len = prefix_len + CodecEncodedSize(c, n);
  void* out_ptr = nullptr;
  napi_value result;
  if (napi_create_buffer(env, out_len, &out_ptr, &result) != napi_ok) return AllocFailed(env);
  uint8_t* out = static_cast<uint8_t*>(out_ptr);
  if (prefix_len > 0) memcpy(out, prefix, prefix_len);
  if (!CodecEncodeTo(c, data, n, out + prefix_len)) {
    napi_throw_error(env, "ERR_LADDER_AEAD", "EVP seal failed");
    return nullptr;
  }
  return result;
}

napi_value Decode(napi_env env, napi_callback_info info) {
  Codec* c = nullptr;
  const uint8_t* data = nullptr;
  size_t n = 0;
  int32_t* out_info = nullptr;
  if (!DecodeArgs(env, info, "decode(codec, data, info)", &c, &data, &n, &out_info)) return nullptr;
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
    bool complete = false;
    off = FillCarry(c, data, n, &complete);
    if (!complete) {
      WriteInfo(c, out_info, 0);
      napi_value empty;
      void* ignored;
      if (napi_create_buffer(env, 0, &ignored, &empty) != napi_ok) return AllocFailed(env);
      return empty;
    }
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

  if (!FinishDecode(env, c, data, n, off, out_info)) return nullptr;
  return result;
}

// decodeInPlace(codec, data, info) -> number | [Buffer, number]
// Like decode, but payloads that lie whole inside `data` are opened in place and moved to its
// front: n >= 0 means data[0..n) now holds the plaintext, and no output buffer was allocated (a
// relay's socket reads are fresh buffers it owns, so the per-read output allocation - and the V8
// GC it drives through external-memory pressure - goes away). A payload begun in an earlier call
// (kept in the codec's carry) is returned in a new Buffer first: [thatPlaintext, n]. Negative:
// -1 authentication failed, -2 chunk length out of bounds (info[3] holds it); failed for good.
// On failure data holds garbage. Elements are processed in stream order.
napi_value DecodeInPlace(napi_env env, napi_callback_info info) {
  Codec* c = nullptr;
  const uint8_t* cdata = nullptr;
  size_t n = 0;
  int32_t* out_info = nullptr;
  if (!DecodeArgs(env, info, "decodeInPlace(codec, data, info)", &c, &cdata, &n, &out_info)) return nullptr;
  uint8_t* data = const_cast<uint8_t*>(cdata);
  if (n > 0x7fffffff) {  // the plaintext count is returned as an int32
    Throw(env, "data longer than 2 GiB");
    return nullptr;
  }
  auto fail = [&](Status st, int32_t bad_len) -> napi_value {
    c->failed = true;
    c->carry_len = 0;
    WriteInfo(c, out_info, bad_len);
    return Number(env, st == kErrPayloadSize ? -2 : -1);
  };
  if (c->failed) return fail(kErrCipher, 0);
  napi_value carry_out = nullptr;
  size_t off = 0;
  size_t o = 0;  // plaintext written at data[0..o)
  int32_t bad_len = 0;
  if (c->carry_len > 0) {
    bool complete = false;
    off = FillCarry(c, data, n, &complete);
    if (!complete) {
      WriteInfo(c, out_info, 0);
      return Number(env, 0);
    }
    if (c->state == kReadLength) {
      const Status st = OpenLength(c, c->carry, &bad_len);
      if (st != kOk) return fail(st, bad_len);
    } else {
      const size_t len = c->need - kTag;
      void* p = nullptr;
      if (napi_create_buffer(env, len, &p, &carry_out) != napi_ok) {
        c->failed = true;
        return AllocFailed(env);
      }
      if (!OpenOne(c, c->nonce, c->carry, len, static_cast<uint8_t*>(p))) return fail(kErrCipher, 0);
      Increment(c->nonce);
      c->state = kReadLength;
      c->need = kLenChunk;
    }
  }
  while (n - off >= c->need) {
    if (c->state == kReadLength) {
      const Status st = OpenLength(c, data + off, &bad_len);
      if (st != kOk) return fail(st, bad_len);
      off += kLenChunk;
    } else {
      const size_t len = c->need - kTag;
      if (!OpenOne(c, c->nonce, data + off, len, data + off)) return fail(kErrCipher, 0);  // in place
      Increment(c->nonce);
      if (o != off && len > 0) memmove(data + o, data + off, len);
      o += len;
      off += len + kTag;
      c->state = kReadLength;
      c->need = kLenChunk;
    }
  }
  if (!FinishDecode(env, c, data, n, off, out_info)) return nullptr;
  napi_value count = Number(env, static_cast<int32_t>(o));
  if (carry_out == nullptr) return count;
  napi_value arr;
  if (napi_create_array_with_length(env, 2, &arr) != napi_ok || napi_set_element(env, arr, 0, carry_out) != napi_ok ||
      napi_set_element(env, arr, 1, count) != napi_ok) {
    c->failed = true;
    napi_throw_error(env, "ERR_LADDER_AEAD", "cannot build the result");
    return nullptr;
  }
  return arr;
}

// Single AEAD operations with the codec's nonce (for datagram-style use and tests).
napi_value Seal(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  Codec* c = nullptr;
  const uint8_t* data = nullptr;
  size_t n = 0;
  if (!CodecArgs(a, 2, "seal(codec, plain)", 1, true, &c, &data, &n, "plain must be a Uint8Array")) return nullptr;
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
  const Args a(env, info);
  Codec* c = nullptr;
  const uint8_t* data = nullptr;
  size_t n = 0;
  const uint8_t* out_c = nullptr;
  size_t out_len = 0;
  int64_t offset = -1;
  if (!CodecArgs(a, 4, "sealInto(codec, plain, out, offset)", 1, true, &c, &data, &n, "plain must be a Uint8Array") ||
      !a.Bytes(2, &out_c, &out_len, "out must be a Uint8Array")) {
    return nullptr;
  }
  if (!a.Index(3, &offset) || static_cast<uint64_t>(offset) > out_len || n > kMaxOp ||
      out_len - static_cast<size_t>(offset) < n + kTag) {
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
  const Args a(env, info);
  Codec* c = nullptr;
  const uint8_t* data = nullptr;
  size_t n = 0;
  if (!CodecArgs(a, 2, "open(codec, sealed)", 0, true, &c, &data, &n, "sealed must be a Uint8Array")) return nullptr;
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


// ---- the codec for other parts of the addon (stream_codec.h) ----

Codec* CodecOf(napi_env env, napi_value v, int enc) {
  bool ok = false;
  void* p = nullptr;
  if (napi_check_object_type_tag(env, v, &kCodecTag, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, v, &p) != napi_ok || p == nullptr) {
    return nullptr;
  }
  Codec* c = static_cast<Codec*>(p);
  return c->enc == enc ? c : nullptr;
}

Codec* CodecDerived(int method, const uint8_t* master, size_t master_len, const uint8_t* salt, size_t salt_len,
                    int enc) {
  const Subkey subkey(master, master_len, salt, salt_len);
  if (!subkey.ok()) return nullptr;
  const char* why = nullptr;
  return AllocCodec(method, subkey.data(), subkey.size(), enc, &why);
}

void CodecFree(Codec* c) { FreeCodec(c); }

void CodecFreeIn(napi_env env, Codec* c) { Finalize(env, c, nullptr); }

int CodecMethod(const Codec* c) { return c->method; }

bool CodecFailed(const Codec* c) { return c->failed; }

size_t CodecMaxElement(const Codec* c) { return c->max_payload + kTag; }

namespace {
size_t ChunkCount(const Codec* c, size_t n) { return n / c->max_payload + (n % c->max_payload != 0 ? 1 : 0); }
}  // namespace

size_t CodecEncodedSize(const Codec* c, size_t n) { return n + ChunkCount(c, n) * (kLenChunk + kTag); }

// SIP004 (max 0x3FFF): full chunks then the remainder, as every SIP004 implementation writes.
// SIP022 (max above 0x3FFF): the fewest chunks, of even size, so a 64 KiB write becomes two
// 32 KiB chunks rather than 0xFFFF bytes plus one: no tiny chunk costing two seals, and chunks
// the reader's 64 KiB reads split less often.
bool CodecEncodeTo(Codec* c, const uint8_t* data, size_t n, uint8_t* out) {
  if (c->failed) return false;
  const size_t chunks = ChunkCount(c, n);
  const size_t even = c->max_payload > kMaxPayload && chunks > 0 ? n / chunks + (n % chunks != 0 ? 1 : 0)
                                                                  : c->max_payload;
  size_t o = 0;
  for (size_t i = 0; i < n; i += even) {
    const size_t piece = n - i < even ? n - i : even;
    const uint8_t len[2] = {static_cast<uint8_t>(piece >> 8), static_cast<uint8_t>(piece & 0xff)};
    if (!SealOne(c, len, 2, out + o) || !SealOne(c, data + i, piece, out + o + kLenChunk)) {
      c->failed = true;
      return false;
    }
    o += kLenChunk + piece + kTag;
  }
  return true;
}

int32_t CodecDecodeTo(napi_env env, Codec* c, const uint8_t* data, size_t n, uint8_t* out, size_t* out_len,
                      int32_t* info) {
  size_t o = 0;
  size_t off = 0;
  int32_t bad_len = 0;
  *out_len = 0;
  auto fail = [&](Status st) -> int32_t {
    c->failed = true;
    c->carry_len = 0;
    if (info != nullptr) WriteInfo(c, info, bad_len);
    return st;
  };
  if (c->failed) return fail(kErrCipher);
  // One element: a length (state change only) or a payload opened into out.
  auto element = [&](const uint8_t* p) -> Status {
    if (c->state == kReadLength) return OpenLength(c, p, &bad_len);
    const size_t len = c->need - kTag;
    if (!OpenOne(c, c->nonce, p, len, out + o)) return kErrCipher;
    Increment(c->nonce);
    o += len;
    c->state = kReadLength;
    c->need = kLenChunk;
    return kOk;
  };
  if (c->carry_len > 0) {
    bool complete = false;
    off = FillCarry(c, data, n, &complete);
    if (!complete) {
      if (info != nullptr) WriteInfo(c, info, 0);
      return kOk;
    }
    const Status st = element(c->carry);
    if (st != kOk) return fail(st);
  }
  while (n - off >= c->need) {
    const size_t size = c->need;
    const Status st = element(data + off);
    if (st != kOk) return fail(st);
    off += size;
  }
  const size_t rest = n - off;
  if (rest > 0) {
    if (!KeepRest(env, c, data + off, rest, false)) return fail(kErrCipher);
  } else if (c->carry != nullptr) {
    ReleaseCarry(env, c);
  }
  *out_len = o;
  if (info != nullptr) WriteInfo(c, info, 0);
  return kOk;
}

}  // namespace ladder
