// Ladder: the optional native addon (build/Release/ladder_aead.node, built by
// scripts/build-native.mjs from the parts listed in binding.gyp): the SIP004 (Shadowsocks AEAD
// 2017) / SIP022 chunk codec, one-shot AEAD and HKDF for datagrams, and batched UDP sockets with
// the SIP004 relay path in C. Wrapped by src/protocol/shadowsocks/native.ts.
//
// OpenSSL comes from the node binary itself (it exports its bundled libcrypto), built against
// the headers node ships in include/node/openssl; nothing is linked here.
//
// The parts, each with its JS surface documented at its top:
//   common.cc        the cipher table; available(method) -> boolean; tuneHeap(trim, mmap)
//   sched.cc         schedBatch() (every thread SCHED_BATCH: LADDER_SCHED_BATCH=1)
//   idle_memory.cc   releaseIdleMemory() (start-up's garbage and pooled pages back, once started)
//   stream_codec.cc  create, createSession, encode, decode, decodeInPlace, seal, sealInto, open, sip004Open
//   oneshot.cc       hkdfSha1, sealParts, openAt, udpSeal, udpOpen
//   udp_sockets.cc   sendTo; sockShared, sockCreate, sockPort, sockSend, sockSendTo, sockClose
//   udp_fastpath.cc  sockRelay, sockRelayTake, sockPolicy, sockSaltAdd, sockRoute, sockUnroute,
//                    sockRouteTake, sockDropped, isPrivateIp
//   reuseport.cc     tcpListenReusePort, fdLocalPort, fdClose, udpBind (the multi-worker server's listeners)
//   fd_watch.cc      fdWatch, fdUnwatch (the workers start at the first connection or datagram)
//   client_bare.cc   bareTunnels, bareSalts, bareTake, bareClose, bareCount, and socks5_front.cc's
//                    socks5FrontBare (the client's bare tunnel with no JS call per connection)
//   relay_pair.cc    relayPair, relayConnect, relayClose, relayCounts, relayLive (TCP relays)
//   tcp_connect.cc   tcpConnect, tcpConnectCancel (the native relay's destination sockets)
//   dest_stream.cc   destInit, destConnect, destWrite, destRead, destEnd, destClose, destLive
//                    (the server's destinations of streams relayed in JS: WebSocket, Mux.Cool)
//   tcp_accept.cc    acceptListen, acceptKeys, acceptClose, acceptPending, connRead, connEnd, connClose, connRelease,
//                    acceptLive (the server's raw TCP connections until the hand-off)
//   thread_poll.cc   pollLive (the per-thread epoll set of the three above; tests: nothing leaks),
//                    loopIdleTime (libuv's idle-time measure on this thread, which the set turns off)
//   socks5_front.cc  socks5Front, socks5FrontClose, socks5FrontLive (the client's SOCKS5 accept)
//   client_tunnel.cc tunnelConnect, tunnelConnectCancel (the client's raw tunnel: connect and
//                    relay start without JS)
//   napi_args.cc     the argument parser every export uses
// The sock* functions, isPrivateIp, the reuseport.cc and relay_pair.cc functions exist on Linux only (the
// last ones are looked up by name, so a build without them is still accepted).
//
// abiVersion: 3 added the one-shot operations and the batched sockets, 4 decodeInPlace, 5 method 3
// (aes-192-gcm), 6 relayConnect's encoder argument may be the master key (the relay derives its
// encoder from it and the salt: an older build would take it for a codec and refuse every relay), 7 relayPair's
// decoder argument may be the master key with onFirst (the client's relay reads the server's salt; an older build
// refuses it and every planned tunnel), 8 relayConnect's serverSalts (the relay draws the response salt and adds it to the
// shared filter; an older build refuses the missing prefix and every lean-path relay). The loader refuses any other number, so it changes only when the JS surface does.
// tuneHeap, schedBatch, releaseIdleMemory and ctxPoolSize were added without a new number: they are optional (the JS side calls them only when
// present).
#include "common.h"
#include "exports.h"

namespace ladder {
namespace {

constexpr int32_t kAbiVersion = 8;

#define LADDER_EXPORT(name, fn) {name, nullptr, fn, nullptr, nullptr, nullptr, napi_enumerable, nullptr}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      LADDER_EXPORT("available", Available),
      LADDER_EXPORT("tuneHeap", TuneHeap),
      LADDER_EXPORT("schedBatch", SchedBatch),
      LADDER_EXPORT("releaseIdleMemory", ReleaseIdleMemory),
      LADDER_EXPORT("create", Create),
      LADDER_EXPORT("createSalted", CreateSalted),
      LADDER_EXPORT("encode", Encode),
      LADDER_EXPORT("decode", Decode),
      LADDER_EXPORT("decodeInPlace", DecodeInPlace),
      LADDER_EXPORT("sip004Open", Sip004Open),
      LADDER_EXPORT("createSession", CreateSession),
      LADDER_EXPORT("seal", Seal),
      LADDER_EXPORT("sealInto", SealInto),
      LADDER_EXPORT("open", Open),
      LADDER_EXPORT("hkdfSha1", HkdfSha1Js),
      LADDER_EXPORT("sealParts", SealParts),
      LADDER_EXPORT("openAt", OpenAt),
      LADDER_EXPORT("udpSeal", UdpSeal),
      LADDER_EXPORT("udpOpen", UdpOpen),
      LADDER_EXPORT("ctxPoolSize", CtxPoolSize),
      LADDER_EXPORT("sendTo", SendTo),
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
#if defined(__linux__)
  const napi_property_descriptor sock_props[] = {
      LADDER_EXPORT("sockShared", SockShared),
      LADDER_EXPORT("sockCreate", SockCreate),
      LADDER_EXPORT("sockPort", SockPort),
      LADDER_EXPORT("sockSend", SockSend),
      LADDER_EXPORT("sockSendTo", SockSendTo),
      LADDER_EXPORT("sockRelay", SockRelay),
      LADDER_EXPORT("sockRelayTake", SockRelayTake),
      LADDER_EXPORT("sockPolicy", SockPolicy),
      LADDER_EXPORT("sockSaltAdd", SockSaltAdd),
      LADDER_EXPORT("sockRoute", SockRoute),
      LADDER_EXPORT("sockUnroute", SockUnroute),
      LADDER_EXPORT("sockRouteTake", SockRouteTake),
      LADDER_EXPORT("sockDropped", SockDropped),
      LADDER_EXPORT("isPrivateIp", IsPrivateIp),
      LADDER_EXPORT("sockClose", SockClose),
      LADDER_EXPORT("tcpListenReusePort", TcpListenReusePort),
      LADDER_EXPORT("fdLocalPort", FdLocalPort),
      LADDER_EXPORT("fdClose", FdClose),
      LADDER_EXPORT("udpBind", UdpBind),
      LADDER_EXPORT("fdWatch", FdWatch),
      LADDER_EXPORT("fdUnwatch", FdUnwatch),
      LADDER_EXPORT("relayPair", RelayPair),
      LADDER_EXPORT("relayConnect", RelayConnect),
      LADDER_EXPORT("relayClose", RelayClose),
      LADDER_EXPORT("relayCounts", RelayCounts),
      LADDER_EXPORT("relayLive", RelayLive),
      LADDER_EXPORT("tcpConnect", TcpConnect),
      LADDER_EXPORT("tcpConnectCancel", TcpConnectCancel),
      LADDER_EXPORT("destInit", DestInit),
      LADDER_EXPORT("destConnect", DestConnect),
      LADDER_EXPORT("destWrite", DestWrite),
      LADDER_EXPORT("destRead", DestRead),
      LADDER_EXPORT("destEnd", DestEnd),
      LADDER_EXPORT("destClose", DestClose),
      LADDER_EXPORT("destLive", DestLive),
      LADDER_EXPORT("acceptListen", AcceptListen),
      LADDER_EXPORT("acceptKeys", AcceptKeys),
      LADDER_EXPORT("acceptClose", AcceptClose),
      LADDER_EXPORT("acceptPending", AcceptPending),
      LADDER_EXPORT("connRead", ConnRead),
      LADDER_EXPORT("connEnd", ConnEnd),
      LADDER_EXPORT("connClose", ConnClose),
      LADDER_EXPORT("connRelease", ConnRelease),
      LADDER_EXPORT("acceptLive", AcceptLive),
      LADDER_EXPORT("pollLive", PollLive),
      LADDER_EXPORT("loopIdleTime", LoopIdleTime),
      LADDER_EXPORT("socks5Front", Socks5Front),
      LADDER_EXPORT("socks5FrontClose", Socks5FrontClose),
      LADDER_EXPORT("socks5FrontLive", Socks5FrontLive),
      LADDER_EXPORT("socks5FrontBare", Socks5FrontBare),
      LADDER_EXPORT("bareTunnels", BareTunnels),
      LADDER_EXPORT("bareSalts", BareSalts),
      LADDER_EXPORT("bareTake", BareTakeJs),
      LADDER_EXPORT("bareClose", BareClose),
      LADDER_EXPORT("bareCount", BareCount),
      LADDER_EXPORT("appConnInit", AppConnInit),
      LADDER_EXPORT("appConnOpen", AppConnOpen),
      LADDER_EXPORT("appConnRead", AppConnRead),
      LADDER_EXPORT("appConnWrite", AppConnWrite),
      LADDER_EXPORT("appConnEnd", AppConnEnd),
      LADDER_EXPORT("appConnClose", AppConnClose),
      LADDER_EXPORT("appConnLive", AppConnLive),
      LADDER_EXPORT("tunnelConnect", TunnelConnect),
      LADDER_EXPORT("tunnelConnectCancel", TunnelConnectCancel),
  };
  napi_define_properties(env, exports, sizeof(sock_props) / sizeof(sock_props[0]), sock_props);
#endif
  napi_value version;
  napi_create_int32(env, kAbiVersion, &version);
  napi_set_named_property(env, exports, "abiVersion", version);
  return exports;
}

#undef LADDER_EXPORT

}  // namespace
}  // namespace ladder

NAPI_MODULE(NODE_GYP_MODULE_NAME, ladder::Init)
