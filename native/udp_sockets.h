// Ladder native addon: the batched UDP socket (udp_sockets.cc) as the UDP fast path
// (udp_fastpath.cc) sees it.
#ifndef LADDER_NATIVE_UDP_SOCKETS_H_
#define LADDER_NATIVE_UDP_SOCKETS_H_

#include "common.h"

#if defined(__linux__)
#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include <string>
#include <unordered_map>

#include "napi_args.h"

namespace ladder {

constexpr size_t kSlot = 65536;  // bytes per received datagram, the largest one handled
constexpr size_t kAddr = 20;     // the address form below

struct RecvArea;
struct Route;
struct SaltSet;

struct Sock {
  int fd = -1;
  int family = 4;
  uv_poll_t poll;
  napi_env env = nullptr;
  napi_ref callback = nullptr;
  napi_ref self = nullptr;
  napi_async_context actx = nullptr;
  // SIP004 replies sealed and sent in C (sockRelay): no JS call per reply datagram.
  Sock* relay_to = nullptr;       // the listener the sealed replies leave from
  napi_ref relay_ref = nullptr;   // keeps the listener's handle (and so its Sock) alive
  int relay_method = -1;
  uint8_t relay_key[32];
  size_t relay_key_len = 0;
  uint8_t relay_client[20];
  uint64_t relay_bytes = 0;       // sealed bytes sent since the last sockRelayTake
  // Listener only: the C forward path (sockPolicy, sockRoute).
  std::unordered_map<std::string, Route>* routes = nullptr;
  SaltSet* salts = nullptr;
  bool allow_private = false;
  uint64_t dropped = 0;
  RecvArea* area = nullptr;  // the env's, where this socket is listed while open
  int in_callback = 0;       // > 0 while JS runs from OnReadable (close defers async_destroy)
  bool destroy_deferred = false;
  bool closed = false;     // sockClose was called (or creation failed half-way)
  bool uv_done = false;    // the poll handle's close callback ran (fd closed)
  bool finalized = false;  // the JS object is gone
};

// Throws Error(".code" = the errno's name) for a failed socket call `what`; returns nullptr.
napi_value ThrowErrno(napi_env env, int err, const char* what);

// ip:port of `family` (4 or 6, an IP literal) as a sockaddr; false (TypeError thrown) otherwise.
bool IpSockaddr(napi_env env, int family, const char* ip, int port, sockaddr_storage* ss, socklen_t* sl);

// A non-blocking, close-on-exec socket of `type` (SOCK_DGRAM, SOCK_STREAM) bound to ip:port
// (family 6 dual-stack; reuse_port: SO_REUSEADDR and SO_REUSEPORT first): its fd, or -1 with
// the Error (.code = errno name) thrown.
int BoundSocket(napi_env env, int family, const char* ip, int port, int type, bool reuse_port);

// The socket at argument i; throws TypeError otherwise.
Sock* GetSock(const Args& a, size_t i);

// The socket of a call that takes only one: nullptr (undefined to JS) without an argument, or
// with a TypeError for anything else.
Sock* OnlySock(napi_env env, napi_callback_info info);

// The offset argument at i of a 20-byte address in addrs (addrs_len bytes); throws TypeError
// "offset outside addrs" otherwise.
bool AddrOffset(const Args& a, size_t i, size_t addrs_len, int32_t* off);

// The 20-byte address form of a datagram's source: [family 4|6, port hi, port lo, 0, 16 address
// bytes (IPv4 in the first 4)]; a v4-mapped source on a dual-stack socket is reported as IPv4.
void PutAddr(uint8_t* out, const sockaddr_storage& ss);

// Destination for sendto from the 20-byte address form, for a socket of `family`; 0 when the
// address does not fit that family.
socklen_t AddrToSockaddr(const uint8_t* a, int family, sockaddr_storage* ss);

}  // namespace ladder

#endif  // __linux__

#endif  // LADDER_NATIVE_UDP_SOCKETS_H_
