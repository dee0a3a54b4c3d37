// Ladder native addon: listening TCP sockets several threads can share (the multi-worker server).
//   tcpListenReusePort(family 4|6, ip, port, backlog) -> fd      (Linux; throws Error, .code = errno name)
//       a non-blocking, close-on-exec TCP socket with SO_REUSEADDR and SO_REUSEPORT, bound to
//       ip:port and listening. Each data-plane worker gets its own such socket on the same port
//       and hands the fd to node (`server.listen({ fd })`), so the kernel spreads new
//       connections across the workers (by a hash of the 4-tuple) with no accept lock and no
//       thread in between. family 6 is dual-stack (IPV6_V6ONLY off). Port 0 picks a free port;
//       the caller then binds the other workers' sockets to the port the first one got.
//   fdLocalPort(fd) -> number                                    the port a socket is bound to (getsockname)
//   fdClose(fd)                                                  close(2) a socket never handed to node
#include <cerrno>
#include <cstdio>
#include <cstring>

#if defined(__linux__)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

#include "exports.h"
#include "napi_args.h"

namespace ladder {

#if defined(__linux__)

namespace {

napi_value ThrowListenErrno(napi_env env, int err, const char* what) {
  const char* name = err == EADDRINUSE      ? "EADDRINUSE"
                     : err == EACCES        ? "EACCES"
                     : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL"
                     : err == EAFNOSUPPORT  ? "EAFNOSUPPORT"
                     : err == EMFILE        ? "EMFILE"
                     : err == ENFILE        ? "ENFILE"
                     : err == ENOPROTOOPT   ? "ENOPROTOOPT"
                                            : "EIO";
  char text[160];
  snprintf(text, sizeof text, "%s: %s (%s)", what, strerror(err), name);
  napi_value code, msg, e;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &e);
  napi_throw(env, e);
  return nullptr;
}

}  // namespace

napi_value TcpListenReusePort(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int32_t family = 0, port = -1, backlog = 0;
  char ip[64];
  if (!a.Need(4) || !a.Int32(0, &family) || (family != 4 && family != 6) || !a.String(1, ip, sizeof ip) ||
      !a.Int32(2, &port) || port < 0 || port > 65535 || !a.Int32(3, &backlog) || backlog < 1) {
    Throw(env, "tcpListenReusePort(family 4|6, ip, port 0..65535, backlog >= 1)");
    return nullptr;
  }
  sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  if (family == 4) {
    sockaddr_in* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, ip, &s4->sin_addr) != 1) return Throw(env, "ip must be an IPv4 address"), nullptr;
    sl = sizeof(sockaddr_in);
  } else {
    sockaddr_in6* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, ip, &s6->sin6_addr) != 1) return Throw(env, "ip must be an IPv6 address"), nullptr;
    sl = sizeof(sockaddr_in6);
  }
  const int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowListenErrno(env, errno, "socket");
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
    const int e = errno;
    close(fd);
    return ThrowListenErrno(env, e, "setsockopt");
  }
  if (family == 6) {
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), sl) != 0) {
    const int e = errno;
    close(fd);
    return ThrowListenErrno(env, e, "bind");
  }
  if (listen(fd, backlog) != 0) {
    const int e = errno;
    close(fd);
    return ThrowListenErrno(env, e, "listen");
  }
  return Number(env, fd);
}

napi_value FdLocalPort(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int32_t fd = -1;
  if (!a.Need(1) || !a.Int32(0, &fd) || fd < 0) {
    Throw(env, "fdLocalPort(fd >= 0)");
    return nullptr;
  }
  sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0) return ThrowListenErrno(env, errno, "getsockname");
  const uint16_t port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                                 : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return Number(env, port);
}

napi_value FdClose(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int32_t fd = -1;
  if (!a.Need(1) || !a.Int32(0, &fd) || fd < 0) {
    Throw(env, "fdClose(fd >= 0)");
    return nullptr;
  }
  close(fd);
  return nullptr;
}

#endif  // __linux__

}  // namespace ladder
