// Ladder native addon: every function module.cc exports, by the part that defines it. The JS
// surface of each is documented in its part.
#ifndef LADDER_NATIVE_EXPORTS_H_
#define LADDER_NATIVE_EXPORTS_H_

#include "common.h"

namespace ladder {

// common.cc
napi_value Available(napi_env env, napi_callback_info info);
napi_value TuneHeap(napi_env env, napi_callback_info info);

// sched.cc
napi_value SchedBatch(napi_env env, napi_callback_info info);

// idle_memory.cc
napi_value ReleaseIdleMemory(napi_env env, napi_callback_info info);

// stream_codec.cc
napi_value Create(napi_env env, napi_callback_info info);
napi_value CreateSalted(napi_env env, napi_callback_info info);
napi_value CreateSession(napi_env env, napi_callback_info info);
napi_value Sip004Open(napi_env env, napi_callback_info info);
napi_value Encode(napi_env env, napi_callback_info info);
napi_value Decode(napi_env env, napi_callback_info info);
napi_value DecodeInPlace(napi_env env, napi_callback_info info);
napi_value Seal(napi_env env, napi_callback_info info);
napi_value SealInto(napi_env env, napi_callback_info info);
napi_value Open(napi_env env, napi_callback_info info);

// oneshot.cc
napi_value HkdfSha1Js(napi_env env, napi_callback_info info);
napi_value SealParts(napi_env env, napi_callback_info info);
napi_value OpenAt(napi_env env, napi_callback_info info);
napi_value UdpSeal(napi_env env, napi_callback_info info);
napi_value UdpOpen(napi_env env, napi_callback_info info);
napi_value CtxPoolSize(napi_env env, napi_callback_info info);

// udp_sockets.cc
napi_value SendTo(napi_env env, napi_callback_info info);
#if defined(__linux__)
napi_value SockShared(napi_env env, napi_callback_info info);
napi_value SockCreate(napi_env env, napi_callback_info info);
napi_value SockPort(napi_env env, napi_callback_info info);
napi_value SockSend(napi_env env, napi_callback_info info);
napi_value SockSendTo(napi_env env, napi_callback_info info);
napi_value SockClose(napi_env env, napi_callback_info info);

// udp_fastpath.cc
napi_value SockRelay(napi_env env, napi_callback_info info);
napi_value SockRelayTake(napi_env env, napi_callback_info info);
napi_value SockPolicy(napi_env env, napi_callback_info info);
napi_value SockSaltAdd(napi_env env, napi_callback_info info);
napi_value SockRoute(napi_env env, napi_callback_info info);
napi_value SockUnroute(napi_env env, napi_callback_info info);
napi_value SockRouteTake(napi_env env, napi_callback_info info);
napi_value SockDropped(napi_env env, napi_callback_info info);
napi_value IsPrivateIp(napi_env env, napi_callback_info info);

// reuseport.cc
napi_value TcpListenReusePort(napi_env env, napi_callback_info info);
napi_value FdLocalPort(napi_env env, napi_callback_info info);
napi_value FdClose(napi_env env, napi_callback_info info);
napi_value UdpBind(napi_env env, napi_callback_info info);

// fd_watch.cc
napi_value FdWatch(napi_env env, napi_callback_info info);
napi_value FdUnwatch(napi_env env, napi_callback_info info);

// relay_pair.cc
napi_value RelayPair(napi_env env, napi_callback_info info);
napi_value RelayConnect(napi_env env, napi_callback_info info);
napi_value RelayClose(napi_env env, napi_callback_info info);
napi_value RelayCounts(napi_env env, napi_callback_info info);
napi_value RelayLive(napi_env env, napi_callback_info info);

// tcp_connect.cc
napi_value TcpConnect(napi_env env, napi_callback_info info);
napi_value TcpConnectCancel(napi_env env, napi_callback_info info);

// dest_stream.cc
napi_value DestInit(napi_env env, napi_callback_info info);
napi_value DestConnect(napi_env env, napi_callback_info info);
napi_value DestWrite(napi_env env, napi_callback_info info);
napi_value DestRead(napi_env env, napi_callback_info info);
napi_value DestEnd(napi_env env, napi_callback_info info);
napi_value DestClose(napi_env env, napi_callback_info info);
napi_value DestLive(napi_env env, napi_callback_info info);

// tcp_accept.cc
napi_value AcceptListen(napi_env env, napi_callback_info info);
napi_value AcceptKeys(napi_env env, napi_callback_info info);
napi_value AcceptClose(napi_env env, napi_callback_info info);
napi_value AcceptPending(napi_env env, napi_callback_info info);
napi_value ConnRead(napi_env env, napi_callback_info info);
napi_value ConnEnd(napi_env env, napi_callback_info info);
napi_value ConnClose(napi_env env, napi_callback_info info);
napi_value ConnRelease(napi_env env, napi_callback_info info);
napi_value AcceptLive(napi_env env, napi_callback_info info);

// thread_poll.cc
napi_value PollLive(napi_env env, napi_callback_info info);
napi_value LoopIdleTime(napi_env env, napi_callback_info info);
// socks5_front.cc
napi_value Socks5Front(napi_env env, napi_callback_info info);
napi_value Socks5FrontClose(napi_env env, napi_callback_info info);
napi_value Socks5FrontLive(napi_env env, napi_callback_info info);
napi_value Socks5FrontBare(napi_env env, napi_callback_info info);
// client_bare.cc
napi_value BareTunnels(napi_env env, napi_callback_info info);
napi_value BareSalts(napi_env env, napi_callback_info info);
napi_value BareTakeJs(napi_env env, napi_callback_info info);
napi_value BareClose(napi_env env, napi_callback_info info);
napi_value BareCount(napi_env env, napi_callback_info info);
// app_conn.cc
napi_value AppConnInit(napi_env env, napi_callback_info info);
napi_value AppConnOpen(napi_env env, napi_callback_info info);
napi_value AppConnRead(napi_env env, napi_callback_info info);
napi_value AppConnWrite(napi_env env, napi_callback_info info);
napi_value AppConnEnd(napi_env env, napi_callback_info info);
napi_value AppConnClose(napi_env env, napi_callback_info info);
napi_value AppConnLive(napi_env env, napi_callback_info info);
// client_tunnel.cc
napi_value TunnelConnect(napi_env env, napi_callback_info info);
napi_value TunnelConnectCancel(napi_env env, napi_callback_info info);
#endif

}  // namespace ladder

#endif  // LADDER_NATIVE_EXPORTS_H_
