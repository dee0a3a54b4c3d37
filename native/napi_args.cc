// Ladder native addon: the argument parser (see napi_args.h).
#include "napi_args.h"

namespace ladder {

bool Throw(napi_env env, const char* msg) {
  napi_throw_type_error(env, "ERR_LADDER_AEAD", msg);
  return false;
}

bool ThrowUnlessPending(napi_env env, const char* msg) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && !pending) Throw(env, msg);
  return false;
}

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

napi_value Double(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

napi_value Bool(napi_env env, bool v) {
  napi_value r;
  napi_get_boolean(env, v, &r);
  return r;
}

Args::Args(napi_env env, napi_callback_info info) : env_(env) {
  ok_ = napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr) == napi_ok;
  if (!ok_) {
    argc_ = 0;
    for (napi_value& v : argv_) v = nullptr;
  }
}

bool Args::Need(size_t min, const char* usage) const {
  if (ok_ && argc_ >= min) return true;
  return usage != nullptr ? Throw(env_, usage) : false;
}

bool Args::Bytes(size_t i, const uint8_t** data, size_t* len, const char* what) const {
  const napi_value v = (*this)[i];
  bool is_ta = false;
  if (napi_is_typedarray(env_, v, &is_ta) != napi_ok || !is_ta) return Throw(env_, what);
  napi_typedarray_type type;
  size_t length = 0;
  void* ptr = nullptr;
  if (napi_get_typedarray_info(env_, v, &type, &length, &ptr, nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array) {
    return Throw(env_, what);
  }
  if (ptr == nullptr && length != 0) return Throw(env_, what);  // detached
  *data = static_cast<const uint8_t*>(ptr);
  *len = length;
  return true;
}

bool Args::OptionalBytes(size_t i, const uint8_t** data, size_t* len, const char* what) const {
  bool nullish = false;
  if (!Nullish(i, &nullish)) return Throw(env_, what);
  if (nullish) {
    *data = nullptr;
    *len = 0;
    return true;
  }
  return Bytes(i, data, len, what);
}

bool Args::Undefined(size_t i) const {
  if (!Has(i)) return true;
  napi_valuetype t;
  return napi_typeof(env_, (*this)[i], &t) == napi_ok && t == napi_undefined;
}

bool Args::Nullish(size_t i, bool* nullish) const {
  if (!Has(i)) {
    *nullish = true;
    return true;
  }
  napi_valuetype t;
  if (napi_typeof(env_, (*this)[i], &t) != napi_ok) return false;
  *nullish = t == napi_undefined || t == napi_null;
  return true;
}

bool Args::Int32(size_t i, int32_t* v) const { return napi_get_value_int32(env_, (*this)[i], v) == napi_ok; }

bool Args::Int64(size_t i, int64_t* v) const { return napi_get_value_int64(env_, (*this)[i], v) == napi_ok; }

bool Args::Boolean(size_t i, bool* v) const { return napi_get_value_bool(env_, (*this)[i], v) == napi_ok; }

bool Args::Function(size_t i) const {
  napi_valuetype t;
  return napi_typeof(env_, (*this)[i], &t) == napi_ok && t == napi_function;
}

bool Args::Index(size_t i, int64_t* v) const {
  double d = -1;
  if (napi_get_value_double(env_, (*this)[i], &d) != napi_ok || !(d >= 0) || d > 9007199254740991.0 ||
      d != static_cast<double>(static_cast<int64_t>(d))) {
    return false;
  }
  *v = static_cast<int64_t>(d);
  return true;
}

bool Args::String(size_t i, char* buf, size_t cap) const {
  size_t n = 0;
  return napi_get_value_string_utf8(env_, (*this)[i], buf, cap, &n) == napi_ok;
}

bool Args::Int32Array(size_t i, size_t min_len, int32_t** data, const char* what) const {
  const napi_value v = (*this)[i];
  bool is_ta = false;
  napi_typedarray_type type;
  size_t length = 0;
  void* ptr = nullptr;
  if (napi_is_typedarray(env_, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env_, v, &type, &length, &ptr, nullptr, nullptr) != napi_ok ||
      type != napi_int32_array || length < min_len || ptr == nullptr) {
    return Throw(env_, what);
  }
  *data = static_cast<int32_t*>(ptr);
  return true;
}

bool Args::Tagged(size_t i, const napi_type_tag& tag, void** p, const char* what) const {
  const napi_value v = (*this)[i];
  napi_valuetype t;
  bool tagged = false;
  if (napi_typeof(env_, v, &t) != napi_ok || t != napi_external ||
      napi_check_object_type_tag(env_, v, &tag, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env_, v, p) != napi_ok || *p == nullptr) {
    return Throw(env_, what);
  }
  return true;
}

}  // namespace ladder
