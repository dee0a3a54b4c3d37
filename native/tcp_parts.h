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

// relay_pair.cc: a relay started from C++ with no JS handle or callback (client_bare.cc: the
// client's bare tunnels). server_fd (the connected server socket, side 0) and app_fd (side 1) are
// taken over (closed by the relay, also when this fails); enc (owned, freed by the relay) encodes
// the application's bytes; `first` (salt, header and first data, sealed) is sent to the server
// first; the relay reads the server's salt and opens its answer with the decoder keyed from
// master (as relayPair with a master key and onFirst). end(owner, reason, up, side, answered) is
// called once when it ends (relayPair's onClose's values; RelayStopOwned: reason 3, from inside
// that call); fin(owner, shut, up) when the server sends FIN before a payload opened. The
// relay frees itself after `end`. nullptr (both descriptors closed, enc freed) when it cannot
// start. With PollAdopting armed for app_fd, app_fd's parked registration is taken as it is.
struct Codec;
using RelayEndFn = void (*)(void* owner, int32_t reason, double up, int32_t side, bool answered);
using RelayFinFn = void (*)(void* owner, bool shut, double up);
void* RelayStartOwned(napi_env env, int server_fd, int app_fd, const uint8_t* master, size_t master_len, Codec* enc,
                      const uint8_t* first, size_t first_len, uint64_t idle_ms, RelayEndFn end, RelayFinFn fin,
                      void* owner);
// Ends it now (reason 3; `end` is called before this returns). Nothing when it ended already.
void RelayStopOwned(void* relay);
// Whether a payload opened; *up = bytes read from the server so far.
bool RelayOwnedAnswered(const void* relay, double* up);

#endif  // __linux__

}  // namespace ladder

#endif  // LADDER_NATIVE_TCP_PARTS_H_
