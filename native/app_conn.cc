// Ladder native addon: an application connection the client's SOCKS5 front handed to JS, read
// and written by descriptor (Linux), so a tunnel that JS carries (a Mux.Cool session over a
// WebSocket, say) needs no net.Socket on the application's side
// (src/client/native-app-socket.ts makes a Duplex of it). Reads and queued writes are watched in
// the thread's epoll set (thread_poll.h): a connection costs an epoll_ctl ADD when it is first
// read and a DEL when it stops, where a net.Socket made from the descriptor costs about a dozen syscalls before its
// first byte (fstat, getsockname, getsockopt, setsockopt, three ioctl, five to seven epoll_ctl).
//
//   appConnInit(onEvent)           this thread's event callback (once; a second call replaces it)
//       onEvent(id, chunk, code): code 0 with a Buffer (bytes read), 1 the peer's FIN (no more
//       reads), 2 everything queued by appConnWrite went out ('drain'), < 0 an errno (a read or
//       queued write failed; nothing more is read or written: JS closes). JS may close the
//       connection inside the call.
//   appConnOpen(fd) -> id          the connected socket is now this file's (closed by
//                                  appConnClose, or when the thread's env goes away); not read
//                                  until appConnRead(id, true)
//   appConnRead(id, on)            poll for reads (level-triggered, one read per wake-up) or stop
//   appConnWrite(id, bytes) -> n   0: all written now; > 0: that many bytes queued here (a 'drain'
//                                  event follows once they are out); < 0: -errno, nothing queued
//   appConnEnd(id)                 shutdown(SHUT_WR) once the queued bytes are out
//   appConnClose(id)               stops polling and closes the socket; no event after it
//   appConnLive() -> n             connections open on this thread (tests: nothing leaks)
// A stale id (closed) is ignored by every call (appConnWrite returns -EBADF).
#include <cerrno>
#include <cstdlib>
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
#include "thread_poll.h"

namespace ladder {

#if defined(__linux__)

namespace {

constexpr size_t kReadSize = 64 * 1024;
// An id is the low 53 bits of the connection's watch token (generation * 2^32 + slot), exact as a
// JS number: a stale id names nothing unless its slot was reused by the 2^21st watch after it.
constexpr uint32_t kIdGenBits = 21;
constexpr uint64_t kIdMask = (uint64_t{1} << (32 + kIdGenBits)) - 1;
constexpr int32_t kDrained = 2;

struct Conn {
  PollWatch watch;  // in the thread's set from appConnOpen to appConnClose; events: the interest
  Conn* prev = nullptr;  // the thread's open connections (closed with its env)
  Conn* next = nullptr;
  bool reading = false;
  bool read_ended = false;  // FIN or an error: no more reads
  bool end_pending = false;  // shutdown once `pending` is out
  bool failed = false;  // a queued write failed: reported, nothing more is tried
  std::vector<uint8_t> pending;
  size_t pending_off = 0;
};

struct Thread {
  napi_env env = nullptr;
  uint8_t* scratch = nullptr;
  napi_async_context actx = nullptr;
  napi_ref on_event = nullptr;
  Conn* conns = nullptr;
  uint32_t live = 0;
};

thread_local Thread* t_thread = nullptr;

void OnConnEvents(void* target, uint32_t events);

double IdOf(const Conn* c) { return static_cast<double>(c->watch.token & kIdMask); }

Conn* Lookup(int64_t id) {
  if (id < 0) return nullptr;
  const uint64_t u = static_cast<uint64_t>(id);
  if ((u & ~kIdMask) != 0) return nullptr;
  return static_cast<Conn*>(
      PollTarget(static_cast<uint32_t>(u), static_cast<uint32_t>(u >> 32), kIdGenBits, OnConnEvents));
}

// Registers what c waits for now: reads while reading, writability while bytes are queued.
void UpdateInterest(Conn* c) {
  uint32_t want = 0;
  if (c->reading && !c->read_ended) want |= EPOLLIN;
  if (c->pending.size() > c->pending_off && !c->failed) want |= EPOLLOUT;
  PollSet(&c->watch, want);  // a failure leaves the interest as it was
}

void Retire(Thread* t, Conn* c) {
  const int fd = c->watch.fd;
  PollEnd(&c->watch);  // out of the epoll set before the fd is closed; no event after it
  close(fd);
  if (c->prev != nullptr) c->prev->next = c->next;
  else t->conns = c->next;
  if (c->next != nullptr) c->next->prev = c->prev;
  t->live--;
  delete c;
}

// onEvent(id, chunk, code) through napi_make_callback; c may be gone when this returns.
void Emit(Thread* t, Conn* c, const uint8_t* data, size_t n, int32_t code) {
  napi_env env = t->env;
  napi_handle_scope scope;
  if (t->on_event == nullptr || napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value argv[3], cb, recv, result;
  argv[0] = Double(env, IdOf(c));
  napi_get_undefined(env, &argv[1]);
  if (n > 0) {
    void* copy = nullptr;
    if (napi_create_buffer_copy(env, n, data, &copy, &argv[1]) != napi_ok) {
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

// Sends what is queued; 0 all out (or still waiting: EAGAIN), < 0 an errno.
int Flush(Conn* c) {
  while (c->pending_off < c->pending.size()) {
    const ssize_t w = send(c->watch.fd, c->pending.data() + c->pending_off, c->pending.size() - c->pending_off,
                           MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    }
    c->pending_off += static_cast<size_t>(w);
  }
  return 0;
}

// One connection the thread's epoll set reported (thread_poll.cc drops events of ended watches).
void OnConnEvents(void* target, uint32_t events) {
  Thread* t = t_thread;
  Conn* c = static_cast<Conn*>(target);
  if (t == nullptr) return;
  const int64_t id = static_cast<int64_t>(IdOf(c));
  if ((c->watch.events & EPOLLOUT) != 0 && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) {
    const int err = Flush(c);
    if (err < 0) {
      c->failed = true;
      c->reading = false;
      UpdateInterest(c);
      Emit(t, c, nullptr, 0, err);
      return;
    }
    if (c->pending_off == c->pending.size()) {
      c->pending.clear();
      c->pending_off = 0;
      if (c->end_pending) shutdown(c->watch.fd, SHUT_WR);
      c->end_pending = false;
      UpdateInterest(c);
      Emit(t, c, nullptr, 0, kDrained);
      if (Lookup(id) != c) return;  // JS closed it
    }
  }
  if ((c->watch.events & EPOLLIN) == 0 || (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) == 0) return;
  ssize_t n;
  do n = recv(c->watch.fd, t->scratch, kReadSize, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (n <= 0) {
    const int32_t code = n == 0 ? 1 : -errno;
    c->read_ended = true;
    UpdateInterest(c);
    Emit(t, c, nullptr, 0, code);
    return;
  }
  Emit(t, c, t->scratch, static_cast<size_t>(n), 0);
}

// The env is going away (worker or process exit): close every connection, no JS calls. Runs
// before the thread poll's own hook (registered after it).
void Cleanup(void* arg) {
  Thread* t = static_cast<Thread*>(arg);
  while (t->conns != nullptr) Retire(t, t->conns);
  if (t->on_event != nullptr) napi_delete_reference(t->env, t->on_event);
  if (t->actx != nullptr) napi_async_destroy(t->env, t->actx);
  free(t->scratch);
  if (t_thread == t) t_thread = nullptr;
  delete t;
}

Thread* ThreadFor(napi_env env) {
  if (t_thread != nullptr) return t_thread->env == env ? t_thread : nullptr;
  // The set's cleanup hook before ours, so that ours (which ends the watches) runs first.
  Thread* t = PollReady(env) ? new (std::nothrow) Thread() : nullptr;
  napi_value name;
  if (t == nullptr || (t->scratch = static_cast<uint8_t*>(malloc(kReadSize))) == nullptr ||
      napi_create_string_utf8(env, "ladder:app", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, nullptr, name, &t->actx) != napi_ok ||
      napi_add_env_cleanup_hook(env, Cleanup, t) != napi_ok) {
    if (t != nullptr) {
      if (t->actx != nullptr) napi_async_destroy(env, t->actx);
      free(t->scratch);
    }
    delete t;
    return nullptr;
  }
  t->env = env;
  t_thread = t;
  return t;
}

// The connection named by argument 0, or nullptr (stale ids included; a non-id throws).
Conn* ConnArg(const Args& a, const char* usage, bool* ok) {
  int64_t id = -1;
  *ok = a.Need(1) && a.Index(0, &id);
  if (!*ok) {
    Throw(a.env(), usage);
    return nullptr;
  }
  Thread* t = t_thread;
  return t != nullptr && t->env == a.env() ? Lookup(id) : nullptr;
}

}  // namespace

napi_value AppConnInit(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.Need(1) || !a.Function(0)) {
    Throw(env, "appConnInit(onEvent)");
    return nullptr;
  }
  Thread* t = ThreadFor(env);
  napi_ref ref = nullptr;
  if (t == nullptr || napi_create_reference(env, a[0], 1, &ref) != napi_ok) {
    napi_throw_error(env, "ERR_LADDER_APP", "appConnInit: not available on this thread");
    return nullptr;
  }
  if (t->on_event != nullptr) napi_delete_reference(env, t->on_event);
  t->on_event = ref;
  return nullptr;
}

napi_value AppConnOpen(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int32_t fd = -1;
  if (!a.Need(1) || !a.Int32(0, &fd) || fd < 0) {
    Throw(env, "appConnOpen(fd >= 0)");
    return nullptr;
  }
  Thread* t = t_thread;
  Conn* c = t == nullptr || t->env != env || t->on_event == nullptr ? nullptr : new (std::nothrow) Conn();
  // Known to the epoll set (no system call: appConnRead or a queued write puts it in).
  if (c == nullptr || !PollStart(env, &c->watch, fd, 0, OnConnEvents, c)) {
    delete c;
    napi_throw_error(env, "ERR_LADDER_APP", "appConnOpen: not available (appConnInit first)");
    return nullptr;
  }
  c->next = t->conns;
  if (t->conns != nullptr) t->conns->prev = c;
  t->conns = c;
  t->live++;
  return Double(env, IdOf(c));
}

napi_value AppConnRead(napi_env env, napi_callback_info info) {
  Args a(env, info);
  bool ok = false, on = false;
  Conn* c = ConnArg(a, "appConnRead(id, on)", &ok);
  if (!ok) return nullptr;
  if (!a.Boolean(1, &on)) {
    Throw(env, "appConnRead(id, on)");
    return nullptr;
  }
  if (c == nullptr || c->reading == on) return nullptr;
  c->reading = on;
  UpdateInterest(c);
  return nullptr;
}

napi_value AppConnWrite(napi_env env, napi_callback_info info) {
  Args a(env, info);
  bool ok = false;
  Conn* c = ConnArg(a, "appConnWrite(id, bytes)", &ok);
  if (!ok) return nullptr;
  const uint8_t* p = nullptr;
  size_t n = 0;
  if (!a.Bytes(1, &p, &n, "appConnWrite(id, bytes)")) return nullptr;
  if (c == nullptr || c->failed) return Number(env, -EBADF);
  size_t sent = 0;
  if (c->pending.size() == c->pending_off) {
    while (sent < n) {
      const ssize_t w = send(c->watch.fd, p + sent, n - sent, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return Number(env, -errno);
      }
      sent += static_cast<size_t>(w);
    }
    if (sent == n) return Number(env, 0);
    c->pending.clear();
    c->pending_off = 0;
  }
  c->pending.insert(c->pending.end(), p + sent, p + n);
  UpdateInterest(c);
  return Double(env, static_cast<double>(c->pending.size() - c->pending_off));
}

napi_value AppConnEnd(napi_env env, napi_callback_info info) {
  Args a(env, info);
  bool ok = false;
  Conn* c = ConnArg(a, "appConnEnd(id)", &ok);
  if (c == nullptr) return nullptr;
  if (c->pending.size() > c->pending_off) c->end_pending = true;
  else shutdown(c->watch.fd, SHUT_WR);
  return nullptr;
}

napi_value AppConnClose(napi_env env, napi_callback_info info) {
  Args a(env, info);
  bool ok = false;
  Conn* c = ConnArg(a, "appConnClose(id)", &ok);
  if (c != nullptr) Retire(t_thread, c);
  return nullptr;
}

napi_value AppConnLive(napi_env env, napi_callback_info /*info*/) {
  const Thread* t = t_thread;
  return Number(env, t == nullptr || t->env != env ? 0 : static_cast<int32_t>(t->live));
}

#endif  // __linux__

}  // namespace ladder
