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
//   create(method, key, encrypt, maxPayload?, minPayload?, nonceStart?) -> codec
//       method: 0 aes-128-gcm, 1 aes-256-gcm, 2 chacha20-poly1305; chunk payloads maxPayload
//       (default 0x3FFF, up to 0xFFFF for SIP022) and minPayload (1, or 0 to accept empty
//       chunks); the nonce counter starts after nonceStart operations (SIP022 headers).
//   encode(codec, data, prefix?) -> Buffer    [prefix][sealed len][sealed payload]...
//   decodeInPlace(codec, data, info) -> number | [Buffer, number]
//       decode that opens payloads inside `data` and moves them to its front (see DecodeInPlace);
//       `data` is overwritten, so only for buffers the caller owns and does not read again
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
//
// Stateless one-shot operations (datagrams, key derivation), since abiVersion 3:
//   hkdfSha1(key, salt) -> Buffer               HKDF-SHA1(ikm = key, salt, info "ss-subkey"),
//                                               key.length bytes (the SIP004 subkey)
//   sealParts(method, key, nonce, prefix, a, b?) -> Buffer
//                                               prefix || AEAD(key, nonce, a || b) || tag
//   openAt(method, key, nonce, sealed, offset) -> Buffer | number
//                                               plaintext of sealed[offset..] (tag last), or 1
//   udpSeal(method, masterKey, head, payload, out?) -> Buffer (or its length, written into out)
//                                               SIP004 datagram: a random salt from RAND_bytes,
//                                               subkey = hkdfSha1(masterKey, salt), zero nonce,
//                                               salt || AEAD(head || payload) || tag
//   udpOpen(method, masterKey, packet, out?) -> Buffer | number (with out: its length, or -1)
//                                               the plaintext of a SIP004 datagram, or 1 when it
//                                               is too short or does not authenticate
// These share one EVP_CIPHER_CTX per method and thread whose key is set on every call.
//
// Datagram I/O helper (not crypto, but it lives here so there is one optional addon to build):
//   sendTo(fd, data, port, ip, family) -> number
//       one non-blocking sendto(2) on a UDP socket libuv already owns (node's dgram handle fd),
//       skipping node's per-send request object and lookup tick. Returns the bytes sent, or
//       -errno (the caller falls back to socket.send on -EAGAIN/-ENOBUFS). family 6 maps an
//       IPv4 address to ::ffff:a.b.c.d. On Windows it always returns -ENOSYS.
//
// Batched UDP sockets of our own (Linux; the UDP relay's hot path), since abiVersion 3
// (decodeInPlace: abiVersion 4):
//   sockShared() -> [data Buffer, lens Int32Array, addrs Uint8Array, slot, batch]
//       one receive area per thread, filled before each callback: datagram i is
//       data[i*slot .. i*slot+lens[i]], its source addrs[i*20 .. i*20+20] in the wire form below.
//       Valid only during the callback (the next batch overwrites it).
//   sockCreate(family 4|6, ip, port, onBatch) -> socket   (throws Error with .code = errno name)
//       a non-blocking UDP socket (family 6 is dual-stack), bound, polled on node's libuv loop;
//       readable -> recvmmsg(2) in batches -> onBatch(count) through napi_make_callback.
//   sockPort(socket) -> number
//   sockSend(socket, data, addrs, offset) -> number        bytes sent or -errno; to the 20-byte
//       address at addrs[offset]: [family 4|6, port hi, port lo, 0, 16 address bytes (IPv4 in
//       the first 4)], the same form a batch reports sources in
//   sockSendTo(socket, data, port, ip) -> number            the same to an IP literal
//   sockRelay(out, listener, method, masterKey, addrs, offset)
//       SIP004 replies in C: datagrams on `out` are sealed with masterKey (fresh salt, the source
//       as SOCKS address) and sent from `listener` to the client address at addrs[offset]; no JS
//       call per reply. sockRelayTake(out) -> sealed bytes sent since the last call.
//   sockPolicy(listener, allowPrivate, saltCapacity)       state of the C forward path below
//   sockSaltAdd(listener, salt) -> bool                    the listener's SIP004 salt filter
//       (exact, two generations of saltCapacity), shared by JS and the C path
//   sockRoute(listener, addrs, offset, out4, out6, method, masterKey)
//       SIP004 datagrams from that client address are opened with masterKey, salt-checked,
//       checked against the private-destination rule and sent from out4/out6 in C; anything
//       else (another key, a domain, no outbound socket yet) still goes to JS untouched.
//   sockUnroute(listener, addrs, offset) -> bytes, sockRouteTake(...) -> bytes forwarded since
//       the last take, sockDropped(listener) -> datagrams the C path dropped
//   sockClose(socket)                                      stops polling, closes the fd

// SHA1_Init/Update/Final are deprecated in OpenSSL 3 but exported by every node binary; HMAC over
// the low-level context lets HKDF-SHA1 reuse the padded-key states instead of fetching a digest
// per call (EVP_MD_fetch/EVP_MAC cost more than the hashing itself for 32-byte inputs). Must come
// before the first OpenSSL header.
#define OPENSSL_SUPPRESS_DEPRECATED
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#ifndef _WIN32
#include <uv.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#include <cerrno>
#include <cstdio>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace {

constexpr size_t kTag = 16;
constexpr size_t kNonce = 12;
constexpr size_t kMaxPayload = 0x3FFF;
constexpr size_t kLenChunk = 2 + kTag;
// SIP022 chunks carry up to 0xFFFF bytes; create() takes the limits per codec.
constexpr size_t kMaxPayloadLimit = 0xFFFF;
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
  size_t argc = 6;
  napi_value argv[6];
  bool enc = false;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 3) {
    Throw(env, "create(method, key, encrypt, maxPayload?, minPayload?, nonceStart?)");
    return nullptr;
  }
  if (napi_get_value_bool(env, argv[2], &enc) != napi_ok) {
    Throw(env, "encrypt must be a boolean");
    return nullptr;
  }
  int32_t max_p = static_cast<int32_t>(kMaxPayload);
  int32_t min_p = 1;
  int32_t start = 0;
  if ((argc >= 4 && napi_get_value_int32(env, argv[3], &max_p) != napi_ok) ||
      (argc >= 5 && napi_get_value_int32(env, argv[4], &min_p) != napi_ok) ||
      (argc >= 6 && napi_get_value_int32(env, argv[5], &start) != napi_ok) || max_p < 1 ||
      static_cast<size_t>(max_p) > kMaxPayloadLimit || min_p < 0 || min_p > 1 || start < 0 || start > 1024) {
    Throw(env, "maxPayload must be 1..65535, minPayload 0 or 1, nonceStart 0..1024");
    return nullptr;
  }
  napi_value ext = MakeCodec(env, argv, enc ? 1 : 0);
  if (ext == nullptr) return nullptr;
  void* p = nullptr;
  if (napi_get_value_external(env, ext, &p) != napi_ok || p == nullptr) return nullptr;
  Codec* c = static_cast<Codec*>(p);
  c->max_payload = static_cast<size_t>(max_p);
  c->min_payload = static_cast<size_t>(min_p);
  for (int32_t i = 0; i < start; i++) Increment(c->nonce);
  return ext;
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
  // SIP004 (max 0x3FFF): full chunks then the remainder, as every SIP004 implementation writes.
  // SIP022 (max above 0x3FFF): the fewest chunks, of even size, so a 64 KiB write becomes two
  // 32 KiB chunks rather than 0xFFFF bytes plus one: no tiny chunk costing two seals, and
  // chunks the reader's 64 KiB reads split less often.
  const size_t maxp = c->max_payload;
  const size_t chunks = n / maxp + (n % maxp != 0 ? 1 : 0);
  const size_t even = c->max_payload > kMaxPayload && chunks > 0 ? n / chunks + (n % chunks != 0 ? 1 : 0) : maxp;
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
  for (size_t i = 0; i < n; i += even) {
    const size_t piece = n - i < even ? n - i : even;
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

void WriteInfo(Codec* c, int32_t* info, int32_t bad_len) {
  info[0] = static_cast<int32_t>(c->carry_len);
  info[1] = static_cast<int32_t>(c->need);
  info[2] = c->state;
  info[3] = bad_len;
}

// The Int32Array a decode call reports its state in (length >= 4), or nullptr with an exception.
int32_t* GetInfo(napi_env env, napi_value v) {
  bool is_ta = false;
  napi_typedarray_type type;
  size_t length = 0;
  void* ptr = nullptr;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, &length, &ptr, nullptr, nullptr) != napi_ok ||
      type != napi_int32_array || length < 4 || ptr == nullptr) {
    Throw(env, "info must be an Int32Array of length >= 4");
    return nullptr;
  }
  return static_cast<int32_t*>(ptr);
}

// Copies the bytes of the incomplete element (fewer than need) into the codec's carry buffer,
// sized once for the largest element so a bulk stream allocates it only once. False (codec
// failed, exception set) when that cannot be done.
bool KeepRest(napi_env env, Codec* c, const uint8_t* rest_ptr, size_t rest) {
  const size_t max_element = c->max_payload + kTag;
  if (c->need > max_element || rest >= c->need) {  // cannot happen; refuse rather than overflow
    c->failed = true;
    napi_throw_error(env, "ERR_LADDER_AEAD", "internal state error");
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
      napi_throw_error(env, "ERR_LADDER_AEAD", "out of memory");
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

// The arguments of decode and decodeInPlace: (codec, data, info). False with an exception set.
bool DecodeArgs(napi_env env, napi_callback_info info, const char* usage, Codec** c, const uint8_t** data,
                size_t* n, int32_t** out_info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 3) return Throw(env, usage);
  if (!GetCodec(env, argv[0], c, 0) || !GetBytes(env, argv[1], data, n, "data must be a Uint8Array")) return false;
  *out_info = GetInfo(env, argv[2]);
  return *out_info != nullptr;
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

napi_value Decode(napi_env env, napi_callback_info info) {
  Codec* c;
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
  Codec* c;
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
    const size_t want = c->need - c->carry_len;
    const size_t take = n < want ? n : want;
    if (take > 0) memcpy(c->carry + c->carry_len, data, take);
    c->carry_len += take;
    off = take;
    if (c->carry_len < c->need) {
      WriteInfo(c, out_info, 0);
      return Number(env, 0);
    }
    c->carry_len = 0;
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

// ---- stateless one-shot operations -----------------------------------------------------------

// HMAC-SHA1 key schedule: the inner and outer contexts after absorbing the padded key.
struct HmacSha1 {
  SHA_CTX inner;
  SHA_CTX outer;
};

void HmacInit(HmacSha1* h, const uint8_t* key, size_t key_len) {
  uint8_t k[64];
  memset(k, 0, sizeof k);
  if (key_len > sizeof k) {
    SHA_CTX t;
    SHA1_Init(&t);
    SHA1_Update(&t, key, key_len);
    SHA1_Final(k, &t);
  } else if (key_len > 0) {
    memcpy(k, key, key_len);
  }
  uint8_t pad[64];
  for (size_t i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
  SHA1_Init(&h->inner);
  SHA1_Update(&h->inner, pad, 64);
  for (size_t i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
  SHA1_Init(&h->outer);
  SHA1_Update(&h->outer, pad, 64);
  OPENSSL_cleanse(k, sizeof k);
  OPENSSL_cleanse(pad, sizeof pad);
}

// out (20 bytes) = HMAC(key of h, a || b || c); h itself is not modified.
void HmacSha1Mac(const HmacSha1* h, const uint8_t* a, size_t an, const uint8_t* b, size_t bn,
                 const uint8_t* c, size_t cn, uint8_t* out) {
  SHA_CTX t = h->inner;
  if (an > 0) SHA1_Update(&t, a, an);
  if (bn > 0) SHA1_Update(&t, b, bn);
  if (cn > 0) SHA1_Update(&t, c, cn);
  uint8_t ih[SHA_DIGEST_LENGTH];
  SHA1_Final(ih, &t);
  t = h->outer;
  SHA1_Update(&t, ih, sizeof ih);
  SHA1_Final(out, &t);
  OPENSSL_cleanse(&t, sizeof t);
}

constexpr uint8_t kSsSubkeyInfo[] = {'s', 's', '-', 's', 'u', 'b', 'k', 'e', 'y'};
constexpr size_t kMaxSubkey = 64;

// RFC 5869 with SHA-1: PRK = HMAC(salt, ikm); T(i) = HMAC(PRK, T(i-1) || info || i).
bool HkdfSha1(const uint8_t* ikm, size_t ikm_len, const uint8_t* salt, size_t salt_len, uint8_t* out,
              size_t out_len) {
  if (out_len > kMaxSubkey) return false;
  HmacSha1 h;
  HmacInit(&h, salt, salt_len);
  uint8_t prk[SHA_DIGEST_LENGTH];
  HmacSha1Mac(&h, ikm, ikm_len, nullptr, 0, nullptr, 0, prk);
  HmacInit(&h, prk, sizeof prk);
  uint8_t t[SHA_DIGEST_LENGTH];
  size_t t_len = 0;
  size_t done = 0;
  for (uint8_t i = 1; done < out_len; i++) {
    HmacSha1Mac(&h, t, t_len, kSsSubkeyInfo, sizeof kSsSubkeyInfo, &i, 1, t);
    t_len = sizeof t;
    const size_t take = out_len - done < t_len ? out_len - done : t_len;
    memcpy(out + done, t, take);
    done += take;
  }
  OPENSSL_cleanse(&h, sizeof h);
  OPENSSL_cleanse(prk, sizeof prk);
  OPENSSL_cleanse(t, sizeof t);
  return true;
}

// One context per method and thread for the one-shot operations; the key is set per call.
EVP_CIPHER_CTX* OneShotCtx(int m) {
  static thread_local EVP_CIPHER_CTX* ctx[kMethods] = {nullptr, nullptr, nullptr};
  std::call_once(g_fetch_once, FetchCiphers);
  if (m < 0 || m >= kMethods || g_cipher[m] == nullptr) return nullptr;
  if (ctx[m] == nullptr) {
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    if (c == nullptr || EVP_CipherInit_ex(c, g_cipher[m], nullptr, nullptr, nullptr, 1) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, static_cast<int>(kNonce), nullptr) != 1) {
      EVP_CIPHER_CTX_free(c);
      return nullptr;
    }
    ctx[m] = c;
  }
  return ctx[m];
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

bool GetMethod(napi_env env, napi_value v, int* m, EVP_CIPHER_CTX** ctx, size_t* key_len) {
  int32_t i = -1;
  if (napi_get_value_int32(env, v, &i) != napi_ok || i < 0 || i >= kMethods) {
    return Throw(env, "method must be 0, 1 or 2");
  }
  *ctx = OneShotCtx(i);
  if (*ctx == nullptr) return Throw(env, "cipher not available in this OpenSSL");
  *m = i;
  *key_len = static_cast<size_t>(EVP_CIPHER_get_key_length(g_cipher[i]));
  return true;
}

// Optional byte argument: undefined or null give an empty range.
bool GetOptionalBytes(napi_env env, napi_value v, const uint8_t** data, size_t* len, const char* what) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return Throw(env, what);
  if (t == napi_undefined || t == napi_null) {
    *data = nullptr;
    *len = 0;
    return true;
  }
  return GetBytes(env, v, data, len, what);
}

napi_value HkdfSha1Js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  const uint8_t* key = nullptr;
  size_t key_len = 0;
  const uint8_t* salt = nullptr;
  size_t salt_len = 0;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) {
    Throw(env, "hkdfSha1(key, salt)");
    return nullptr;
  }
  if (!GetBytes(env, argv[0], &key, &key_len, "key must be a Uint8Array") ||
      !GetBytes(env, argv[1], &salt, &salt_len, "salt must be a Uint8Array")) {
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
  size_t argc = 6;
  napi_value argv[6];
  int m;
  EVP_CIPHER_CTX* ctx;
  size_t key_len_want;
  const uint8_t *key, *nonce, *prefix, *a, *b;
  size_t key_len, nonce_len, prefix_len, an, bn;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 5) {
    Throw(env, "sealParts(method, key, nonce, prefix, a, b?)");
    return nullptr;
  }
  if (!GetMethod(env, argv[0], &m, &ctx, &key_len_want) ||
      !GetBytes(env, argv[1], &key, &key_len, "key must be a Uint8Array") ||
      !GetBytes(env, argv[2], &nonce, &nonce_len, "nonce must be a Uint8Array") ||
      !GetOptionalBytes(env, argv[3], &prefix, &prefix_len, "prefix must be a Uint8Array") ||
      !GetBytes(env, argv[4], &a, &an, "a must be a Uint8Array") ||
      (argc >= 6 && !GetOptionalBytes(env, argv[5], &b, &bn, "b must be a Uint8Array"))) {
    return nullptr;
  }
  if (argc < 6) {
    b = nullptr;
    bn = 0;
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
  size_t argc = 5;
  napi_value argv[5];
  int m;
  EVP_CIPHER_CTX* ctx;
  size_t key_len_want;
  const uint8_t *key, *nonce, *sealed;
  size_t key_len, nonce_len, n;
  int64_t offset = -1;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 5) {
    Throw(env, "openAt(method, key, nonce, sealed, offset)");
    return nullptr;
  }
  if (!GetMethod(env, argv[0], &m, &ctx, &key_len_want) ||
      !GetBytes(env, argv[1], &key, &key_len, "key must be a Uint8Array") ||
      !GetBytes(env, argv[2], &nonce, &nonce_len, "nonce must be a Uint8Array") ||
      !GetBytes(env, argv[3], &sealed, &n, "sealed must be a Uint8Array")) {
    return nullptr;
  }
  if (napi_get_value_int64(env, argv[4], &offset) != napi_ok || offset < 0 || static_cast<uint64_t>(offset) > n) {
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

const uint8_t kZeroNonce[kNonce] = {0};

napi_value UdpSeal(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int m;
  EVP_CIPHER_CTX* ctx;
  size_t key_len;
  const uint8_t *master, *head, *payload;
  size_t master_len, hn, pn;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 4) {
    Throw(env, "udpSeal(method, masterKey, head, payload)");
    return nullptr;
  }
  if (!GetMethod(env, argv[0], &m, &ctx, &key_len) ||
      !GetBytes(env, argv[1], &master, &master_len, "masterKey must be a Uint8Array") ||
      !GetBytes(env, argv[2], &head, &hn, "head must be a Uint8Array") ||
      !GetBytes(env, argv[3], &payload, &pn, "payload must be a Uint8Array")) {
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
  if (argc >= 5) {  // into a caller's buffer of exactly the datagram's size (node's pooled allocUnsafe)
    const uint8_t* o = nullptr;
    size_t on = 0;
    if (!GetBytes(env, argv[4], &o, &on, "out must be a Uint8Array")) return nullptr;
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
  uint8_t subkey[kMaxSubkey];
  const bool ok = RAND_bytes(out, static_cast<int>(salt_len)) == 1 &&
                  HkdfSha1(master, master_len, out, salt_len, subkey, key_len) &&
                  SealTwo(ctx, subkey, kZeroNonce, head, hn, payload, pn, out + salt_len);
  OPENSSL_cleanse(subkey, sizeof subkey);
  if (!ok) {
    napi_throw_error(env, "ERR_LADDER_AEAD", "datagram seal failed");
    return nullptr;
  }
  return result != nullptr ? result : Number(env, static_cast<int32_t>(total));
}

napi_value UdpOpen(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int m;
  EVP_CIPHER_CTX* ctx;
  size_t key_len;
  const uint8_t *master, *packet;
  size_t master_len, n;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 3) {
    Throw(env, "udpOpen(method, masterKey, packet)");
    return nullptr;
  }
  if (!GetMethod(env, argv[0], &m, &ctx, &key_len) ||
      !GetBytes(env, argv[1], &master, &master_len, "masterKey must be a Uint8Array") ||
      !GetBytes(env, argv[2], &packet, &n, "packet must be a Uint8Array")) {
    return nullptr;
  }
  if (master_len != key_len) {
    Throw(env, "masterKey has the wrong length for this method");
    return nullptr;
  }
  const size_t salt_len = key_len;
  const bool has_out = argc >= 4;  // with out: a length, or -1 for anything that does not open
  if (n < salt_len + kTag || n - salt_len - kTag > kMaxOp) return Number(env, has_out ? -1 : kErrCipher);
  const size_t plain_len = n - salt_len - kTag;
  void* out = nullptr;
  napi_value result = nullptr;
  uint8_t empty_out = 0;
  if (has_out) {  // into a caller's buffer of exactly the plaintext's size
    const uint8_t* o = nullptr;
    size_t on = 0;
    if (!GetBytes(env, argv[3], &o, &on, "out must be a Uint8Array")) return nullptr;
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
  uint8_t subkey[kMaxSubkey];
  HkdfSha1(master, master_len, packet, salt_len, subkey, key_len);
  if (!has_out && napi_create_buffer(env, plain_len, &out, &result) != napi_ok) {
    OPENSSL_cleanse(subkey, sizeof subkey);
    return AllocFailed(env);
  }
  const bool ok = OpenTagged(ctx, subkey, kZeroNonce, packet + salt_len, plain_len, static_cast<uint8_t*>(out));
  OPENSSL_cleanse(subkey, sizeof subkey);
  if (!ok) return Number(env, has_out ? -1 : kErrCipher);
  return has_out ? Number(env, static_cast<int32_t>(plain_len)) : result;
}

// ---- datagram send ---------------------------------------------------------------------------

// One non-blocking sendto(2) of data to ip:port on fd (a socket of `family`); bytes or -errno.
int32_t SendToFd(int fd, int family, const uint8_t* data, size_t n, int port, const char* ip) {
#ifdef _WIN32
  (void)fd;
  (void)family;
  (void)data;
  (void)n;
  (void)port;
  (void)ip;
  return -ENOSYS;
#else
  ssize_t r;
  if (family == 4) {
    sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) return -EINVAL;
    r = sendto(fd, data, n, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, ip, &a.sin6_addr) != 1) {
      in_addr v4;
      if (inet_pton(AF_INET, ip, &v4) != 1) return -EINVAL;
      a.sin6_addr.s6_addr[10] = 0xff;
      a.sin6_addr.s6_addr[11] = 0xff;
      memcpy(&a.sin6_addr.s6_addr[12], &v4, 4);
    }
    r = sendto(fd, data, n, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  return r >= 0 ? static_cast<int32_t>(r) : -errno;
#endif
}

napi_value SendTo(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int32_t fd = -1;
  int32_t port = -1;
  int32_t family = 0;
  const uint8_t* data = nullptr;
  size_t n = 0;
  char ip[64];
  size_t ip_len = 0;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 5 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      !GetBytes(env, argv[1], &data, &n, "data must be a Uint8Array") ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok || port <= 0 || port > 65535 ||
      napi_get_value_string_utf8(env, argv[3], ip, sizeof ip, &ip_len) != napi_ok ||
      napi_get_value_int32(env, argv[4], &family) != napi_ok || (family != 4 && family != 6)) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && !pending) {
      Throw(env, "sendTo(fd, data, port 1..65535, ip, family 4|6)");
    }
    return nullptr;
  }
  return Number(env, SendToFd(fd, family, data, n, port, ip));
}

// ---- batched UDP sockets -----------------------------------------------------------------------

#if defined(__linux__)
constexpr int kBatch = 32;
constexpr size_t kSlot = 65536;
constexpr size_t kAddr = 20;
constexpr int kRounds = 8;  // batches per readable event before yielding to the loop

struct Sock;
void CloseSock(Sock* s);

struct RecvArea {
  uint8_t* data = nullptr;
  int32_t lens[kBatch];
  uint8_t addrs[kBatch * kAddr];
  napi_ref js = nullptr;  // the [data, lens, addrs, slot, batch] array
  // Open sockets of this env: closed by the env cleanup hook (a worker thread that exits with
  // sockets open must not leave active poll handles on its loop).
  std::unordered_set<Sock*> open;
};

void CloseAllSocks(void* arg) {
  RecvArea* a = static_cast<RecvArea*>(arg);
  while (!a->open.empty()) CloseSock(*a->open.begin());  // CloseSock erases it
}

void FreeRecvArea(napi_env env, void* data, void* /*hint*/) {
  RecvArea* a = static_cast<RecvArea*>(data);
  if (a->js != nullptr) napi_delete_reference(env, a->js);
  free(a->data);
  delete a;
}

RecvArea* GetArea(napi_env env) {
  void* p = nullptr;
  if (napi_get_instance_data(env, &p) == napi_ok && p != nullptr) return static_cast<RecvArea*>(p);
  RecvArea* a = new (std::nothrow) RecvArea();
  if (a == nullptr) return nullptr;
  a->data = static_cast<uint8_t*>(malloc(kSlot * kBatch));
  if (a->data == nullptr) {
    delete a;
    return nullptr;
  }
  if (napi_set_instance_data(env, a, FreeRecvArea, nullptr) != napi_ok) {
    free(a->data);
    delete a;
    return nullptr;
  }
  napi_add_env_cleanup_hook(env, CloseAllSocks, a);
  return a;
}

const napi_type_tag kSockTag = {0x6c61646465725544ULL, 0x5053434b30300001ULL};

// A client's SIP004 session known to the listener: datagrams from this address are opened,
// filtered and forwarded in C (sockRoute).
struct Route {
  Sock* out4 = nullptr;
  Sock* out6 = nullptr;
  napi_ref out4_ref = nullptr;
  napi_ref out6_ref = nullptr;
  int method = -1;
  uint8_t key[32];
  size_t key_len = 0;
  uint64_t up_bytes = 0;  // datagram bytes forwarded since the last sockRouteTake
};

// Exact two-generation set of SIP004 datagram salts (like src/protocol/shadowsocks/replay.ts).
struct SaltSet {
  std::unordered_set<std::string> cur, prev;
  size_t capacity = 50000;
  // True when the salt was new (and is now remembered).
  bool Add(const uint8_t* salt, size_t n) {
    std::string k(reinterpret_cast<const char*>(salt), n);
    if (cur.count(k) != 0 || prev.count(k) != 0) return false;
    if (cur.size() >= capacity) {
      prev.swap(cur);
      cur.clear();
    }
    cur.insert(std::move(k));
    return true;
  }
};

struct Sock {
  int fd = -1;
  int family = 4;
  uv_poll_t poll;
  napi_env env = nullptr;
  napi_ref callback = nullptr;
  napi_ref self = nullptr;
  napi_async_context actx = nullptr;
  // SIP004 replies sealed and sent in C (sockRelay): no JS call per reply datagram.
  Sock* relay_to = nullptr;       // the listener the sealed replies leave from
  napi_ref relay_ref = nullptr;   // keeps the listener's handle (and so its Sock) alive
  int relay_method = -1;
  uint8_t relay_key[32];
  size_t relay_key_len = 0;
  uint8_t relay_client[20];
  uint64_t relay_bytes = 0;       // sealed bytes sent since the last sockRelayTake
  // Listener only: the C forward path (sockPolicy, sockRoute).
  std::unordered_map<std::string, Route>* routes = nullptr;
  SaltSet* salts = nullptr;
  bool allow_private = false;
  uint64_t dropped = 0;
  RecvArea* area = nullptr;  // the env's, where this socket is listed while open
  int in_callback = 0;       // > 0 while JS runs from OnReadable (close defers async_destroy)
  bool destroy_deferred = false;
  bool closed = false;     // sockClose was called (or creation failed half-way)
  bool uv_done = false;    // the poll handle's close callback ran (fd closed)
  bool finalized = false;  // the JS object is gone
};

void ClearRoute(napi_env env, Route* r) {
  if (r->out4_ref != nullptr) napi_delete_reference(env, r->out4_ref);
  if (r->out6_ref != nullptr) napi_delete_reference(env, r->out6_ref);
  r->out4_ref = r->out6_ref = nullptr;
  r->out4 = r->out6 = nullptr;
  OPENSSL_cleanse(r->key, sizeof r->key);
}

void MaybeFree(Sock* s) {
  if (s->uv_done && s->finalized) {
    delete s->routes;
    delete s->salts;
    delete s;
  }
}

void OnPollClosed(uv_handle_t* h) {
  Sock* s = static_cast<Sock*>(h->data);
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  s->uv_done = true;
  MaybeFree(s);
}

void ReleaseCallback(Sock* s) {
  if (s->callback != nullptr) napi_delete_reference(s->env, s->callback);
  s->callback = nullptr;
  if (s->actx != nullptr) napi_async_destroy(s->env, s->actx);
  s->actx = nullptr;
}

void CloseSock(Sock* s) {
  if (s->closed) return;
  s->closed = true;
  if (s->area != nullptr) s->area->open.erase(s);
  s->area = nullptr;
  uv_poll_stop(&s->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->poll), OnPollClosed);
  // Closed from inside its own callback: the async context is destroyed once that returns.
  if (s->in_callback > 0) s->destroy_deferred = true;
  else ReleaseCallback(s);
  if (s->self != nullptr) napi_delete_reference(s->env, s->self);  // GC may now collect the handle
  s->self = nullptr;
  if (s->relay_ref != nullptr) napi_delete_reference(s->env, s->relay_ref);
  s->relay_ref = nullptr;
  s->relay_to = nullptr;
  OPENSSL_cleanse(s->relay_key, sizeof s->relay_key);
  if (s->routes != nullptr) {
    for (auto& kv : *s->routes) ClearRoute(s->env, &kv.second);
    s->routes->clear();
  }
}


void FinalizeSock(napi_env /*env*/, void* data, void* /*hint*/) {
  Sock* s = static_cast<Sock*>(data);
  s->finalized = true;
  // Open sockets hold a strong reference to their handle, so this only runs after CloseSock.
  MaybeFree(s);
}

void PutAddr(uint8_t* out, const sockaddr_storage& ss) {
  memset(out, 0, kAddr);
  if (ss.ss_family == AF_INET) {
    const sockaddr_in* a = reinterpret_cast<const sockaddr_in*>(&ss);
    out[0] = 4;
    memcpy(out + 1, &a->sin_port, 2);
    memcpy(out + 4, &a->sin_addr, 4);
  } else if (ss.ss_family == AF_INET6) {
    const sockaddr_in6* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    const uint8_t* b = a->sin6_addr.s6_addr;
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(out + 1, &a->sin6_port, 2);
    if (memcmp(b, kMapped, 12) == 0) {  // a v4-mapped source on a dual-stack socket: report IPv4
      out[0] = 4;
      memcpy(out + 4, b + 12, 4);
    } else {
      out[0] = 6;
      memcpy(out + 4, b, 16);
    }
  }
}

// Destination for sendto from the 20-byte address form, for a socket of `family`.
socklen_t AddrToSockaddr(const uint8_t* a, int family, sockaddr_storage* ss) {
  memset(ss, 0, sizeof *ss);
  if (family == 4) {
    if (a[0] != 4) return 0;
    sockaddr_in* sa = reinterpret_cast<sockaddr_in*>(ss);
    sa->sin_family = AF_INET;
    memcpy(&sa->sin_port, a + 1, 2);
    memcpy(&sa->sin_addr, a + 4, 4);
    return sizeof(sockaddr_in);
  }
  sockaddr_in6* sa = reinterpret_cast<sockaddr_in6*>(ss);
  sa->sin6_family = AF_INET6;
  memcpy(&sa->sin6_port, a + 1, 2);
  if (a[0] == 4) {
    sa->sin6_addr.s6_addr[10] = 0xff;
    sa->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&sa->sin6_addr.s6_addr[12], a + 4, 4);
  } else if (a[0] == 6) {
    memcpy(&sa->sin6_addr, a + 4, 16);
  } else {
    return 0;
  }
  return sizeof(sockaddr_in6);
}

// One SIP004 reply: salt | AEAD(SOCKS address of `from` | data) to the client, from the listener.
void RelayReply(Sock* s, const sockaddr_storage& from, const uint8_t* data, size_t n) {
  Sock* l = s->relay_to;
  if (l == nullptr || l->closed) return;
  uint8_t head[19];
  size_t hn;
  uint8_t a[kAddr];
  PutAddr(a, from);
  if (a[0] == 4) {
    head[0] = 1;
    memcpy(head + 1, a + 4, 4);
    memcpy(head + 5, a + 1, 2);
    hn = 7;
  } else if (a[0] == 6) {
    head[0] = 4;
    memcpy(head + 1, a + 4, 16);
    memcpy(head + 17, a + 1, 2);
    hn = 19;
  } else {
    return;
  }
  static thread_local uint8_t out[kSlot + 32 + 19 + kTag];
  const size_t salt_len = s->relay_key_len;
  if (n > kSlot) return;
  EVP_CIPHER_CTX* ctx = OneShotCtx(s->relay_method);
  uint8_t subkey[kMaxSubkey];
  const bool ok = ctx != nullptr && RAND_bytes(out, static_cast<int>(salt_len)) == 1 &&
                  HkdfSha1(s->relay_key, s->relay_key_len, out, salt_len, subkey, s->relay_key_len) &&
                  SealTwo(ctx, subkey, kZeroNonce, head, hn, data, n, out + salt_len);
  OPENSSL_cleanse(subkey, sizeof subkey);
  if (!ok) return;
  const size_t total = salt_len + hn + n + kTag;
  sockaddr_storage to;
  const socklen_t tl = AddrToSockaddr(s->relay_client, l->family, &to);
  if (tl == 0) return;
  if (sendto(l->fd, out, total, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), tl) >= 0) s->relay_bytes += total;
}

// The server's private-destination rule (src/server/destination.ts, isPrivateAddress), for IPv4
// bytes: 0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12, 192.168/16, 224/4, 240/4.
bool IsPrivate4(const uint8_t* a) {
  return a[0] == 0 || a[0] == 10 || (a[0] == 100 && (a[1] & 0xc0) == 64) || a[0] == 127 ||
         (a[0] == 169 && a[1] == 254) || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
         a[0] >= 224;
}

// ... and for IPv6 bytes: fc00::/7, fe80::/10, ff00::/8, and by the IPv4 rule the addresses that
// carry an IPv4 address in their last 4 bytes: IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96
// (which includes :: and ::1) and the NAT64 well-known prefix 64:ff9b::/96.
bool IsPrivate6(const uint8_t* a) {
  static const uint8_t kZero[12] = {0};
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (memcmp(a, kMapped, 12) == 0 || memcmp(a, kZero, 12) == 0 || memcmp(a, kNat64, 12) == 0) {
    return IsPrivate4(a + 12);
  }
  return (a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || a[0] == 0xff;
}

// A datagram from a routed client: open, check, forward. True when handled here (forwarded, or
// dropped as a replay / forbidden destination / port 0); false leaves it to JS untouched (it
// did not authenticate with the route's key, names a domain, or needs an outbound socket JS has
// not made yet) - nothing is remembered before that decision, so JS sees it fresh.
bool FastForward(Sock* l, Route* r, const uint8_t* pkt, size_t n) {
  const size_t salt_len = r->key_len;
  if (n < salt_len + kTag + 7 || n - salt_len - kTag > kSlot) return false;
  static thread_local uint8_t plain[kSlot];
  const size_t pn = n - salt_len - kTag;
  EVP_CIPHER_CTX* ctx = OneShotCtx(r->method);
  if (ctx == nullptr) return false;
  uint8_t subkey[kMaxSubkey];
  HkdfSha1(r->key, r->key_len, pkt, salt_len, subkey, r->key_len);
  const bool ok = OpenTagged(ctx, subkey, kZeroNonce, pkt + salt_len, pn, plain);
  OPENSSL_cleanse(subkey, sizeof subkey);
  if (!ok) return false;
  size_t hl;
  Sock* out;
  if (plain[0] == 1) {
    hl = 7;
    out = r->out4;
  } else if (plain[0] == 4 && pn >= 19) {
    hl = 19;
    out = r->out6;
  } else {
    return false;  // a domain (resolved in JS) or a malformed address (JS drops it)
  }
  if (out == nullptr || out->closed) return false;
  if (!l->salts->Add(pkt, salt_len)) {  // a replayed datagram: like garbage
    l->dropped++;
    return true;
  }
  r->up_bytes += n;  // counted like the JS path: an authenticated datagram, forwarded or not
  const uint8_t* ip = plain + 1;
  uint16_t port_be;
  memcpy(&port_be, plain + hl - 2, 2);
  if (port_be == 0 || (!l->allow_private && (hl == 7 ? IsPrivate4(ip) : IsPrivate6(ip)))) {
    l->dropped++;
    return true;
  }
  sockaddr_storage to;
  memset(&to, 0, sizeof to);
  socklen_t tl;
  if (hl == 7) {
    sockaddr_in* sa = reinterpret_cast<sockaddr_in*>(&to);
    sa->sin_family = AF_INET;
    sa->sin_port = port_be;
    memcpy(&sa->sin_addr, ip, 4);
    tl = sizeof(sockaddr_in);
  } else {
    sockaddr_in6* sa = reinterpret_cast<sockaddr_in6*>(&to);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = port_be;
    memcpy(&sa->sin6_addr, ip, 16);
    tl = sizeof(sockaddr_in6);
  }
  if (sendto(out->fd, plain + hl, pn - hl, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), tl) < 0) l->dropped++;
  return true;
}

void OnReadable(uv_poll_t* h, int status, int events) {
  Sock* s = static_cast<Sock*>(h->data);
  if (s->closed) return;
  if (status < 0) {
    // libuv stopped the handle (POLLERR): clear the pending socket error and keep listening,
    // rather than going deaf without a word.
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    uv_poll_start(&s->poll, UV_READABLE, OnReadable);
    return;
  }
  if (!(events & UV_READABLE)) return;
  napi_env env = s->env;
  RecvArea* area = GetArea(env);
  if (area == nullptr) return;
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  sockaddr_storage from[kBatch];
  for (int round = 0; round < kRounds && !s->closed; round++) {
    for (int i = 0; i < kBatch; i++) {
      iov[i].iov_base = area->data + static_cast<size_t>(i) * kSlot;
      iov[i].iov_len = kSlot;
      memset(&msgs[i].msg_hdr, 0, sizeof(msghdr));
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      msgs[i].msg_len = 0;
    }
    const int n = recvmmsg(s->fd, msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;  // EAGAIN (drained) or an error: wait for the next event
    if (s->relay_to != nullptr) {  // SIP004 replies: sealed and sent here, no JS
      for (int i = 0; i < n; i++) {
        if (!(msgs[i].msg_hdr.msg_flags & MSG_TRUNC))
          RelayReply(s, from[i], static_cast<const uint8_t*>(iov[i].iov_base), msgs[i].msg_len);
      }
      if (n < kBatch) return;
      continue;
    }
    int kept = 0;
    const bool routed = s->routes != nullptr && !s->routes->empty();
    for (int i = 0; i < n; i++) {
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) continue;  // larger than a slot: drop
      if (routed) {
        uint8_t a[kAddr];
        PutAddr(a, from[i]);
        auto it = s->routes->find(std::string(reinterpret_cast<const char*>(a), kAddr));
        if (it != s->routes->end() &&
            FastForward(s, &it->second, static_cast<const uint8_t*>(iov[i].iov_base), msgs[i].msg_len)) {
          continue;
        }
      }
      if (kept != i) memmove(area->data + static_cast<size_t>(kept) * kSlot, iov[i].iov_base, msgs[i].msg_len);
      area->lens[kept] = static_cast<int32_t>(msgs[i].msg_len);
      PutAddr(area->addrs + static_cast<size_t>(kept) * kAddr, from[i]);
      kept++;
    }
    if (kept > 0) {
      napi_handle_scope scope;
      if (napi_open_handle_scope(env, &scope) != napi_ok) return;
      napi_value cb, recv, arg, result;
      // recv must be an object (node's MakeCallback converts it with ToObject).
      if (s->callback != nullptr && napi_get_reference_value(env, s->callback, &cb) == napi_ok &&
          napi_get_global(env, &recv) == napi_ok && napi_create_int32(env, kept, &arg) == napi_ok) {
        s->in_callback++;
        napi_make_callback(env, s->actx, recv, cb, 1, &arg, &result);
        s->in_callback--;
        if (s->in_callback == 0 && s->destroy_deferred) {
          s->destroy_deferred = false;
          ReleaseCallback(s);
        }
        // Never leave an exception pending for the next unrelated N-API call to trip over: hand
        // it to process 'uncaughtException' as any callback's would be.
        bool pending = false;
        if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
          napi_value err;
          if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
        }
      }
      napi_close_handle_scope(env, scope);
    }
    if (n < kBatch) return;
  }
}

Sock* GetSock(napi_env env, napi_value v) {
  napi_valuetype t;
  bool tagged = false;
  void* p = nullptr;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_check_object_type_tag(env, v, &kSockTag, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, v, &p) != napi_ok || p == nullptr) {
    Throw(env, "expected a ladder socket");
    return nullptr;
  }
  return static_cast<Sock*>(p);
}

napi_value ThrowErrno(napi_env env, int err, const char* what) {
  napi_value code, msg, e;
  const char* name = err == EADDRINUSE      ? "EADDRINUSE"
                     : err == EACCES        ? "EACCES"
                     : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL"
                     : err == EAFNOSUPPORT  ? "EAFNOSUPPORT"
                     : err == EMFILE        ? "EMFILE"
                     : err == ENFILE        ? "ENFILE"
                     : err == ENOMEM        ? "ENOMEM"
                                            : "EIO";
  char text[160];
  snprintf(text, sizeof text, "%s: %s (%s)", what, strerror(err), name);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &e);
  napi_throw(env, e);
  return nullptr;
}

napi_value SockShared(napi_env env, napi_callback_info /*info*/) {
  RecvArea* a = GetArea(env);
  if (a == nullptr) {
    napi_throw_error(env, "ERR_LADDER_SOCK", "out of memory");
    return nullptr;
  }
  napi_value arr;
  if (a->js != nullptr && napi_get_reference_value(env, a->js, &arr) == napi_ok && arr != nullptr) return arr;
  napi_value data, lens_ab, lens, addrs_ab, addrs, slot, batch;
  if (napi_create_external_buffer(env, kSlot * kBatch, a->data, nullptr, nullptr, &data) != napi_ok ||
      napi_create_external_arraybuffer(env, a->lens, sizeof a->lens, nullptr, nullptr, &lens_ab) != napi_ok ||
      napi_create_typedarray(env, napi_int32_array, kBatch, lens_ab, 0, &lens) != napi_ok ||
      napi_create_external_arraybuffer(env, a->addrs, sizeof a->addrs, nullptr, nullptr, &addrs_ab) != napi_ok ||
      napi_create_typedarray(env, napi_uint8_array, sizeof a->addrs, addrs_ab, 0, &addrs) != napi_ok ||
      napi_create_int32(env, static_cast<int32_t>(kSlot), &slot) != napi_ok ||
      napi_create_int32(env, kBatch, &batch) != napi_ok || napi_create_array_with_length(env, 5, &arr) != napi_ok) {
    napi_throw_error(env, "ERR_LADDER_SOCK", "cannot expose the receive area");
    return nullptr;
  }
  napi_set_element(env, arr, 0, data);
  napi_set_element(env, arr, 1, lens);
  napi_set_element(env, arr, 2, addrs);
  napi_set_element(env, arr, 3, slot);
  napi_set_element(env, arr, 4, batch);
  napi_create_reference(env, arr, 1, &a->js);
  return arr;
}

napi_value SockCreate(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t family = 0, port = -1;
  char ip[64];
  size_t ip_len = 0;
  napi_valuetype cbt;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 4 ||
      napi_get_value_int32(env, argv[0], &family) != napi_ok || (family != 4 && family != 6) ||
      napi_get_value_string_utf8(env, argv[1], ip, sizeof ip, &ip_len) != napi_ok ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok || port < 0 || port > 65535 ||
      napi_typeof(env, argv[3], &cbt) != napi_ok || cbt != napi_function) {
    Throw(env, "sockCreate(family 4|6, ip, port 0..65535, onBatch)");
    return nullptr;
  }
  sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  if (family == 4) {
    sockaddr_in* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, ip, &a->sin_addr) != 1) return Throw(env, "ip must be an IPv4 address"), nullptr;
    sl = sizeof(sockaddr_in);
  } else {
    sockaddr_in6* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, ip, &a->sin6_addr) != 1) return Throw(env, "ip must be an IPv6 address"), nullptr;
    sl = sizeof(sockaddr_in6);
  }
  const int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, errno, "socket");
  if (family == 6) {
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), sl) != 0) {
    const int e = errno;
    close(fd);
    return ThrowErrno(env, e, "bind");
  }
  uv_loop_t* loop = nullptr;
  Sock* s = new (std::nothrow) Sock();
  if (s == nullptr || napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr ||
      uv_poll_init_socket(loop, &s->poll, fd) != 0) {
    delete s;
    close(fd);
    napi_throw_error(env, "ERR_LADDER_SOCK", "cannot poll the socket");
    return nullptr;
  }
  s->fd = fd;
  s->family = family;
  s->env = env;
  s->poll.data = s;
  napi_value ext, name;
  if (napi_create_external(env, s, FinalizeSock, nullptr, &ext) != napi_ok) {
    s->finalized = true;
    s->closed = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&s->poll), OnPollClosed);
    napi_throw_error(env, "ERR_LADDER_SOCK", "napi_create_external failed");
    return nullptr;
  }
  RecvArea* area = GetArea(env);
  if (area != nullptr) {
    s->area = area;
    area->open.insert(s);
  }
  if (area == nullptr || napi_type_tag_object(env, ext, &kSockTag) != napi_ok ||
      napi_create_string_utf8(env, "ladder:udp", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &s->callback) != napi_ok ||
      napi_create_reference(env, ext, 1, &s->self) != napi_ok ||
      napi_async_init(env, nullptr, name, &s->actx) != napi_ok ||
      uv_poll_start(&s->poll, UV_READABLE, OnReadable) != 0) {
    CloseSock(s);
    napi_throw_error(env, "ERR_LADDER_SOCK", "cannot start polling the socket");
    return nullptr;
  }
  return ext;
}

napi_value SockPort(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1) return nullptr;
  Sock* s = GetSock(env, argv[0]);
  if (s == nullptr) return nullptr;
  if (s->closed) return Number(env, -1);
  sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(s->fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0) return Number(env, -1);
  const uint16_t p = ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                              : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port;
  return Number(env, ntohs(p));
}

napi_value SockSend(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  const uint8_t *data, *addrs;
  size_t n, an;
  int32_t off = -1;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 4) {
    Throw(env, "sockSend(socket, data, addrs, offset)");
    return nullptr;
  }
  Sock* s = GetSock(env, argv[0]);
  if (s == nullptr || !GetBytes(env, argv[1], &data, &n, "data must be a Uint8Array") ||
      !GetBytes(env, argv[2], &addrs, &an, "addrs must be a Uint8Array")) {
    return nullptr;
  }
  if (napi_get_value_int32(env, argv[3], &off) != napi_ok || off < 0 || static_cast<size_t>(off) + kAddr > an) {
    Throw(env, "offset outside addrs");
    return nullptr;
  }
  if (s->closed) return Number(env, -EBADF);
  const uint8_t* a = addrs + off;
  if (a[1] == 0 && a[2] == 0) return Number(env, -EINVAL);  // port 0
  sockaddr_storage to;
  const socklen_t tl = AddrToSockaddr(a, s->family, &to);
  if (tl == 0) return Number(env, -EAFNOSUPPORT);
  const ssize_t r = sendto(s->fd, data, n, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), tl);
  return Number(env, r >= 0 ? static_cast<int32_t>(r) : -errno);
}

napi_value SockSendTo(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  const uint8_t* data;
  size_t n;
  int32_t port = -1;
  char ip[64];
  size_t ip_len = 0;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 4) {
    Throw(env, "sockSendTo(socket, data, port, ip)");
    return nullptr;
  }
  Sock* s = GetSock(env, argv[0]);
  if (s == nullptr || !GetBytes(env, argv[1], &data, &n, "data must be a Uint8Array")) return nullptr;
  if (napi_get_value_int32(env, argv[2], &port) != napi_ok || port <= 0 || port > 65535 ||
      napi_get_value_string_utf8(env, argv[3], ip, sizeof ip, &ip_len) != napi_ok) {
    Throw(env, "port must be 1..65535 and ip a string");
    return nullptr;
  }
  if (s->closed) return Number(env, -EBADF);
  return Number(env, SendToFd(s->fd, s->family, data, n, port, ip));
}

// sockRelay(out, listener, method, masterKey, addrs, offset): from now on, datagrams arriving on
// `out` are sealed as SIP004 replies with masterKey and sent from `listener` to the 20-byte client
// address at addrs[offset], without calling JS. Call again when the client's address changes.
napi_value SockRelay(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  int m;
  EVP_CIPHER_CTX* ctx;
  size_t key_len;
  const uint8_t *key, *addrs;
  size_t kn, an;
  int32_t off = -1;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 6) {
    Throw(env, "sockRelay(out, listener, method, masterKey, addrs, offset)");
    return nullptr;
  }
  Sock* s = GetSock(env, argv[0]);
  if (s == nullptr) return nullptr;
  Sock* l = GetSock(env, argv[1]);
  if (l == nullptr || !GetMethod(env, argv[2], &m, &ctx, &key_len) ||
      !GetBytes(env, argv[3], &key, &kn, "masterKey must be a Uint8Array") ||
      !GetBytes(env, argv[4], &addrs, &an, "addrs must be a Uint8Array")) {
    return nullptr;
  }
  if (kn != key_len || kn > sizeof s->relay_key) {
    Throw(env, "masterKey has the wrong length for this method");
    return nullptr;
  }
  if (napi_get_value_int32(env, argv[5], &off) != napi_ok || off < 0 || static_cast<size_t>(off) + kAddr > an) {
    Throw(env, "offset outside addrs");
    return nullptr;
  }
  if (s->closed || l->closed) return nullptr;
  if (s->relay_to != l) {
    if (s->relay_ref != nullptr) napi_delete_reference(env, s->relay_ref);
    s->relay_ref = nullptr;
    if (napi_create_reference(env, argv[1], 1, &s->relay_ref) != napi_ok) {
      s->relay_to = nullptr;
      napi_throw_error(env, "ERR_LADDER_SOCK", "napi_create_reference failed");
      return nullptr;
    }
    s->relay_to = l;
  }
  s->relay_method = m;
  memcpy(s->relay_key, key, kn);
  s->relay_key_len = kn;
  memcpy(s->relay_client, addrs + off, kAddr);
  return nullptr;
}

// sockRelayTake(out) -> bytes of sealed replies sent since the last call (for usage accounting).
napi_value SockRelayTake(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1) return nullptr;
  Sock* s = GetSock(env, argv[0]);
  if (s == nullptr) return nullptr;
  const uint64_t b = s->relay_bytes;
  s->relay_bytes = 0;
  napi_value r;
  napi_create_double(env, static_cast<double>(b), &r);
  return r;
}

// sockPolicy(listener, allowPrivate, saltCapacity): turns on the C forward path's state.
napi_value SockPolicy(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  bool allow = false;
  int32_t cap = 0;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 3) {
    Throw(env, "sockPolicy(listener, allowPrivate, saltCapacity)");
    return nullptr;
  }
  Sock* s = GetSock(env, argv[0]);
  if (s == nullptr) return nullptr;
  if (napi_get_value_bool(env, argv[1], &allow) != napi_ok || napi_get_value_int32(env, argv[2], &cap) != napi_ok ||
      cap < 1) {
    Throw(env, "allowPrivate must be a boolean and saltCapacity a positive integer");
    return nullptr;
  }
  if (s->routes == nullptr) s->routes = new std::unordered_map<std::string, Route>();
  if (s->salts == nullptr) s->salts = new SaltSet();
  s->salts->capacity = static_cast<size_t>(cap);
  s->allow_private = allow;
  return nullptr;
}

// sockSaltAdd(listener, salt) -> true when new (and now remembered), false for a replay.
napi_value SockSaltAdd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  const uint8_t* salt;
  size_t n;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) return nullptr;
  Sock* s = GetSock(env, argv[0]);
  if (s == nullptr || !GetBytes(env, argv[1], &salt, &n, "salt must be a Uint8Array")) return nullptr;
  if (s->salts == nullptr) {
    Throw(env, "sockPolicy first");
    return nullptr;
  }
  return Bool(env, s->salts->Add(salt, n));
}

std::string AddrArg(napi_env env, napi_value addrs_v, napi_value off_v, bool* ok) {
  const uint8_t* addrs;
  size_t an;
  int32_t off = -1;
  *ok = GetBytes(env, addrs_v, &addrs, &an, "addrs must be a Uint8Array") &&
        napi_get_value_int32(env, off_v, &off) == napi_ok && off >= 0 && static_cast<size_t>(off) + kAddr <= an;
  if (!*ok) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && !pending) Throw(env, "offset outside addrs");
    return std::string();
  }
  return std::string(reinterpret_cast<const char*>(addrs + off), kAddr);
}

// sockRoute(listener, addrs, offset, out4|null, out6|null, method, masterKey)
napi_value SockRoute(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 7) {
    Throw(env, "sockRoute(listener, addrs, offset, out4, out6, method, masterKey)");
    return nullptr;
  }
  Sock* l = GetSock(env, argv[0]);
  if (l == nullptr) return nullptr;
  bool ok;
  std::string k = AddrArg(env, argv[1], argv[2], &ok);
  if (!ok) return nullptr;
  Sock* outs[2] = {nullptr, nullptr};
  for (int i = 0; i < 2; i++) {
    napi_valuetype t;
    if (napi_typeof(env, argv[3 + i], &t) != napi_ok) return nullptr;
    if (t == napi_null || t == napi_undefined) continue;
    outs[i] = GetSock(env, argv[3 + i]);
    if (outs[i] == nullptr) return nullptr;
  }
  int m;
  EVP_CIPHER_CTX* ctx;
  size_t key_len;
  const uint8_t* key;
  size_t kn;
  if (!GetMethod(env, argv[5], &m, &ctx, &key_len) || !GetBytes(env, argv[6], &key, &kn, "masterKey must be a Uint8Array")) {
    return nullptr;
  }
  if (kn != key_len || kn > 32) {
    Throw(env, "masterKey has the wrong length for this method");
    return nullptr;
  }
  if (l->routes == nullptr || l->closed) {
    Throw(env, "sockPolicy first, on an open listener");
    return nullptr;
  }
  Route& r = (*l->routes)[k];
  const uint64_t up = r.up_bytes;
  ClearRoute(env, &r);
  r.up_bytes = up;
  for (int i = 0; i < 2; i++) {
    if (outs[i] == nullptr) continue;
    napi_ref* ref = i == 0 ? &r.out4_ref : &r.out6_ref;
    if (napi_create_reference(env, argv[3 + i], 1, ref) != napi_ok) continue;
    (i == 0 ? r.out4 : r.out6) = outs[i];
  }
  r.method = m;
  memcpy(r.key, key, kn);
  r.key_len = kn;
  return nullptr;
}

// The bytes a route forwarded since the last take; `forget` also removes the route.
napi_value TakeRoute(napi_env env, napi_callback_info info, bool forget) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 3) return nullptr;
  Sock* l = GetSock(env, argv[0]);
  if (l == nullptr) return nullptr;
  bool ok;
  std::string k = AddrArg(env, argv[1], argv[2], &ok);
  if (!ok) return nullptr;
  double up = 0;
  if (l->routes != nullptr) {
    auto it = l->routes->find(k);
    if (it != l->routes->end()) {
      up = static_cast<double>(it->second.up_bytes);
      it->second.up_bytes = 0;
      if (forget) {
        ClearRoute(env, &it->second);
        l->routes->erase(it);
      }
    }
  }
  napi_value r;
  napi_create_double(env, up, &r);
  return r;
}

// sockUnroute(listener, addrs, offset) -> forwarded bytes not yet taken; the route is gone
napi_value SockUnroute(napi_env env, napi_callback_info info) { return TakeRoute(env, info, true); }

// sockRouteTake(listener, addrs, offset) -> forwarded datagram bytes since the last call
napi_value SockRouteTake(napi_env env, napi_callback_info info) { return TakeRoute(env, info, false); }

// isPrivateIp(bytes of 4 or 16) -> the C forward path's private-destination rule (for tests
// that hold it equal to src/server/destination.ts).
napi_value IsPrivateIp(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  const uint8_t* a;
  size_t n;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1 ||
      !GetBytes(env, argv[0], &a, &n, "ip must be a Uint8Array of 4 or 16 bytes")) {
    return nullptr;
  }
  if (n != 4 && n != 16) {
    Throw(env, "ip must be a Uint8Array of 4 or 16 bytes");
    return nullptr;
  }
  return Bool(env, n == 4 ? IsPrivate4(a) : IsPrivate6(a));
}

// sockDropped(listener) -> datagrams the C forward path dropped (replays, forbidden destinations)
napi_value SockDropped(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1) return nullptr;
  Sock* l = GetSock(env, argv[0]);
  if (l == nullptr) return nullptr;
  napi_value r;
  napi_create_double(env, static_cast<double>(l->dropped), &r);
  return r;
}

napi_value SockClose(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1) return nullptr;
  Sock* s = GetSock(env, argv[0]);
  if (s == nullptr) return nullptr;
  CloseSock(s);
  return nullptr;
}
#endif  // __linux__

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"available", nullptr, Available, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"create", nullptr, Create, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"encode", nullptr, Encode, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decode", nullptr, Decode, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decodeInPlace", nullptr, DecodeInPlace, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"createSession", nullptr, CreateSession, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"seal", nullptr, Seal, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sealInto", nullptr, SealInto, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"open", nullptr, Open, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"hkdfSha1", nullptr, HkdfSha1Js, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sealParts", nullptr, SealParts, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"openAt", nullptr, OpenAt, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"udpSeal", nullptr, UdpSeal, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"udpOpen", nullptr, UdpOpen, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sendTo", nullptr, SendTo, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
#if defined(__linux__)
  const napi_property_descriptor sock_props[] = {
      {"sockShared", nullptr, SockShared, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sockCreate", nullptr, SockCreate, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sockPort", nullptr, SockPort, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sockSend", nullptr, SockSend, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sockSendTo", nullptr, SockSendTo, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sockRelay", nullptr, SockRelay, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sockRelayTake", nullptr, SockRelayTake, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sockPolicy", nullptr, SockPolicy, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sockSaltAdd", nullptr, SockSaltAdd, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sockRoute", nullptr, SockRoute, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sockUnroute", nullptr, SockUnroute, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sockRouteTake", nullptr, SockRouteTake, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sockDropped", nullptr, SockDropped, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"isPrivateIp", nullptr, IsPrivateIp, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sockClose", nullptr, SockClose, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(sock_props) / sizeof(sock_props[0]), sock_props);
#endif
  napi_value version;
  napi_create_int32(env, 4, &version);
  napi_set_named_property(env, exports, "abiVersion", version);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
