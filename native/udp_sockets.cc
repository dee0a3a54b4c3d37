// Ladder native addon: datagram I/O (not crypto, but it lives here so there is one optional addon
// to build).
//   sendTo(fd, data, port, ip, family) -> number
//       one non-blocking sendto(2) on a UDP socket libuv already owns (node's dgram handle fd),
//       skipping node's per-send request object and lookup tick. Returns the bytes sent, or
//       -errno (the caller falls back to socket.send on -EAGAIN/-ENOBUFS). family 6 maps an
//       IPv4 address to ::ffff:a.b.c.d. On Windows it always returns -ENOSYS.
//
// Batched UDP sockets of our own (Linux; the UDP relay's hot path), since abiVersion 3:
//   sockShared() -> [data Buffer, lens Int32Array, addrs Uint8Array, slot, batch]
//       one receive area per thread, filled before each callback: datagram i is
//       data[i*slot .. i*slot+lens[i]], its source addrs[i*20 .. i*20+20] in the wire form below.
//       Valid only during the callback (the next batch overwrites it).
//   sockCreate(family 4|6, ip, port, onBatch[, fd]) -> socket   (throws Error with .code = errno name)
//       a non-blocking UDP socket (family 6 is dual-stack), bound, polled on node's libuv loop
//       (with fd: that already bound socket, from udpBind in reuseport.cc, is adopted instead);
//       readable -> recvmmsg(2) in batches -> onBatch(count) through napi_make_callback.
//       Datagrams the SIP004 fast path takes (udp_fastpath.cc) never reach onBatch.
//   sockPort(socket) -> number
//   sockSend(socket, data, addrs, offset) -> number        bytes sent or -errno; to the 20-byte
//       address at addrs[offset]: [family 4|6, port hi, port lo, 0, 16 address bytes (IPv4 in
//       the first 4)], the same form a batch reports sources in
//   sockSendTo(socket, data, port, ip) -> number            the same to an IP literal
//   sockClose(socket)                                      stops polling, closes the fd
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#ifndef _WIN32
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

#include "exports.h"
#include "napi_args.h"
#include "udp_fastpath.h"
#include "udp_sockets.h"

#if defined(__linux__)
#include <unordered_set>
#endif

namespace ladder {

namespace {

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

}  // namespace

napi_value SendTo(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  int32_t fd = -1;
  int32_t port = -1;
  int32_t family = 0;
  const uint8_t* data = nullptr;
  size_t n = 0;
  char ip[64];
  if (!a.Need(5) || !a.Int32(0, &fd) || fd < 0 || !a.Bytes(1, &data, &n, "data must be a Uint8Array") ||
      !a.Int32(2, &port) || port <= 0 || port > 65535 || !a.String(3, ip, sizeof ip) || !a.Int32(4, &family) ||
      (family != 4 && family != 6)) {
    ThrowUnlessPending(env, "sendTo(fd, data, port 1..65535, ip, family 4|6)");
    return nullptr;
  }
  return Number(env, SendToFd(fd, family, data, n, port, ip));
}

#if defined(__linux__)

constexpr int kBatch = 32;
constexpr int kRounds = 8;  // batches per readable event before yielding to the loop

struct RecvArea {
  uint8_t* data = nullptr;
  int32_t lens[kBatch];
  uint8_t addrs[kBatch * kAddr];
  napi_ref js = nullptr;  // the [data, lens, addrs, slot, batch] array
  // Open sockets of this env: closed by the env cleanup hook (a worker thread that exits with
  // sockets open must not leave active poll handles on its loop).
  std::unordered_set<Sock*> open;
};

namespace {

void CloseSock(Sock* s);

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

void MaybeFree(Sock* s) {
  if (s->uv_done && s->finalized) {
    FreeFastPath(s);
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
  ReleaseFastPath(s);
}

void FinalizeSock(napi_env /*env*/, void* data, void* /*hint*/) {
  Sock* s = static_cast<Sock*>(data);
  s->finalized = true;
  // Open sockets hold a strong reference to their handle, so this only runs after CloseSock.
  MaybeFree(s);
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
    const bool routed = HasRoutes(s);
    for (int i = 0; i < n; i++) {
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) continue;  // larger than a slot: drop
      if (routed && FastForwardFrom(s, from[i], static_cast<const uint8_t*>(iov[i].iov_base), msgs[i].msg_len)) {
        continue;
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
        RaisePendingException(env);
      }
      napi_close_handle_scope(env, scope);
    }
    if (n < kBatch) return;
  }
}

}  // namespace

napi_value ThrowErrno(napi_env env, int err, const char* what) {
  napi_value code, msg, e;
  const char* name = err == EADDRINUSE      ? "EADDRINUSE"
                     : err == EACCES        ? "EACCES"
                     : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL"
                     : err == EAFNOSUPPORT  ? "EAFNOSUPPORT"
                     : err == EMFILE        ? "EMFILE"
                     : err == ENFILE        ? "ENFILE"
                     : err == ENOPROTOOPT   ? "ENOPROTOOPT"
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

bool IpSockaddr(napi_env env, int family, const char* ip, int port, sockaddr_storage* ss, socklen_t* sl) {
  memset(ss, 0, sizeof *ss);
  if (family == 4) {
    sockaddr_in* a = reinterpret_cast<sockaddr_in*>(ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, ip, &a->sin_addr) != 1) return Throw(env, "ip must be an IPv4 address");
    *sl = sizeof(sockaddr_in);
  } else {
    sockaddr_in6* a = reinterpret_cast<sockaddr_in6*>(ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, ip, &a->sin6_addr) != 1) return Throw(env, "ip must be an IPv6 address");
    *sl = sizeof(sockaddr_in6);
  }
  return true;
}

Sock* GetSock(const Args& a, size_t i) {
  void* p = nullptr;
  return a.Tagged(i, kSockTag, &p, "expected a ladder socket") ? static_cast<Sock*>(p) : nullptr;
}

Sock* OnlySock(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  return a.Need(1) ? GetSock(a, 0) : nullptr;
}

bool AddrOffset(const Args& a, size_t i, size_t addrs_len, int32_t* off) {
  if (!a.Int32(i, off) || *off < 0 || static_cast<size_t>(*off) + kAddr > addrs_len) {
    return Throw(a.env(), "offset outside addrs");
  }
  return true;
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

int BoundSocket(napi_env env, int family, const char* ip, int port, int type, bool reuse_port) {
  sockaddr_storage ss;
  socklen_t sl = 0;
  if (!IpSockaddr(env, family, ip, port, &ss, &sl)) return -1;
  const int fd = socket(family == 4 ? AF_INET : AF_INET6, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ThrowErrno(env, errno, "socket");
    return -1;
  }
  int on = 1;
  if (reuse_port && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
                     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)) {
    const int e = errno;
    close(fd);
    ThrowErrno(env, e, "setsockopt");
    return -1;
  }
  if (family == 6) {
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), sl) != 0) {
    const int e = errno;
    close(fd);
    ThrowErrno(env, e, "bind");
    return -1;
  }
  return fd;
}

napi_value SockCreate(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  int32_t family = 0, port = -1;
  char ip[64];
  if (!a.Need(4) || !a.Int32(0, &family) || (family != 4 && family != 6) || !a.String(1, ip, sizeof ip) ||
      !a.Int32(2, &port) || port < 0 || port > 65535 || !a.Function(3)) {
    Throw(env, "sockCreate(family 4|6, ip, port 0..65535, onBatch)");
    return nullptr;
  }
  // A fifth argument adopts a bound UDP socket made earlier (udpBind), with what it queued.
  int32_t adopt = -1;
  if (a.Has(4) && !a.Undefined(4) && (!a.Int32(4, &adopt) || adopt < 0)) {
    Throw(env, "sockCreate: fd >= 0");
    return nullptr;
  }
  const int fd = adopt >= 0 ? adopt : BoundSocket(env, family, ip, port, SOCK_DGRAM, false);
  if (fd < 0) return nullptr;
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
      napi_create_reference(env, a[3], 1, &s->callback) != napi_ok ||
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
  Sock* s = OnlySock(env, info);
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
  const Args a(env, info);
  const uint8_t *data, *addrs;
  size_t n, an;
  int32_t off = -1;
  if (!a.Need(4, "sockSend(socket, data, addrs, offset)")) return nullptr;
  Sock* s = GetSock(a, 0);
  if (s == nullptr || !a.Bytes(1, &data, &n, "data must be a Uint8Array") ||
      !a.Bytes(2, &addrs, &an, "addrs must be a Uint8Array") || !AddrOffset(a, 3, an, &off)) {
    return nullptr;
  }
  if (s->closed) return Number(env, -EBADF);
  const uint8_t* dest = addrs + off;
  if (dest[1] == 0 && dest[2] == 0) return Number(env, -EINVAL);  // port 0
  sockaddr_storage to;
  const socklen_t tl = AddrToSockaddr(dest, s->family, &to);
  if (tl == 0) return Number(env, -EAFNOSUPPORT);
  const ssize_t r = sendto(s->fd, data, n, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), tl);
  return Number(env, r >= 0 ? static_cast<int32_t>(r) : -errno);
}

napi_value SockSendTo(napi_env env, napi_callback_info info) {
  const Args a(env, info);
  const uint8_t* data;
  size_t n;
  int32_t port = -1;
  char ip[64];
  if (!a.Need(4, "sockSendTo(socket, data, port, ip)")) return nullptr;
  Sock* s = GetSock(a, 0);
  if (s == nullptr || !a.Bytes(1, &data, &n, "data must be a Uint8Array")) return nullptr;
  if (!a.Int32(2, &port) || port <= 0 || port > 65535 || !a.String(3, ip, sizeof ip)) {
    Throw(env, "port must be 1..65535 and ip a string");
    return nullptr;
  }
  if (s->closed) return Number(env, -EBADF);
  return Number(env, SendToFd(s->fd, s->family, data, n, port, ip));
}

napi_value SockClose(napi_env env, napi_callback_info info) {
  Sock* s = OnlySock(env, info);
  if (s == nullptr) return nullptr;
  CloseSock(s);
  return nullptr;
}

#endif  // __linux__

}  // namespace ladder
