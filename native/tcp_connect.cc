// Ladder native addon: a non-blocking TCP connect to an address JS chose (Linux), for the
// server's native relay: the destination socket of a relayed connection never becomes a
// net.Socket. Resolution, the private-address policy and the time budget stay in JS.
//   tcpConnect(ip, port, onDone) -> connect
//       ip: an IPv4 or IPv6 literal. onDone(fd, errno) is called once, from the loop: fd >= 0
//       (a connected, non-blocking socket with TCP_NODELAY, now the caller's to close) and errno
//       0, or fd -1 and a negative errno (as libuv reports them; util.getSystemErrorName names it).
//   tcpConnectCancel(connect)   closes the socket; onDone is not called. Idempotent.
#include <cerrno>
#include <cstring>
#include <new>

#if defined(__linux__)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#endif

#include "exports.h"
#include "napi_args.h"
#include "tcp_parts.h"
#include "thread_poll.h"

namespace ladder {

#if defined(__linux__)

namespace {

const napi_type_tag kConnectTag = {0x6c61646465724354ULL, 0x434f4e4e45430001ULL};

struct Connect {
  napi_env env = nullptr;
  napi_ref callback = nullptr;
  PollWatch watch;  // in the thread's epoll set (thread_poll.h) while running
  int fd = -1;
  bool running = false;
  bool calling = false;  // inside onDone: freed after it returns
  bool finalized = false;
  bool hooked = false;  // the env cleanup hook is registered
};

void Cleanup(void* arg);

void MaybeFree(Connect* c) {
  if (!c->calling && c->finalized && !c->running) delete c;
}

void Finalize(napi_env /*env*/, void* data, void* /*hint*/) {
  Connect* c = static_cast<Connect*>(data);
  c->finalized = true;
  MaybeFree(c);
}

// Stops polling and forgets the callback; the fd is closed unless `keep`. True if it was running.
bool Stop(Connect* c, bool keep) {
  if (!c->running) return false;
  c->running = false;
  if (c->hooked) napi_remove_env_cleanup_hook(c->env, Cleanup, c);
  c->hooked = false;
  PollEnd(&c->watch);  // out of the set before the fd is closed or handed on
  if (!keep && c->fd >= 0) close(c->fd);
  c->fd = -1;
  return true;
}

// The env is going away (worker exit) with the connect pending: close it, no callback.
void Cleanup(void* arg) {
  Connect* c = static_cast<Connect*>(arg);
  c->hooked = false;  // running now: not removed again
  if (Stop(c, false) && c->callback != nullptr) napi_delete_reference(c->env, c->callback);
  c->callback = nullptr;
}

void OnWritable(void* target, uint32_t /*events*/) {
  Connect* c = static_cast<Connect*>(target);
  if (!c->running) return;
  int err = 0;
  socklen_t len = sizeof(err);
  // EPOLLERR: the socket's own error says what happened.
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  const int fd = c->fd;
  Stop(c, err == 0);
  if (err != 0) err = -err;
  napi_env env = c->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    if (err == 0) close(fd);  // nobody can take it
    return;
  }
  napi_value cb, recv, result;
  napi_value argv[2] = {Number(env, err == 0 ? fd : -1), Number(env, err)};
  c->calling = true;
  if (napi_get_reference_value(env, c->callback, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok) {
    napi_make_callback(env, nullptr, recv, cb, 2, argv, &result);
    RaisePendingException(env);
  }
  c->calling = false;
  napi_delete_reference(env, c->callback);
  c->callback = nullptr;
  napi_close_handle_scope(env, scope);
  MaybeFree(c);
}

// The last socket TcpConnectStart made on this thread when its connect may have completed inside
// connect(2) (its destination is this host's loopback, or connect returned 0: t_local_done), else
// -1. Only such a connect can be established when the call returns: the handshake runs inside
// it only when the SYN goes over the loopback device, so a TCP_INFO query of any other is a
// system call that always says "not yet" (1.5-2 µs here). The host's own non-loopback addresses
// also route over lo; a connect to one waits for its writable event, as before TCP_INFO.
thread_local int t_local_fd = -1;
thread_local bool t_local_done = false;

// Whether a connect to this address can complete inside connect(2): 127.0.0.0/8, ::1, either
// unspecified address (Linux connects it to the local host), IPv4-mapped 127.0.0.0/8 or 0.0.0.0.
bool LoopbackDest(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    const uint32_t a = ntohl(reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr.s_addr);
    return (a >> 24) == 127 || a == 0;
  }
  const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr;
  if (IN6_IS_ADDR_LOOPBACK(&a) || IN6_IS_ADDR_UNSPECIFIED(&a)) return true;
  if (!IN6_IS_ADDR_V4MAPPED(&a)) return false;
  const uint8_t* v4 = a.s6_addr + 12;
  return v4[0] == 127 || (v4[0] | v4[1] | v4[2] | v4[3]) == 0;
}

}  // namespace

bool Established(int fd) {
  if (fd < 0 || fd != t_local_fd) return false;  // not a local connect: it cannot be done yet
  if (t_local_done) return true;
  tcp_info info;
  socklen_t len = sizeof(info);
  memset(&info, 0, sizeof(info));
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || len < 1) return false;
  return info.tcpi_state == TCP_ESTABLISHED;
}

int TcpConnectStart(const char* ip, int32_t port, int* err) {
  sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  socklen_t sl = 0;
  auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (port < 1 || port > 65535) return -2;
  if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<uint16_t>(port));
    sl = sizeof(*s4);
  } else if (uv_ip6_addr(ip, port, s6) == 0) {
    // As Node parses an IPv6 literal (uv_ip6_addr): a zone ("fe80::1%eth0") sets the scope id
    // (an unknown interface is scope 0, as there), so a link-local server connects as with net.
    sl = sizeof(*s6);
  } else {
    return -2;
  }
  const int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int r;
  do r = connect(fd, reinterpret_cast<sockaddr*>(&ss), sl);
  while (r != 0 && errno == EINTR);
  if (r != 0 && errno != EINPROGRESS) {
    *err = errno;
    close(fd);
    return -1;
  }
  const bool local = r == 0 || LoopbackDest(ss);
  t_local_fd = local ? fd : -1;
  t_local_done = r == 0;
  return fd;
}

void ThrowConnectErrno(napi_env env, int e) {
  napi_value err, code, msg;
  napi_create_string_utf8(env, "ERR_LADDER_CONNECT", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, "connect failed", NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &err);
  napi_set_named_property(env, err, "errno", Number(env, -e));
  napi_throw(env, err);
}

int TcpConnectOrThrow(napi_env env, const char* ip, int32_t port, const char* not_literal) {
  int e = 0;
  const int fd = TcpConnectStart(ip, port, &e);
  if (fd == -2) Throw(env, not_literal);
  else if (fd < 0) ThrowConnectErrno(env, e);  // refused at once (EADDRNOTAVAIL, ENETUNREACH, EMFILE...)
  return fd < 0 ? -1 : fd;
}

napi_value TcpConnect(napi_env env, napi_callback_info info) {
  Args a(env, info);
  char ip[64];
  int32_t port = -1;
  if (!a.Need(3) || !a.String(0, ip, sizeof(ip)) || !a.Int32(1, &port) || port < 1 || port > 65535 ||
      !a.Function(2)) {
    Throw(env, "tcpConnect(ip, port 1..65535, onDone)");
    return nullptr;
  }
  Connect* c = new (std::nothrow) Connect();
  if (c == nullptr || !PollReady(env)) {
    delete c;
    napi_throw_error(env, "ERR_LADDER_CONNECT", "cannot connect");
    return nullptr;
  }
  c->env = env;
  c->fd = TcpConnectOrThrow(env, ip, port, "tcpConnect: ip must be an IPv4 or IPv6 literal");
  if (c->fd < 0) {
    delete c;
    return nullptr;
  }
  napi_value ext;
  if (napi_create_external(env, c, Finalize, nullptr, &ext) != napi_ok) {
    close(c->fd);
    delete c;
    napi_throw_error(env, "ERR_LADDER_CONNECT", "napi_create_external failed");
    return nullptr;
  }
  // From here the finalizer frees c (once it is stopped).
  c->running = true;
  if (napi_create_reference(env, a[2], 1, &c->callback) != napi_ok ||
      !PollStart(env, &c->watch, c->fd, EPOLLOUT, OnWritable, c)) {
    Stop(c, false);
    if (c->callback != nullptr) napi_delete_reference(env, c->callback);
    c->callback = nullptr;
    napi_throw_error(env, "ERR_LADDER_CONNECT", "cannot poll the socket");
    return nullptr;
  }
  if (napi_add_env_cleanup_hook(env, Cleanup, c) == napi_ok) c->hooked = true;
  napi_type_tag_object(env, ext, &kConnectTag);
  return ext;
}

napi_value TcpConnectCancel(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* p = nullptr;
  if (!a.Need(1) || !a.Tagged(0, kConnectTag, &p, "tcpConnectCancel(connect)")) return nullptr;
  Connect* c = static_cast<Connect*>(p);
  if (Stop(c, false) && c->callback != nullptr) {
    napi_delete_reference(env, c->callback);
    c->callback = nullptr;
  }
  return nullptr;
}

#endif  // __linux__

}  // namespace ladder
