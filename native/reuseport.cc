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
//   udpBind(family 4|6, ip, port) -> fd                          a non-blocking, close-on-exec UDP socket
//       bound to ip:port (family 6 dual-stack), not polled: datagrams queue in its receive buffer
//       until a worker adopts it (sockCreate's fd argument). Made on the main thread so the port
//       answers before the data-plane workers run (workers started on demand, fd_watch.cc).
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
#include "udp_sockets.h"

namespace ladder {

#if defined(__linux__)


napi_value TcpListenReusePort(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int32_t family = 0, port = -1, backlog = 0;
  char ip[64];
  if (!a.Need(4) || !a.Int32(0, &family) || (family != 4 && family != 6) || !a.String(1, ip, sizeof ip) ||
      !a.Int32(2, &port) || port < 0 || port > 65535 || !a.Int32(3, &backlog) || backlog < 1) {
    Throw(env, "tcpListenReusePort(family 4|6, ip, port 0..65535, backlog >= 1)");
    return nullptr;
  }
  const int fd = BoundSocket(env, family, ip, port, SOCK_STREAM, true);
  if (fd < 0) return nullptr;
  if (listen(fd, backlog) != 0) {
    const int e = errno;
    close(fd);
    return ThrowErrno(env, e, "listen");
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
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0) return ThrowErrno(env, errno, "getsockname");
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

napi_value UdpBind(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int32_t family = 0, port = -1;
  char ip[64];
  if (!a.Need(3) || !a.Int32(0, &family) || (family != 4 && family != 6) || !a.String(1, ip, sizeof ip) ||
      !a.Int32(2, &port) || port < 0 || port > 65535) {
    Throw(env, "udpBind(family 4|6, ip, port 0..65535)");
    return nullptr;
  }
  const int fd = BoundSocket(env, family, ip, port, SOCK_DGRAM, false);
  if (fd < 0) return nullptr;
  return Number(env, fd);
}

#endif  // __linux__

}  // namespace ladder
