// Ladder native addon: the client's SOCKS5 front (Linux). Accepts application connections on a
// listening socket and runs the no-authentication SOCKS5 handshake in C++, so that a CONNECT
// reaches JS as one call with everything it needs and no net.Socket is made for it
// (src/client/native-socks.ts). Anything else goes to JS unchanged, with the bytes read so far:
// JS answers it exactly as src/client/socks5-inbound.ts does.
//
//   socks5Front(listenFd, firstWaitMs, handshakeMs, onConn, lean?, handoff?, joined?) -> front
//       listenFd: a listening TCP socket (anything else throws); dup()ed here (the caller then
//       closes its own).
//       Each wake-up accepts at most 64 connections (lean: one, as ss-local does; the listener
//       is polled level-triggered, so the next is accepted at the next loop turn, and the
//       accept4 that would find none is not made); when the process is out of descriptors
//       (EMFILE, ENFILE, ENOBUFS, ENOMEM) accepting pauses for 100 ms instead of spinning.
//       onConn(fd, kind, addr, data, ended) is called once per connection, from the loop; fd is
//       a connected non-blocking socket (TCP_NODELAY), now the caller's to close:
//         kind 0: nothing answered, data = every byte read (a greeting that is not SOCKS5, offers
//                 no method 0, or an EOF before the greeting ended)
//         kind 1: the method selection [5, 0] was sent; data = the bytes read after the greeting
//                 (a request that is not a well-formed CONNECT: BIND, UDP ASSOCIATE, a bad
//                 version, reserved byte or address type, an empty domain, or an EOF)
//         kind 2: CONNECT answered SUCCEEDED (5 0 0 1 0.0.0.0:0, as socks5-inbound.ts); addr =
//                 the request's ATYP..PORT bytes; data = the application's first bytes (pipelined
//                 after the request, else the first read within firstWaitMs, as tunnel.ts's
//                 waitFirstData) or undefined; ended = it sent FIN instead
//       handoff: a kind 2 call with data keeps the connection's socket in the thread's epoll set
//       during the call (thread_poll.h PollPark), for a relay started inside it to take as it is
//       (client_tunnel.cc atOnce): no epoll_ctl DEL + ADD; otherwise it leaves the set when the
//       call returns instead of before.
//       joined: onConn(fd, kind, bytes, addrLength, ended) instead, bytes = addr || data in one
//       Buffer (undefined when both are empty) and addrLength = addr's length (0 for kinds 0
//       and 1): one Buffer per connection instead of two (each a backing store V8 frees later).
//       A connection that errors, or does not finish the handshake within handshakeMs, is closed
//       (no call), as socks5-inbound.ts destroys it.
//   socks5FrontClose(front)      stops accepting and closes the listening socket and every
//                                connection still in its handshake; no call for them. Idempotent.
//   socks5FrontLive(front) -> n  connections in their handshake (tests: nothing leaks)
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#if defined(__linux__)
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#endif

#include "client_bare.h"
#include "common.h"
#include "exports.h"
#include "napi_args.h"
#include "thread_poll.h"

namespace ladder {

#if defined(__linux__)

namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr int kAcceptBurst = 64;
constexpr uint64_t kBackoffMs = 100;
constexpr uint8_t kSucceeded[10] = {5, 0, 0, 1, 0, 0, 0, 0, 0, 0};
constexpr uint8_t kNoAuth[2] = {5, 0};

const napi_type_tag kFrontTag = {0x6c61646465725346ULL, 0x524f4e5453350001ULL};

enum Kind : int32_t { kRaw = 0, kGreeted = 1, kConnect = 2 };
enum Stage { kGreeting, kRequest, kFirst };

struct Front;

struct Conn {
  Front* front = nullptr;
  int fd = -1;  // -1 once dropped
  PollWatch watch;  // EPOLLIN in the thread's epoll set (thread_poll.h) until dropped
  uv_timer_t timer;
  Stage stage = kGreeting;
  std::vector<uint8_t> buf;  // handshake bytes not consumed yet
  std::vector<uint8_t> addr;  // ATYP..PORT of a CONNECT
  size_t index = 0;
  int open = 0;  // handles not yet closed
};

struct Front {
  napi_env env = nullptr;
  uv_loop_t* uv = nullptr;
  napi_ref callback = nullptr;
  napi_async_context actx = nullptr;
  uv_poll_t poll;
  uv_timer_t backoff;
  // The connections' reads are watched in the thread's epoll set (thread_poll.h), with the TCP
  // path's and the application connections': a connection costs one epoll_ctl ADD and one DEL,
  // where a uv_poll of its own cost six and an ioctl.
  int fd = -1;
  uint64_t first_wait = 0;
  uint64_t handshake = 0;
  bool lean = false;  // one accept per wake-up
  bool handoff = false;  // park a CONNECT's watch during its call (PollPark)
  bool joined = false;  // onConn(fd, kind, addr || data, addrLength, ended)
  void* bare = nullptr;  // client_bare.cc's set (socks5FrontBare): CONNECTs with data start there
  napi_ref bare_ref = nullptr;
  std::vector<Conn*> conns;
  uint8_t* scratch = nullptr;
  int open = 0;  // handles not yet closed
  int calling = 0;  // onConn calls running (JS may close the front inside one)
  bool closed = false;
  bool finalized = false;
  bool hooked = false;
};

void MaybeFreeFront(Front* f) {
  if (f->open == 0 && f->closed && f->finalized) {
    free(f->scratch);
    delete f;
  }
}

void OnFrontHandleClosed(uv_handle_t* h) {
  Front* f = static_cast<Front*>(h->data);
  f->open--;
  MaybeFreeFront(f);
}

void OnConnHandleClosed(uv_handle_t* h) {
  Conn* c = static_cast<Conn*>(h->data);
  if (--c->open == 0) delete c;
}

// Takes c out of its front's list and closes its handles; the fd is closed unless `keep`.
// park: the fd stays in the epoll set, parked (thread_poll.h), for the JS call about to be made.
void Drop(Conn* c, bool keep, bool park = false) {
  Front* f = c->front;
  Conn* last = f->conns.back();
  f->conns[c->index] = last;
  last->index = c->index;
  f->conns.pop_back();
  // Out of the set before the fd changes hands (or parked: no event for c after it either).
  if (park) PollPark(&c->watch);
  else PollEnd(&c->watch);
  uv_timer_stop(&c->timer);
  // c is freed once its timer is closed, after this loop turn.
  uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), OnConnHandleClosed);
  if (!keep) close(c->fd);
  c->fd = -1;
}

void Cleanup(void* arg);

// Drops the callback and the async context, unless an onConn call still uses them (then the
// call does it when it returns).
void ReleaseJs(Front* f) {
  if (f->calling > 0) return;
  if (f->callback != nullptr) napi_delete_reference(f->env, f->callback);
  f->callback = nullptr;
  if (f->actx != nullptr) napi_async_destroy(f->env, f->actx);
  f->actx = nullptr;
  if (f->bare_ref != nullptr) napi_delete_reference(f->env, f->bare_ref);
  f->bare_ref = nullptr;
  f->bare = nullptr;
}

// Stops accepting, closes every connection in its handshake. No JS call.
void CloseFront(Front* f) {
  if (f->closed) return;
  f->closed = true;
  while (!f->conns.empty()) Drop(f->conns.back(), false);
  uv_poll_stop(&f->poll);
  uv_timer_stop(&f->backoff);
  uv_close(reinterpret_cast<uv_handle_t*>(&f->poll), OnFrontHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&f->backoff), OnFrontHandleClosed);
  close(f->fd);
  f->fd = -1;
  ReleaseJs(f);
  if (f->hooked) napi_remove_env_cleanup_hook(f->env, Cleanup, f);
  f->hooked = false;
}

void Cleanup(void* arg) {
  Front* f = static_cast<Front*>(arg);
  f->hooked = false;  // running now: not removed again
  CloseFront(f);
}

napi_value BytesOrUndefined(napi_env env, const uint8_t* p, size_t n) {
  napi_value v;
  if (n == 0) {
    napi_get_undefined(env, &v);
    return v;
  }
  void* data = nullptr;
  if (napi_create_buffer_copy(env, n, p, &data, &v) != napi_ok) napi_get_undefined(env, &v);
  return v;
}

// addr || data as one Buffer, or undefined when both are empty (the front's joined layout).
napi_value JoinedOrUndefined(napi_env env, const std::vector<uint8_t>& addr, const uint8_t* p, size_t n) {
  napi_value v;
  void* out = nullptr;
  if (addr.size() + n == 0 || napi_create_buffer(env, addr.size() + n, &out, &v) != napi_ok) {
    napi_get_undefined(env, &v);
    return v;
  }
  if (!addr.empty()) memcpy(out, addr.data(), addr.size());
  if (n > 0) memcpy(static_cast<uint8_t*>(out) + addr.size(), p, n);
  return v;
}

// Hands c to JS: onConn(fd, kind, addr, data, ended), or with joined onConn(fd, kind,
// addr || data, addrLength, ended). c is gone when this returns.
void Deliver(Conn* c, Kind kind, const uint8_t* data, size_t n, bool ended) {
  Front* f = c->front;
  const int fd = c->fd;
  std::vector<uint8_t> addr;
  addr.swap(c->addr);
  const bool park = f->handoff && kind == kConnect && n > 0 && !ended;
  Drop(c, true, park);
  // The bare tunnel (client_bare.cc): sealed, connected and relayed with no JS call.
  if (f->bare != nullptr && kind == kConnect && n > 0 && !ended &&
      BareTake(f->bare, fd, addr.data(), addr.size(), data, n, park)) {
    return;
  }
  napi_env env = f->env;
  napi_handle_scope scope;
  if (f->callback == nullptr || napi_open_handle_scope(env, &scope) != napi_ok) {
    if (park) PollUnpark();
    close(fd);
    return;
  }
  napi_value cb, recv, result;
  bool called = false;
  if (napi_get_reference_value(env, f->callback, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok) {
    napi_value argv[5];
    argv[0] = Number(env, fd);
    argv[1] = Number(env, kind);
    if (f->joined) {
      argv[2] = JoinedOrUndefined(env, addr, data, n);
      argv[3] = Number(env, static_cast<int32_t>(addr.size()));
    } else {
      argv[2] = BytesOrUndefined(env, addr.data(), addr.size());
      argv[3] = BytesOrUndefined(env, data, n);
    }
    argv[4] = Bool(env, ended);
    called = true;
    f->calling++;
    napi_make_callback(env, f->actx, recv, cb, 5, argv, &result);
    if (park) PollUnpark();  // not taken by a relay: out of the set, as Drop would have done
    f->calling--;
    if (f->closed) ReleaseJs(f);  // closed by that call
    RaisePendingException(env);
  }
  if (!called) {
    if (park) PollUnpark();
    close(fd);
  }
  napi_close_handle_scope(env, scope);
}

bool SendAll(int fd, const uint8_t* p, size_t n) {
  size_t sent = 0;
  while (sent < n) {
    const ssize_t w = send(fd, p + sent, n - sent, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    // A fresh socket's send buffer takes a dozen bytes: anything short of that is an error.
    if (w <= 0) return false;
    sent += static_cast<size_t>(w);
  }
  return true;
}

// Bytes of the address at b[0..n) (ATYP..PORT): 0 when incomplete, -1 when JS must answer it.
ssize_t AddressLength(const uint8_t* b, size_t n) {
  if (n < 1) return 0;
  switch (b[0]) {
    case 1:
      return n >= 7 ? 7 : 0;
    case 4:
      return n >= 19 ? 19 : 0;
    case 3:
      if (n < 2) return 0;
      if (b[1] == 0) return -1;  // empty name: JS answers ADDRESS_TYPE_NOT_SUPPORTED
      return n >= 4 + static_cast<size_t>(b[1]) ? 4 + b[1] : 0;
    default:
      return -1;
  }
}

// Advances c's handshake over its buffered bytes; false when c was handed over or closed.
bool Step(Conn* c, bool eof) {
  std::vector<uint8_t>& b = c->buf;
  if (c->stage == kGreeting) {
    if (b.size() >= 1 && b[0] != 5) return Deliver(c, kRaw, b.data(), b.size(), false), false;
    if (b.size() >= 2 && b[1] == 0) return Deliver(c, kRaw, b.data(), b.size(), false), false;
    if (b.size() < 2 || b.size() < 2 + static_cast<size_t>(b[1])) {
      if (eof) return Deliver(c, kRaw, b.data(), b.size(), false), false;
      return true;
    }
    const size_t len = 2 + b[1];
    if (memchr(b.data() + 2, 0, b[1]) == nullptr) return Deliver(c, kRaw, b.data(), b.size(), false), false;
    if (!SendAll(c->fd, kNoAuth, sizeof kNoAuth)) return Drop(c, false), false;
    b.erase(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(len));
    c->stage = kRequest;
  }
  if (c->stage == kRequest) {
    // VER CMD RSV ATYP ADDR PORT
    if ((b.size() >= 1 && b[0] != 5) || (b.size() >= 2 && b[1] != 1) || (b.size() >= 3 && b[2] != 0)) {
      return Deliver(c, kGreeted, b.data(), b.size(), false), false;
    }
    const ssize_t alen = b.size() < 4 ? 0 : AddressLength(b.data() + 3, b.size() - 3);
    if (alen < 0) return Deliver(c, kGreeted, b.data(), b.size(), false), false;
    if (alen == 0) {
      if (eof) return Deliver(c, kGreeted, b.data(), b.size(), false), false;
      return true;
    }
    if (!SendAll(c->fd, kSucceeded, sizeof kSucceeded)) return Drop(c, false), false;
    c->addr.assign(b.begin() + 3, b.begin() + 3 + alen);
    b.erase(b.begin(), b.begin() + 3 + alen);
    if (!b.empty()) return Deliver(c, kConnect, b.data(), b.size(), false), false;  // pipelined
    if (eof) return Deliver(c, kConnect, nullptr, 0, true), false;
    c->stage = kFirst;
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, [](uv_timer_t* t) {
      Conn* cc = static_cast<Conn*>(t->data);
      Deliver(cc, kConnect, nullptr, 0, false);  // nothing within the wait: the peer speaks first
    }, c->front->first_wait, 0);
  }
  return true;
}

// Reads what c has (until EAGAIN) and steps its handshake.
void ReadConn(Conn* c) {
  uint8_t* scratch = c->front->scratch;
  for (int rounds = 0; rounds < 16; rounds++) {
    ssize_t n;
    do n = recv(c->fd, scratch, kReadSize, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) Drop(c, false);
      return;
    }
    if (c->stage == kFirst) {
      Deliver(c, kConnect, scratch, static_cast<size_t>(n), n == 0);
      return;
    }
    if (n == 0) {
      Step(c, true);
      return;
    }
    if (c->buf.size() + static_cast<size_t>(n) > 2 * kReadSize) {  // cannot happen in a handshake
      Drop(c, false);
      return;
    }
    c->buf.insert(c->buf.end(), scratch, scratch + n);
    if (!Step(c, false)) return;
    if (c->stage == kFirst) return;  // the first data is read once the poll says so
    // Not stopping after a short read: the application often answers our reply before this
    // recv (loopback, another core), and finding its request here saves a wake-up (two epoll
    // calls) where stopping would save one recv that returns EAGAIN (strace: more calls).
  }
}

// c's socket is readable, or in error, or hung up (recv's result tells which).
void OnConnEvent(void* target, uint32_t /*events*/) {
  Conn* c = static_cast<Conn*>(target);
  if (c->fd >= 0 && !c->front->closed) ReadConn(c);
}

void OnListen(uv_poll_t* h, int status, int events);

void OnBackoff(uv_timer_t* t) {
  Front* f = static_cast<Front*>(t->data);
  if (!f->closed) uv_poll_start(&f->poll, UV_READABLE, OnListen);
}

void Accept(Front* f) {
  for (int i = 0; i < kAcceptBurst && !f->closed; i++) {
    const int fd = accept4(f->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        uv_poll_stop(&f->poll);  // the listener stays readable: wait instead of spinning
        uv_timer_start(&f->backoff, OnBackoff, kBackoffMs, 0);
      }
      return;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Conn* c = new (std::nothrow) Conn();
    if (c == nullptr || !PollStart(f->env, &c->watch, fd, EPOLLIN, OnConnEvent, c)) {
      delete c;
      close(fd);
      continue;
    }
    uv_timer_init(f->uv, &c->timer);
    c->front = f;
    c->fd = fd;
    c->timer.data = c;
    c->open = 1;
    c->index = f->conns.size();
    f->conns.push_back(c);
    uv_timer_start(&c->timer, [](uv_timer_t* t) { Drop(static_cast<Conn*>(t->data), false); }, f->handshake, 0);
    ReadConn(c);  // the greeting is usually there already
    if (f->lean) return;  // level-triggered: the listener wakes us again if another is queued
  }
}

void OnListen(uv_poll_t* h, int status, int /*events*/) {
  Front* f = static_cast<Front*>(h->data);
  if (f->closed || status < 0) return;
  Accept(f);
}

void Finalize(napi_env /*env*/, void* data, void* /*hint*/) {
  Front* f = static_cast<Front*>(data);
  f->finalized = true;
  MaybeFreeFront(f);
}

}  // namespace

napi_value Socks5Front(napi_env env, napi_callback_info info) {
  const char* usage = "socks5Front(listenFd, firstWaitMs >= 1, handshakeMs >= 1, onConn, lean?, handoff?, joined?)";
  Args a(env, info);
  int32_t lfd = -1;
  int64_t wait = 0, hs = 0;
  bool lean = false, handoff = false, joined = false;
  if (!a.Need(4, usage) || !a.Int32(0, &lfd) || lfd < 0 || !a.Index(1, &wait) || wait < 1 || !a.Index(2, &hs) ||
      hs < 1 || !a.Function(3) || (!a.Undefined(4) && !a.Boolean(4, &lean)) ||
      (!a.Undefined(5) && !a.Boolean(5, &handoff)) || (!a.Undefined(6) && !a.Boolean(6, &joined))) {
    Throw(env, usage);
    return nullptr;
  }
  PinLibrary();  // the handles' close callbacks may run after the env that loaded us is gone
  // The thread's epoll set, and its cleanup hook before ours (so that ours, which ends the
  // connections' watches, runs first).
  Front* f = PollReady(env) ? new (std::nothrow) Front() : nullptr;
  napi_value name, ext;
  if (f == nullptr || napi_get_uv_event_loop(env, &f->uv) != napi_ok || f->uv == nullptr ||
      (f->scratch = static_cast<uint8_t*>(malloc(kReadSize))) == nullptr) {
    if (f != nullptr) free(f->scratch);
    delete f;
    napi_throw_error(env, "ERR_LADDER_SOCKS", "cannot start the SOCKS5 front");
    return nullptr;
  }
  f->env = env;
  f->first_wait = static_cast<uint64_t>(wait);
  f->handshake = static_cast<uint64_t>(hs);
  f->lean = lean;
  f->handoff = handoff;
  f->joined = joined;
  f->fd = fcntl(lfd, F_DUPFD_CLOEXEC, 0);
  // Anything but a listening socket would keep the poll firing with accept4 failing (EINVAL).
  int listening = 0;
  socklen_t optlen = sizeof listening;
  const bool is_listener = f->fd >= 0 && getsockopt(f->fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) == 0 &&
                           listening != 0;
  if (!is_listener || fcntl(f->fd, F_SETFL, fcntl(f->fd, F_GETFL) | O_NONBLOCK) != 0 ||
      uv_poll_init_socket(f->uv, &f->poll, f->fd) != 0) {
    if (f->fd >= 0) close(f->fd);
    free(f->scratch);
    delete f;
    napi_throw_error(env, "ERR_LADDER_SOCKS",
                     is_listener ? "socks5Front: cannot poll the listening socket"
                                 : "socks5Front: listenFd is not a listening socket");
    return nullptr;
  }
  uv_timer_init(f->uv, &f->backoff);
  f->poll.data = f;
  f->backoff.data = f;
  f->open = 2;
  // From here CloseFront releases everything; the finalizer frees f once both are done.
  if (napi_create_reference(env, a[3], 1, &f->callback) != napi_ok ||
      napi_create_string_utf8(env, "ladder:socks5", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, nullptr, name, &f->actx) != napi_ok ||
      napi_create_external(env, f, Finalize, nullptr, &ext) != napi_ok) {
    CloseFront(f);
    f->finalized = true;
    napi_throw_error(env, "ERR_LADDER_SOCKS", "cannot start the SOCKS5 front");
    return nullptr;
  }
  napi_type_tag_object(env, ext, &kFrontTag);
  if (napi_add_env_cleanup_hook(env, Cleanup, f) == napi_ok) f->hooked = true;
  uv_poll_start(&f->poll, UV_READABLE, OnListen);
  return ext;
}

napi_value Socks5FrontClose(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* p = nullptr;
  if (!a.Need(1) || !a.Tagged(0, kFrontTag, &p, "socks5FrontClose(front)")) return nullptr;
  CloseFront(static_cast<Front*>(p));
  return nullptr;
}

napi_value Socks5FrontBare(napi_env env, napi_callback_info info) {
  const char* usage = "socks5FrontBare(front, set)";
  Args a(env, info);
  void* p = nullptr;
  if (!a.Need(2, usage) || !a.Tagged(0, kFrontTag, &p, usage)) return nullptr;
  Front* f = static_cast<Front*>(p);
  void* set = BareSetOf(env, a[1]);
  if (set == nullptr) {
    Throw(env, usage);
    return nullptr;
  }
  if (f->closed || f->bare != nullptr) return Bool(env, false);
  if (napi_create_reference(env, a[1], 1, &f->bare_ref) != napi_ok) return Bool(env, false);
  f->bare = set;
  return Bool(env, true);
}

napi_value Socks5FrontLive(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* p = nullptr;
  if (!a.Need(1) || !a.Tagged(0, kFrontTag, &p, "socks5FrontLive(front)")) return nullptr;
  return Number(env, static_cast<int32_t>(static_cast<Front*>(p)->conns.size()));
}

#endif  // __linux__

}  // namespace ladder
