// Ladder native addon: the stream codec (stream_codec.cc) for the other parts - the native TCP
// relay (relay_pair.cc) drives the same codecs JS created and keyed, without a JS call per read.
#ifndef LADDER_NATIVE_STREAM_CODEC_H_
#define LADDER_NATIVE_STREAM_CODEC_H_

#include "common.h"

namespace ladder {

struct Codec;

// The codec behind a JS codec value: an encoder (enc 1) or a decoder (enc 0); nullptr for any
// other value, or a codec of the other direction.
Codec* CodecOf(napi_env env, napi_value v, int enc);
bool CodecFailed(const Codec* c);
// A SIP004 encoder of method (0..3) keyed with HKDF-SHA1(master, salt), owned by the caller (not
// a JS value): free it with CodecFree. nullptr when the method or key does not fit.
// enc 0: a decoder instead (the client's relay reading the server's salt, relay_pair.cc); free it
// with CodecFreeIn, which also takes back the memory its decoding reported to V8.
Codec* CodecDerived(int method, const uint8_t* master, size_t master_len, const uint8_t* salt, size_t salt_len,
                    int enc = 1);
void CodecFree(Codec* c);
void CodecFreeIn(napi_env env, Codec* c);
// The method (0..3) a codec was made for.
int CodecMethod(const Codec* c);
// The largest element (sealed length or sealed payload) the decoder reads.
size_t CodecMaxElement(const Codec* c);
// What encode(codec, data) writes for n bytes, without a prefix.
size_t CodecEncodedSize(const Codec* c, size_t n);
// Writes exactly CodecEncodedSize(c, n) bytes at out; false (codec failed for good) if a seal fails.
bool CodecEncodeTo(Codec* c, const uint8_t* data, size_t n, uint8_t* out);
// Decodes data[0..n) like decode(): the plaintext of every chunk it completes goes to out (room
// for n + CodecMaxElement(c) bytes needed), *out_len bytes; an incomplete element is kept in the
// codec. Returns 0, or 1 (authentication failed) / 2 (chunk length out of bounds): failed for
// good. Never throws.
// info (optional): receives decode()'s info array after the call (the bad length for status 2).
int32_t CodecDecodeTo(napi_env env, Codec* c, const uint8_t* data, size_t n, uint8_t* out, size_t* out_len,
                      int32_t* info = nullptr);
// sip004Open's trial (the salt, as long as method m's key, then the sealed length chunk at head;
// master as long as the key): *status 0 with the decoder codec as a JS value (nullptr when an
// exception is pending) and info written, 1 when the tag does not verify (another key), 2 when it
// does but the length is invalid (info[3]); nullptr for both.
napi_value Sip004Trial(napi_env env, int m, const uint8_t* master, const uint8_t* head, int32_t* info,
                       int32_t* status);

}  // namespace ladder

#endif  // LADDER_NATIVE_STREAM_CODEC_H_
