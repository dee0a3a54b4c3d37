// Ladder native addon: what the TCP parts call of each other in C++ (no JS in between), Linux.
#ifndef LADDER_NATIVE_TCP_PARTS_H_
#define LADDER_NATIVE_TCP_PARTS_H_

#include <cstdint>

#include "common.h"
#include "thread_poll.h"

namespace ladder {

#if defined(__linux__)

// tcp_connect.cc: a non-blocking, close-on-exec TCP socket with TCP_NODELAY whose connect to
// ip:port (a literal; IPv6 with an optional zone, "fe80::1%eth0", parsed as Node does) is under
// way or done: the fd, -1 with *err = the errno, or -2 when ip is not an IPv4 or IPv6 literal (or
// the port not 1..65535).
int TcpConnectStart(const char* ip, int32_t port, int* err);

// tcp_connect.cc: whether fd's connection is established (TCP_INFO's state; false when unknown).
// A loopback connect usually is when a non-blocking connect(2) returns (EINPROGRESS and all):
// the kernel ran the handshake inside the call. Call it right after TcpConnectStart made fd, on
// the same thread: it asks the kernel only when that connect's destination is the loopback (any
// other cannot be done yet; false with no system call).
bool Established(int fd);

// Throws the error of a connect refused at once: code ERR_LADDER_CONNECT, `errno` = -e.
void ThrowConnectErrno(napi_env env, int e);

// TcpConnectStart for an addon call: the fd, or -1 after throwing (`not_literal` as a TypeError
// when ip is not an IP literal or the port is out of range, else ThrowConnectErrno).
int TcpConnectOrThrow(napi_env env, const char* ip, int32_t port, const char* not_literal);

// tcp_accept.cc: connRelease in C++: stops reading connection `id` (accepted on this thread) and
// gives its socket to the caller; -1 when the id is not live. With `into` (an ended watch), the
// connection's watch moves there as it is (PollMove: its events to fn(target)), so a socket
// polled for reads stays in the epoll set (no DEL and ADD again); into->token is 0 when the
// connection had none to move.
int AcceptTake(napi_env env, int64_t id, PollWatch* into = nullptr, PollFn fn = nullptr, void* target = nullptr);

#endif  // __linux__

}  // namespace ladder

#endif  // LADDER_NATIVE_TCP_PARTS_H_
