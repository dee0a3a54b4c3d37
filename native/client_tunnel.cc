// Ladder native addon: the client's raw SIP004 tunnel set up without entering JS (Linux). The
// SOCKS5 front's one JS call (socks5_front.cc) decides the route and the key, encodes the first
// write, and calls tunnelConnect with everything relayPair (relay_pair.cc) needs; the connect to
// the server and the relay's start then happen here, on the loop, with no JS call until the
// relay's first answer (onFirst) or its end, or until the connect fails (client/native-socks.ts).
//
//   tunnelConnect(ip, port, timeoutMs, relayPair, args, onFail, atOnce?) -> tunnel
//       ip: an IPv4 or IPv6 literal; timeoutMs >= 1: the connect's time budget.
//       atOnce: when connect(2) returns with the connection established (TCP_INFO; on loopback
//       the kernel runs the handshake inside the call), relayPair is called inside this call, so
//       the first write leaves with the connect: no EPOLLOUT watch, no timer, no loop turn (four
//       system calls fewer). onFail(0, 2) may then be called before tunnelConnect returns, and so
//       may the relay's onClose (a write failing at once).
//       relayPair: the addon's relayPair; args: an array of its arguments, args[0] a placeholder
//       for the server's descriptor. Once connected, relayPair(...args[0..8]) is called from
//       here with args[0] = the connected descriptor (TCP_NODELAY), and what it returns (the
//       relay) is stored in args[9]; a throw there is cleared and reported to onFail.
//       onFail(errno, why) is called once, from the loop, instead: why 0 the connect failed
//       (errno negative, as libuv reports it), 1 it timed out (errno 0), 2 relayPair threw
//       (errno 0; both descriptors were relayPair's, so it closed them). For why 0 and 1 the
//       application's descriptor (args[1]) is still the caller's.
//       A connect refused at once (EADDRNOTAVAIL, ENETUNREACH, EMFILE...) throws an error with
//       `errno`, as tcpConnect does; the socket is made by TcpConnectStart (tcp_parts.h), so an
//       IPv6 literal may carry a zone ("fe80::1%eth0") as with Node's net.connect.
//       args[1] (the application's descriptor) is read here: once the connect succeeded it is
//       relayPair's, or closed here when an N-API call fails before relayPair could take it
//       (onFail why 2 then, as for a throw: both descriptors are closed).
//       With atOnce, the application's descriptor, when the SOCKS5 front parked it for this call
//       (socks5_front.cc handoff), joins the relay as it is in the thread's epoll set.
//   tunnelConnectCancel(tunnel)  closes the server's socket if still connecting; no onFail.
//                                Nothing once the relay started (relayClose(args[9]) closes it).
//                                Idempotent.
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <new>

#if defined(__linux__)
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

const napi_type_tag kTunnelTag = {0x6c61646465724354ULL, 0x54554e4e454c0001ULL};
constexpr uint32_t kRelayArgs = 9;
enum Why : int32_t { kFailed = 0, kTimedOut = 1, kRelayThrew = 2 };

struct Tunnel {
  napi_env env = nullptr;
  napi_ref relay = nullptr;  // relayPair
  napi_ref args = nullptr;   // its arguments; args[9] = the relay
  napi_ref on_fail = nullptr;
  PollWatch watch;  // EPOLLOUT in the thread's epoll set while connecting
  uv_timer_t timer;
  int fd = -1;
  int app_fd = -1;  // args[1]: closed here if relayPair cannot be called with it
  bool running = false;
  bool timer_open = false;  // the timer's handle is not closed yet
  bool finalized = false;
  bool hooked = false;
};

void Cleanup(void* arg);

void MaybeFree(Tunnel* t) {
  if (t->finalized && !t->running && !t->timer_open) delete t;
}

void Finalize(napi_env /*env*/, void* data, void* /*hint*/) {
  Tunnel* t = static_cast<Tunnel*>(data);
  t->finalized = true;
  MaybeFree(t);
}

void OnTimerClosed(uv_handle_t* h) {
  Tunnel* t = static_cast<Tunnel*>(h->data);
  t->timer_open = false;
  MaybeFree(t);
}

void DropRefs(Tunnel* t) {
  for (napi_ref* r : {&t->relay, &t->args, &t->on_fail}) {
    if (*r != nullptr) napi_delete_reference(t->env, *r);
    *r = nullptr;
  }
}

// Stops connecting: out of the set, timer closed; the fd is closed unless `keep`. True if it ran.
bool Stop(Tunnel* t, bool keep) {
  if (!t->running) return false;
  t->running = false;
  if (t->hooked) napi_remove_env_cleanup_hook(t->env, Cleanup, t);
  t->hooked = false;
  PollEnd(&t->watch);
  if (!keep && t->fd >= 0) close(t->fd);
  t->fd = -1;
  uv_timer_stop(&t->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&t->timer), OnTimerClosed);
  return true;
}

// The env is going away (worker exit) while connecting: close, no call.
void Cleanup(void* arg) {
  Tunnel* t = static_cast<Tunnel*>(arg);
  t->hooked = false;
  if (Stop(t, false)) DropRefs(t);
}

void CallFail(Tunnel* t, int32_t err, Why why) {
  napi_env env = t->env;
  napi_value cb, recv, result;
  if (napi_get_reference_value(env, t->on_fail, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok) {
    napi_value argv[2] = {Number(env, err), Number(env, why)};
    napi_make_callback(env, nullptr, recv, cb, 2, argv, &result);
    RaisePendingException(env);
  }
}

// Connected: relayPair(...args) with the descriptor, from here (a call into the addon, not JS).
// in_call: inside tunnelConnect (atOnce), where the application's descriptor may be the one the
// SOCKS5 front parked for this call (socks5_front.cc handoff): the relay then takes it as it is in
// the epoll set (thread_poll.h PollAdopting), with no epoll_ctl.
void StartRelay(Tunnel* t, int fd, bool in_call = false) {
  napi_env env = t->env;
  napi_value fn, args, recv, result;
  napi_value argv[kRelayArgs];
  bool ok = napi_get_reference_value(env, t->relay, &fn) == napi_ok &&
            napi_get_reference_value(env, t->args, &args) == napi_ok && napi_get_global(env, &recv) == napi_ok &&
            napi_set_element(env, args, 0, Number(env, fd)) == napi_ok;
  for (uint32_t i = 0; ok && i < kRelayArgs; i++) ok = napi_get_element(env, args, i, &argv[i]) == napi_ok;
  if (!ok) {
    // An N-API call failed (a throwing element, say) before relayPair took the descriptors: both
    // are closed here, as relayPair would have on a throw, and JS hears why 2.
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
    close(fd);
    if (t->app_fd >= 0) {
      if (in_call && PollAdopting(t->app_fd)) PollUnpark();  // parked: out of the set before closing
      close(t->app_fd);
    }
    CallFail(t, 0, kRelayThrew);
    return;
  }
  const bool adopt = in_call && PollAdopting(t->app_fd);
  const napi_status called = napi_call_function(env, recv, fn, kRelayArgs, argv, &result);
  if (adopt) PollAdopting(-1);
  if (called != napi_ok) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);  // it closed both descriptors (owned)
    CallFail(t, 0, kRelayThrew);
    return;
  }
  napi_set_element(env, args, kRelayArgs, result);
}

void OnWritable(void* target, uint32_t /*events*/) {
  Tunnel* t = static_cast<Tunnel*>(target);
  if (!t->running) return;
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  const int fd = t->fd;
  Stop(t, err == 0);
  napi_handle_scope scope;
  if (napi_open_handle_scope(t->env, &scope) != napi_ok) {
    if (err == 0) close(fd);
    DropRefs(t);
    return;
  }
  if (err == 0) StartRelay(t, fd);
  else CallFail(t, -err, kFailed);
  DropRefs(t);
  napi_close_handle_scope(t->env, scope);
}

void OnTimeout(uv_timer_t* h) {
  Tunnel* t = static_cast<Tunnel*>(h->data);
  if (!Stop(t, false)) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(t->env, &scope) == napi_ok) {
    CallFail(t, 0, kTimedOut);
    napi_close_handle_scope(t->env, scope);
  }
  DropRefs(t);
}

}  // namespace

napi_value TunnelConnect(napi_env env, napi_callback_info info) {
  const char* usage = "tunnelConnect(ip, port 1..65535, timeoutMs >= 1, relayPair, args, onFail, atOnce?)";
  Args a(env, info);
  char ip[64];
  int32_t port = -1;
  int64_t timeout = 0;
  bool is_array = false;
  napi_value app;
  int32_t app_fd = -1;
  if (!a.Need(6, usage) || !a.String(0, ip, sizeof(ip)) || !a.Int32(1, &port) || port < 1 || port > 65535 ||
      !a.Index(2, &timeout) || timeout < 1 || !a.Function(3) || napi_is_array(env, a[4], &is_array) != napi_ok ||
      !is_array || !a.Function(5) || napi_get_element(env, a[4], 1, &app) != napi_ok ||
      napi_get_value_int32(env, app, &app_fd) != napi_ok || app_fd < 0) {
    Throw(env, usage);
    return nullptr;
  }
  bool at_once = false;
  if (a.Has(6) && !a.Undefined(6) && !a.Boolean(6, &at_once)) {
    Throw(env, usage);
    return nullptr;
  }
  uv_loop_t* uv = nullptr;
  Tunnel* t = new (std::nothrow) Tunnel();
  if (t == nullptr || !PollReady(env) || napi_get_uv_event_loop(env, &uv) != napi_ok || uv == nullptr) {
    delete t;
    napi_throw_error(env, "ERR_LADDER_CONNECT", "cannot connect");
    return nullptr;
  }
  t->env = env;
  t->app_fd = app_fd;
  t->fd = TcpConnectOrThrow(env, ip, port, usage);
  if (t->fd < 0) {
    delete t;
    return nullptr;
  }
  napi_value ext;
  if (napi_create_external(env, t, Finalize, nullptr, &ext) != napi_ok) {
    close(t->fd);
    delete t;
    napi_throw_error(env, "ERR_LADDER_CONNECT", "napi_create_external failed");
    return nullptr;
  }
  // From here the finalizer frees t (once it stopped and its timer closed).
  if (at_once && Established(t->fd)) {
    // Connected already: relay now (no watch, no timer; t never runs, cancel does nothing).
    const int fd = t->fd;
    t->fd = -1;
    if (napi_create_reference(env, a[3], 1, &t->relay) != napi_ok ||
        napi_create_reference(env, a[4], 1, &t->args) != napi_ok ||
        napi_create_reference(env, a[5], 1, &t->on_fail) != napi_ok) {
      close(fd);
      DropRefs(t);
      napi_throw_error(env, "ERR_LADDER_CONNECT", "cannot connect");
      return nullptr;
    }
    StartRelay(t, fd, true);
    DropRefs(t);
    napi_type_tag_object(env, ext, &kTunnelTag);
    return ext;
  }
  uv_timer_init(uv, &t->timer);
  t->timer.data = t;
  t->timer_open = true;
  t->running = true;
  if (napi_create_reference(env, a[3], 1, &t->relay) != napi_ok ||
      napi_create_reference(env, a[4], 1, &t->args) != napi_ok ||
      napi_create_reference(env, a[5], 1, &t->on_fail) != napi_ok ||
      !PollStart(env, &t->watch, t->fd, EPOLLOUT, OnWritable, t)) {
    Stop(t, false);
    DropRefs(t);
    napi_throw_error(env, "ERR_LADDER_CONNECT", "cannot poll the socket");
    return nullptr;
  }
  uv_timer_start(&t->timer, OnTimeout, static_cast<uint64_t>(timeout), 0);
  if (napi_add_env_cleanup_hook(env, Cleanup, t) == napi_ok) t->hooked = true;
  napi_type_tag_object(env, ext, &kTunnelTag);
  return ext;
}

napi_value TunnelConnectCancel(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* p = nullptr;
  if (!a.Need(1) || !a.Tagged(0, kTunnelTag, &p, "tunnelConnectCancel(tunnel)")) return nullptr;
  Tunnel* t = static_cast<Tunnel*>(p);
  if (Stop(t, false)) DropRefs(t);
  return nullptr;
}

#endif  // __linux__

}  // namespace ladder
