// Ladder native addon: what every part shares - the N-API and OpenSSL headers, the AEAD sizes
// and the process-wide cipher table.
#ifndef LADDER_NATIVE_COMMON_H_
#define LADDER_NATIVE_COMMON_H_

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

#include <openssl/crypto.h>

#include <cstddef>
#include <cstdint>
#if defined(__GLIBC__)
#include <string.h>
#endif

namespace ladder {

constexpr size_t kTag = 16;
constexpr size_t kNonce = 12;
// Largest single seal/open (datagrams can exceed a stream chunk; EVP takes an int length).
constexpr size_t kMaxOp = size_t{1} << 30;
// 0 aes-128-gcm, 1 aes-256-gcm, 2 chacha20-poly1305, 3 aes-192-gcm.
constexpr int kMethods = 4;

enum Status : int32_t { kOk = 0, kErrCipher = 1, kErrPayloadSize = 2 };

// The cipher of method m, fetched once per process (EVP_CIPHER is reference counted and
// immutable after fetch, so sharing across worker threads is fine), or nullptr when m is out of
// range or this OpenSSL lacks it.
const EVP_CIPHER* CipherOf(int m);

// Wipes n secret bytes at p (a write the compiler may not drop): glibc's explicit_bzero runs the
// vectorised memset, several times cheaper than OPENSSL_cleanse's byte/word loop for the few
// hundred bytes of a key derivation; OPENSSL_cleanse elsewhere.
inline void Wipe(void* p, size_t n) {
#if defined(__GLIBC__)
  explicit_bzero(p, n);
#else
  OPENSSL_cleanse(p, n);
#endif
}

// Node unloads an addon with the last env that loaded it (a worker's, at its exit), but the close
// callbacks of the polls closed at env cleanup (relays, accepted connections, SOCKS5 fronts) run
// after that, from this library: called before the first such handle, this keeps it loaded for
// the life of the process (Linux; nothing elsewhere).
void PinLibrary();

// After a JS callback from a libuv callback (napi_make_callback): an exception it left pending is
// handed to process 'uncaughtException', as any callback's would be, and never left for the next
// unrelated N-API call to trip over.
void RaisePendingException(napi_env env);

}  // namespace ladder

#endif  // LADDER_NATIVE_COMMON_H_
