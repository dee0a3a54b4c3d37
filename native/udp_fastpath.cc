// Ladder native addon: the SIP004 UDP relay path in C, on the batched sockets of udp_sockets.cc
// (Linux), since abiVersion 3.
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
//   isPrivateIp(bytes of 4 or 16) -> bool                  the C path's private-destination rule
#include "udp_fastpath.h"

#if defined(__linux__)

#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "exports.h"
#include "napi_args.h"
#include "oneshot.h"
#include "private_rule.h"

namespace ladder {


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

namespace {

// The calling thread's scratch buffer i (0: a datagram's plaintext, 1: a sealed reply), allocated
// on first use and freed at the thread's exit. Not thread_local arrays: those would be part of the
// addon's TLS block, which every thread touching any thread_local of the addon allocates and
// zeroes whole (glibc's dynamic TLS), relay or not.
uint8_t* ThreadBuffer(int i) {
  struct Buffers {
    uint8_t* p[2] = {nullptr, nullptr};
    ~Buffers() {
      for (uint8_t*& q : p) {
        free(q);
        q = nullptr;
      }
    }
  };
  static thread_local Buffers b;
  if (b.p[i] == nullptr) b.p[i] = static_cast<uint8_t*>(malloc(kSlot + 32 + 19 + kTag));
  return b.p[i];
}

void ClearRoute(napi_env env, Route* r) {
  if (r->out4_ref != nullptr) napi_delete_reference(env, r->out4_ref);
  if (r->out6_ref != nullptr) napi_delete_reference(env, r->out6_ref);
  r->out4_ref = r->out6_ref = nullptr;
  r->out4 = r->out6 = nullptr;
  OPENSSL_cleanse(r->key, sizeof r->key);
}

// A datagram from a routed client: open, check, forward. True when handled here (forwarded, or
// dropped as a replay / forbidden destination / port 0); false leaves it to JS untouched (it
// did not authenticate with the route's key, names a domain, or needs an outbound socket JS has
// not made yet) - nothing is remembered before that decision, so JS sees it fresh.
bool FastForward(Sock* l, Route* r, const uint8_t* pkt, size_t n) {
  const size_t salt_len = r->key_len;
  if (n < salt_len + kTag + 7 || n - salt_len - kTag > kSlot) return false;
  uint8_t* plain = ThreadBuffer(0);
  if (plain == nullptr) return false;
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

// The client address argument (addrs, offset) at i, i + 1 as a route key; ok false with an
// exception set when it is not one.
std::string AddrArg(const Args& a, size_t i, bool* ok) {
  const uint8_t* addrs;
  size_t an;
  int32_t off = -1;
  *ok = a.Bytes(i, &addrs, &an, "addrs must be a Uint8Array") && AddrOffset(a, i + 1, an, &off);
  if (!*ok) return std::string();
  return std::string(reinterpret_cast<const char*>(addrs + off), kAddr);
}

// The bytes a route forwarded since the last take; `forget` also removes the route.
napi_value TakeRoute(napi_env env, napi_callback_info info, bool forget) {
  const Args a(env, info);
  if (!a.Need(3)) return nullptr;
  Sock* l = GetSock(a, 0);
  if (l == nullptr) return nullptr;
  bool ok;
  std::string k = AddrArg(a, 1, &ok);
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
  return Double(env, up);
}

}  // namespace

bool HasRoutes(const Sock* l) { return l->routes != nullptr && !l->routes->empty(); }

bool FastForwardFrom(Sock* l, const sockaddr_storage& from, const uint8_t* pkt, size_t n) {
  uint8_t a[kAddr];
  PutAddr(a, from);
  auto it = l->routes->find(std::string(reinterpret_cast<const char*>(a), kAddr));
  return it != l->routes->end() && FastForward(l, &it->second, pkt, n);
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
  uint8_t* out = ThreadBuffer(1);
  if (out == nullptr) return;
  const size_t salt_len = s->relay_key_len;
  if (n > kSlot) return;
  EVP_CIPHER_CTX* ctx = OneShotCtx(s->relay_method);
  uint8_t subkey[kMaxSubkey];
  const bool ok = ctx != nullptr && RandomBytes(out, salt_len) &&
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

void ReleaseFastPath(Sock* s) {
  if (s->relay_ref != nullptr) napi_delete_reference(s->env, s->relay_ref);
  s->relay_ref = nullptr;
  s->relay_to = nullptr;
  OPENSSL_cleanse(s->relay_key, sizeof s->relay_key);
  if (s->routes != nullptr) {
    for (auto& kv : *s->routes) ClearRoute(s->env, &kv.second);
    s->routes->clear();
  }
}

void FreeFastPath(Sock* s) {
  delete s->routes;
  delete s->salts;
}

// sockRelay(out, listener, method, masterKey, addrs, offset): from now on, datagrams arriving on
// `out` are sealed as SIP004 replies with masterKey and sent from `listener` to the 20-byte client
// address at addrs[offset], without calling JS. Call again when the client's address changes.
napi_value SockRelay(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  int m;
  EVP_CIPHER_CTX* ctx;
  size_t key_len;
  const uint8_t *key, *addrs;
  size_t kn, an;
  int32_t off = -1;
  if (!a.Need(6, "sockRelay(out, listener, method, masterKey, addrs, offset)")) return nullptr;
  Sock* s = GetSock(a, 0);
  if (s == nullptr) return nullptr;
  Sock* l = GetSock(a, 1);
  if (l == nullptr || !GetMethodAndMasterKey(a, 2, &m, &ctx, &key_len, &key, &kn) ||
      !a.Bytes(4, &addrs, &an, "addrs must be a Uint8Array")) {
    return nullptr;
  }
  if (kn != key_len || kn > sizeof s->relay_key) {
    Throw(env, "masterKey has the wrong length for this method");
    return nullptr;
  }
  if (!AddrOffset(a, 5, an, &off)) return nullptr;
  if (s->closed || l->closed) return nullptr;
  if (s->relay_to != l) {
    if (s->relay_ref != nullptr) napi_delete_reference(env, s->relay_ref);
    s->relay_ref = nullptr;
    if (napi_create_reference(env, a[1], 1, &s->relay_ref) != napi_ok) {
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
  Sock* s = OnlySock(env, info);
  if (s == nullptr) return nullptr;
  const uint64_t b = s->relay_bytes;
  s->relay_bytes = 0;
  return Double(env, static_cast<double>(b));
}

// sockPolicy(listener, allowPrivate, saltCapacity): turns on the C forward path's state.
napi_value SockPolicy(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  bool allow = false;
  int32_t cap = 0;
  if (!a.Need(3, "sockPolicy(listener, allowPrivate, saltCapacity)")) return nullptr;
  Sock* s = GetSock(a, 0);
  if (s == nullptr) return nullptr;
  if (!a.Boolean(1, &allow) || !a.Int32(2, &cap) || cap < 1) {
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
  const Args a(env, info);
  const uint8_t* salt;
  size_t n;
  if (!a.Need(2)) return nullptr;
  Sock* s = GetSock(a, 0);
  if (s == nullptr || !a.Bytes(1, &salt, &n, "salt must be a Uint8Array")) return nullptr;
  if (s->salts == nullptr) {
    Throw(env, "sockPolicy first");
    return nullptr;
  }
  return Bool(env, s->salts->Add(salt, n));
}

// sockRoute(listener, addrs, offset, out4|null, out6|null, method, masterKey)
napi_value SockRoute(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  if (!a.Need(7, "sockRoute(listener, addrs, offset, out4, out6, method, masterKey)")) return nullptr;
  Sock* l = GetSock(a, 0);
  if (l == nullptr) return nullptr;
  bool ok;
  std::string k = AddrArg(a, 1, &ok);
  if (!ok) return nullptr;
  Sock* outs[2] = {nullptr, nullptr};
  for (int i = 0; i < 2; i++) {
    bool nullish = false;
    if (!a.Nullish(3 + i, &nullish)) return nullptr;
    if (nullish) continue;
    outs[i] = GetSock(a, 3 + i);
    if (outs[i] == nullptr) return nullptr;
  }
  int m;
  EVP_CIPHER_CTX* ctx;
  size_t key_len;
  const uint8_t* key;
  size_t kn;
  if (!GetMethodAndMasterKey(a, 5, &m, &ctx, &key_len, &key, &kn)) return nullptr;
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
    if (napi_create_reference(env, a[3 + i], 1, ref) != napi_ok) continue;
    (i == 0 ? r.out4 : r.out6) = outs[i];
  }
  r.method = m;
  memcpy(r.key, key, kn);
  r.key_len = kn;
  return nullptr;
}

// sockUnroute(listener, addrs, offset) -> forwarded bytes not yet taken; the route is gone
napi_value SockUnroute(napi_env env, napi_callback_info info) { return TakeRoute(env, info, true); }

// sockRouteTake(listener, addrs, offset) -> forwarded datagram bytes since the last call
napi_value SockRouteTake(napi_env env, napi_callback_info info) { return TakeRoute(env, info, false); }

// isPrivateIp(bytes of 4 or 16) -> the C forward path's private-destination rule (for tests
// that hold it equal to src/server/destination.ts).
napi_value IsPrivateIp(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  const uint8_t* ip;
  size_t n;
  if (!a.Need(1) || !a.Bytes(0, &ip, &n, "ip must be a Uint8Array of 4 or 16 bytes")) return nullptr;
  if (n != 4 && n != 16) {
    Throw(env, "ip must be a Uint8Array of 4 or 16 bytes");
    return nullptr;
  }
  return Bool(env, n == 4 ? IsPrivate4(ip) : IsPrivate6(ip));
}

// sockDropped(listener) -> datagrams the C forward path dropped (replays, forbidden destinations)
napi_value SockDropped(napi_env env, napi_callback_info info) {
  Sock* l = OnlySock(env, info);
  if (l == nullptr) return nullptr;
  return Double(env, static_cast<double>(l->dropped));
}

}  // namespace ladder

#endif  // __linux__
