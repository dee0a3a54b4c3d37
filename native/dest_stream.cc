// Ladder native addon: the server's destination connections for streams the native relay cannot
// carry (Mux.Cool sessions and other WebSocket streams, relayed in JS), so that such a session
// builds no net.Socket (Linux). JS (src/server/web/native-dest.ts) keeps every decision; this
// connects, reads, writes and closes. The sockets are watched in the thread's epoll set
// (thread_poll.h): a session costs an epoll_ctl ADD, a MOD and a DEL, where a net.Socket costs five.
//
//   destInit(onEvent)              once per thread, before destConnect. onEvent(id, chunk, code):
//       code 0: chunk, a Buffer read from the destination
//       code 1: EOF (no more reads)
//       code 2: connected (the first event of every connection that connects)
//       code 3: drained (bytes destWrite left pending are all written; a pending end is done)
//       code < 0: an errno: the connect, a read or a write failed; no event after it
//   destConnect(ip, port) -> id    a non-blocking connect (TCP_NODELAY) to an IP literal. Throws
//                                  an error with .errno (negative) when refused at once. A
//                                  connect already established when connect(2) returns (loopback
//                                  runs the whole handshake inside the call) gives -id and no
//                                  connected event: the caller writes at once, without waiting
//                                  for a wake-up of the event loop.
//   destWrite(id, bytes) -> n      sends now what the socket takes; the rest is copied and sent
//                                  when it can be: n is the bytes still pending (0: all sent), or
//                                  a negative errno (the write failed; nothing more is sent).
//   destRead(id, on)               poll for reads (on) or stop (pause)
//   destEnd(id)                    shutdown(SHUT_WR) once nothing is pending
//   destClose(id)                  closes the socket; no event after it. Idempotent.
//   destLive() -> number           connections of this thread not yet closed (tests: no leak)
// A stale id is ignored by every call. JS may close a connection inside onEvent.
#include <cerrno>
#include <cstring>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

#include "exports.h"
#include "napi_args.h"
#include "tcp_parts.h"
#include "thread_poll.h"

namespace ladder {

#if defined(__linux__)

namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr uint32_t kSlotBits = 20;  // ids: generation * 2^20 + slot
constexpr uint32_t kMaxSlots = 1u << kSlotBits;
constexpr int32_t kData = 0, kEof = 1, kConnected = 2, kDrained = 3;

struct Dest {
  int fd = -1;
  uint32_t slot = 0;
  uint32_t gen = 0;
  PollWatch watch;  // watch.events: what the epoll set has for it (0: not in it)
  bool connecting = true;
  bool reading = true;
  bool read_ended = false;
  bool failed = false;
  bool want_end = false;
  std::vector<uint8_t> pending;  // bytes destWrite could not send yet
};

struct Thread {
  napi_env env = nullptr;
  uint8_t* scratch = nullptr;
  napi_async_context actx = nullptr;
  napi_ref on_event = nullptr;
  std::vector<Dest*> slots;
  std::vector<uint32_t> free_slots;
  uint32_t live = 0;
  uint32_t next_gen = 1;
};

thread_local Thread* t_thread = nullptr;

double IdOf(const Dest* d) { return static_cast<double>(d->gen) * kMaxSlots + d->slot; }

Dest* Lookup(Thread* t, int64_t id) {
  if (t == nullptr || id < 0) return nullptr;
  const uint32_t slot = static_cast<uint32_t>(id & (kMaxSlots - 1));
  const uint64_t gen = static_cast<uint64_t>(id) >> kSlotBits;
  if (slot >= t->slots.size()) return nullptr;
  Dest* d = t->slots[slot];
  return d != nullptr && d->gen == gen ? d : nullptr;
}

// Brings the epoll set in line with what d waits for: a write while connecting or pending, a
// read while reading. Nothing to wait for: out of the set (EPOLLERR/EPOLLHUP would be reported
// even with no events asked, and a paused socket must not wake the loop).
void Update(Dest* d) {
  uint32_t want = 0;
  if (!d->failed) {
    if (d->connecting || !d->pending.empty()) want |= EPOLLOUT;
    if (!d->connecting && d->reading && !d->read_ended) want |= EPOLLIN;
  }
  PollSet(&d->watch, want);
}

void Close(Thread* t, Dest* d) {
  t->slots[d->slot] = nullptr;
  t->free_slots.push_back(d->slot);
  t->live--;
  PollEnd(&d->watch);
  close(d->fd);
  delete d;
}

// onEvent(id, chunk or undefined, code) through napi_make_callback; JS may close d meanwhile.
void Emit(Thread* t, double id, const uint8_t* data, size_t len, int32_t code) {
  napi_env env = t->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value argv[3], cb, recv, result;
  argv[0] = Double(env, id);
  napi_get_undefined(env, &argv[1]);
  if (len > 0) {
    void* out = nullptr;
    if (napi_create_buffer_copy(env, len, data, &out, &argv[1]) != napi_ok) {
      napi_get_undefined(env, &argv[1]);
      code = -ENOMEM;
    }
  }
  argv[2] = Number(env, code);
  if (napi_get_reference_value(env, t->on_event, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok) {
    napi_make_callback(env, t->actx, recv, cb, 3, argv, &result);
    RaisePendingException(env);
  }
  napi_close_handle_scope(env, scope);
}

// Sends what is pending; false when the socket failed (errno in *err).
bool Flush(Dest* d, int* err) {
  size_t off = 0;
  while (off < d->pending.size()) {
    const ssize_t n = send(d->fd, d->pending.data() + off, d->pending.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    *err = n < 0 ? errno : EPIPE;
    return false;
  }
  d->pending.erase(d->pending.begin(), d->pending.begin() + static_cast<std::ptrdiff_t>(off));
  if (d->pending.empty() && d->want_end) {
    d->want_end = false;
    shutdown(d->fd, SHUT_WR);
  }
  return true;
}

void Fail(Thread* t, Dest* d, int err) {
  d->failed = true;
  Update(d);
  Emit(t, IdOf(d), nullptr, 0, -err);
}

// The epoll set reported d's socket.
void OnEvent(void* target, uint32_t events) {
  Thread* t = t_thread;
  if (t == nullptr) return;
  Dest* d = static_cast<Dest*>(target);
  const double id = IdOf(d);
  if (d->connecting) {
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0 && (events & EPOLLERR) != 0) err = ECONNREFUSED;
    if (err != 0) return Fail(t, d, err);
    d->connecting = false;
    Update(d);
    Emit(t, id, nullptr, 0, kConnected);
    return;  // reads (if any) at the next wake-up: level-triggered
  }
  if ((events & EPOLLOUT) != 0 && !d->pending.empty()) {
    int err = 0;
    if (!Flush(d, &err)) return Fail(t, d, err);
    if (d->pending.empty()) {
      Update(d);
      Emit(t, id, nullptr, 0, kDrained);
      d = Lookup(t, static_cast<int64_t>(id));  // JS may have closed it
      if (d == nullptr) return;
    }
  }
  if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) == 0 || !d->reading || d->read_ended || d->failed) return;
  ssize_t n;
  do n = recv(d->fd, t->scratch, kReadSize, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (n < 0) return Fail(t, d, errno);
  if (n == 0) {
    d->read_ended = true;
    Update(d);
    Emit(t, id, nullptr, 0, kEof);
    return;
  }
  Emit(t, id, t->scratch, static_cast<size_t>(n), kData);
}

// The env is going away (worker exit): close every connection, no JS calls.
void Cleanup(void* arg) {
  Thread* t = static_cast<Thread*>(arg);
  for (Dest* d : t->slots) {
    if (d != nullptr) Close(t, d);
  }
  if (t->on_event != nullptr) napi_delete_reference(t->env, t->on_event);
  if (t->actx != nullptr) napi_async_destroy(t->env, t->actx);
  free(t->scratch);
  if (t_thread == t) t_thread = nullptr;
  delete t;
}

Thread* NewThread(napi_env env) {
  // The epoll set first: its cleanup hook then runs after ours, which ends our watches.
  if (!PollReady(env)) return nullptr;
  Thread* t = new (std::nothrow) Thread();
  napi_value name;
  if (t == nullptr || (t->scratch = static_cast<uint8_t*>(malloc(kReadSize))) == nullptr ||
      napi_create_string_utf8(env, "ladder:dest", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, nullptr, name, &t->actx) != napi_ok) {
    if (t != nullptr) free(t->scratch);
    delete t;
    return nullptr;
  }
  t->env = env;
  if (napi_add_env_cleanup_hook(env, Cleanup, t) != napi_ok) {
    napi_async_destroy(env, t->actx);
    free(t->scratch);
    delete t;
    return nullptr;
  }
  t_thread = t;
  return t;
}

Thread* ThreadOf(napi_env env) {
  Thread* t = t_thread;
  return t != nullptr && t->env == env && t->on_event != nullptr ? t : nullptr;
}

// The connection named by argument 0 (nullptr for a stale id; a non-id throws).
Dest* DestArg(const Args& a, const char* usage, bool* ok) {
  int64_t id = -1;
  *ok = a.Need(1) && a.Index(0, &id);
  if (!*ok) {
    Throw(a.env(), usage);
    return nullptr;
  }
  return Lookup(ThreadOf(a.env()), id);
}

// The addon's connect error (tcp_parts.h ThrowConnectErrno); nullptr to return from a napi call.
napi_value ConnectError(napi_env env, int e) {
  ThrowConnectErrno(env, e);
  return nullptr;
}

}  // namespace

napi_value DestInit(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.Need(1) || !a.Function(0)) {
    Throw(env, "destInit(onEvent)");
    return nullptr;
  }
  Thread* t = t_thread;
  if (t != nullptr && t->env != env) t = nullptr;
  if (t == nullptr && (t_thread != nullptr || (t = NewThread(env)) == nullptr)) {
    napi_throw_error(env, "ERR_LADDER_CONNECT", "destInit: not available on this thread");
    return nullptr;
  }
  if (t->on_event != nullptr) napi_delete_reference(env, t->on_event);
  t->on_event = nullptr;
  if (napi_create_reference(env, a[0], 1, &t->on_event) != napi_ok) {
    napi_throw_error(env, "ERR_LADDER_CONNECT", "destInit: cannot keep the callback");
  }
  return nullptr;
}

napi_value DestConnect(napi_env env, napi_callback_info info) {
  Args a(env, info);
  char ip[64];
  int32_t port = -1;
  if (!a.Need(2) || !a.String(0, ip, sizeof(ip)) || !a.Int32(1, &port) || port < 1 || port > 65535) {
    Throw(env, "destConnect(ip, port 1..65535)");
    return nullptr;
  }
  Thread* t = ThreadOf(env);
  if (t == nullptr) {
    Throw(env, "destConnect: destInit first");
    return nullptr;
  }
  if (t->free_slots.empty() && t->slots.size() >= kMaxSlots) return ConnectError(env, EMFILE);
  // The socket and its connect as every addon connect makes them (tcp_parts.h): an IPv6 literal
  // with a zone ("fe80::1%eth0") parsed as Node parses it, as the JS destination path does.
  const int fd = TcpConnectOrThrow(env, ip, port, "destConnect: ip must be an IPv4 or IPv6 literal");
  if (fd < 0) return nullptr;
  Dest* d = new (std::nothrow) Dest();
  if (d == nullptr) {
    close(fd);
    return ConnectError(env, ENOMEM);
  }
  uint32_t slot;
  if (!t->free_slots.empty()) {
    slot = t->free_slots.back();
    t->free_slots.pop_back();
  } else {
    slot = static_cast<uint32_t>(t->slots.size());
    t->slots.push_back(nullptr);
  }
  d->fd = fd;
  d->slot = slot;
  d->gen = t->next_gen++ & 0xFFFFFFFu;  // ids stay below 2^48 (exact as JS numbers)
  t->slots[slot] = d;
  t->live++;
  // Done at once (the handshake ran inside connect(2), as on loopback): reading from now on, and
  // -id says so. Otherwise connecting: waits for writable, then the connected event.
  d->connecting = !Established(fd);
  if (!PollStart(env, &d->watch, fd, d->connecting ? EPOLLOUT : EPOLLIN, OnEvent, d)) {
    const int e = errno;
    Close(t, d);
    return ConnectError(env, e != 0 ? e : EIO);
  }
  return Double(env, d->connecting ? IdOf(d) : -IdOf(d));
}

napi_value DestWrite(napi_env env, napi_callback_info info) {
  Args a(env, info);
  bool ok = false;
  const uint8_t* data = nullptr;
  size_t len = 0;
  Dest* d = DestArg(a, "destWrite(id, bytes)", &ok);
  if (!ok || !a.Bytes(1, &data, &len, "destWrite(id, bytes)")) return nullptr;
  if (d == nullptr || d->failed) return Number(env, -EPIPE);
  if (d->connecting || !d->pending.empty()) {
    d->pending.insert(d->pending.end(), data, data + len);
    return Double(env, static_cast<double>(d->pending.size()));
  }
  size_t off = 0;
  while (off < len) {
    const ssize_t n = send(d->fd, data + off, len - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    const int e = n < 0 ? errno : EPIPE;
    d->failed = true;
    Update(d);
    return Number(env, -e);
  }
  if (off < len) {
    d->pending.assign(data + off, data + len);
    Update(d);
  }
  return Double(env, static_cast<double>(len - off));
}

napi_value DestRead(napi_env env, napi_callback_info info) {
  Args a(env, info);
  bool ok = false, on = false;
  Dest* d = DestArg(a, "destRead(id, on)", &ok);
  if (!ok) return nullptr;
  if (!a.Boolean(1, &on)) {
    Throw(env, "destRead(id, on)");
    return nullptr;
  }
  if (d == nullptr) return nullptr;
  d->reading = on;
  Update(d);
  return nullptr;
}

napi_value DestEnd(napi_env env, napi_callback_info info) {
  Args a(env, info);
  bool ok = false;
  Dest* d = DestArg(a, "destEnd(id)", &ok);
  if (d == nullptr || d->failed) return nullptr;
  if (d->connecting || !d->pending.empty()) d->want_end = true;
  else shutdown(d->fd, SHUT_WR);
  return nullptr;
}

napi_value DestClose(napi_env env, napi_callback_info info) {
  Args a(env, info);
  bool ok = false;
  Dest* d = DestArg(a, "destClose(id)", &ok);
  if (d != nullptr) Close(ThreadOf(env), d);
  return nullptr;
}

napi_value DestLive(napi_env env, napi_callback_info /*info*/) {
  const Thread* t = t_thread;
  return Number(env, t == nullptr || t->env != env ? 0 : static_cast<int32_t>(t->live));
}

#endif  // __linux__

}  // namespace ladder
