// Ladder native addon: the one argument parser every export uses, and the small N-API result
// helpers. Throwing getters raise TypeError (code ERR_LADDER_AEAD) with the message they are
// given; the plain getters only report whether the value fits, so a caller can fold several
// checks into one message.
#ifndef LADDER_NATIVE_NAPI_ARGS_H_
#define LADDER_NATIVE_NAPI_ARGS_H_

#include "common.h"

namespace ladder {

// Throws TypeError(msg) with code ERR_LADDER_AEAD; always returns false.
bool Throw(napi_env env, const char* msg);
// The same unless an exception is already pending (a getter threw a more precise one).
bool ThrowUnlessPending(napi_env env, const char* msg);
// After a failed napi_create_buffer: make sure JS sees an exception, never a bare undefined.
napi_value AllocFailed(napi_env env);

napi_value Number(napi_env env, int32_t v);
napi_value Double(napi_env env, double v);
napi_value Bool(napi_env env, bool v);

// The arguments of one call. An argument is present when JS passed it (index < the call's
// argument count), even if it is undefined; missing ones read as undefined.
class Args {
 public:
  static constexpr size_t kMax = 11;  // relayConnect takes 11

  Args(napi_env env, napi_callback_info info);

  // True when at least `min` arguments were passed. Otherwise throws TypeError(usage), or
  // nothing when usage is nullptr (the export then returns undefined).
  bool Need(size_t min, const char* usage = nullptr) const;
  bool Has(size_t i) const { return ok_ && i < argc_ && i < kMax; }
  napi_value operator[](size_t i) const { return argv_[i < kMax ? i : kMax - 1]; }
  napi_env env() const { return env_; }

  // Any Uint8Array (Buffer included) at its byte offset into its ArrayBuffer; a detached one is
  // empty. Throws `what` for anything else.
  bool Bytes(size_t i, const uint8_t** data, size_t* len, const char* what) const;
  // Like Bytes, but absent, undefined or null give an empty range.
  bool OptionalBytes(size_t i, const uint8_t** data, size_t* len, const char* what) const;
  // Absent or undefined.
  bool Undefined(size_t i) const;
  // Absent, undefined or null; false (and an exception may be pending) when typeof fails.
  bool Nullish(size_t i, bool* nullish) const;

  // Non-throwing: false when the value is not of that type.
  bool Int32(size_t i, int32_t* v) const;
  bool Int64(size_t i, int64_t* v) const;
  bool Boolean(size_t i, bool* v) const;
  bool Function(size_t i) const;
  // A non-negative safe integer (NaN, fractions, strings and negatives fail).
  bool Index(size_t i, int64_t* v) const;
  // A string copied NUL-terminated into buf (cap bytes, truncated to fit).
  bool String(size_t i, char* buf, size_t cap) const;
  // An Int32Array of at least `min_len` elements; throws `what` otherwise.
  bool Int32Array(size_t i, size_t min_len, int32_t** data, const char* what) const;
  // A napi_external tagged with `tag`; throws `what` otherwise.
  bool Tagged(size_t i, const napi_type_tag& tag, void** p, const char* what) const;

 private:
  napi_env env_;
  bool ok_;
  size_t argc_ = kMax;
  napi_value argv_[kMax];
};

}  // namespace ladder

#endif  // LADDER_NATIVE_NAPI_ARGS_H_
