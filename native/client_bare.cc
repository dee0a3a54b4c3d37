// Ladder native addon: the client's bare tunnel in the addon (Linux; issue 15, session 21). A
// SOCKS5 CONNECT with first data that the front (socks5_front.cc) completes is, when the client's
// tunnel is the bare one (answer-watch over one raw SIP004 key to an IP literal, no rules,
// failover or picker: client/bare-tunnel.ts decides), sealed, connected and relayed here with no
// JS call: the salt comes from a pool JS fills in batches (the dialer's own salts, shaping's
// prefixes included), the first write is salt || one sealed chunk of ATYP..PORT || data (what
// shaping.ts encodeFirstWriteJoined writes for it), the relay is relay_pair.cc's
// (RelayStartOwned). JS hears only what needs it, through onEvent:
//
//   bareTunnels(ip, port, timeoutMs, masterKey, method 0..3, idleMs, noAnswerMs, gaveUpMs, onEvent,
//               atOnce, debug) -> set
//       onEvent(code, a, b, addr, up, sentAgoMs):
//         0 FAIL: the connect failed (a = -errno, b = 0), timed out (a = 0, b = 1), was refused at
//           once (a = -errno, b = 3) or the relay did not start (b = 2); the application's socket
//           is closed already (logDialFailure's line then).
//         1 SERVER_CLOSED: the server's FIN (a = 1 when the application's write half was shut
//           down by then) or a reset (a = 0) before a payload opened (answer-watch serverClosed).
//         2 CLOSED: the relay ended (a = reason, b = 1 when answer-watch must judge it: unanswered
//           and either its bytes failed to open (reason 4, 5) or it lived gaveUpMs since the
//           first write; 0 when only a debug line is wanted, with debug and a reason not "done").
//         3 DUE: noAnswerMs since the first write and no payload opened (answer-watch due()).
//       addr: the request's ATYP..PORT (for the lines that name it); up: bytes read from the
//       server; each tunnel is judged once (after 1, 3, or 2 with b = 1, no more judging events).
//   bareSalts(set, salts)      appends salts (a Uint8Array of whole salts, as long as the key):
//                              each is used once; -> salts held
//   bareTake(set, fd, request, addrLength, park) -> bool
//                              (JS's test entry; the front calls BareTake itself) starts a tunnel
//   bareClose(set)             closes every tunnel (connecting or relaying; no event) and ends
//                              the set (no tunnel starts after it); idempotent
//   bareCount(set) -> [live, started, salts]   tunnels connecting or relaying now; started so far;
//                              salts not used yet
//   socks5FrontBare(front, set)  (socks5_front.cc) the front starts CONNECTs here
#include <cerrno>
#include <cstring>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#endif

#include "client_bare.h"
#include "exports.h"
#include "napi_args.h"
#include "oneshot.h"
#include "stream_codec.h"
#include "tcp_parts.h"
#include "thread_poll.h"

namespace ladder {

#if defined(__linux__)

namespace {

const napi_type_tag kBareTag = {0x6c61646465724241ULL, 0x5245534554000001ULL};
constexpr size_t kMaxPayload = 0x3FFF;
constexpr size_t kChunkOverhead = 2 + 16 + 16;
enum Code : int32_t { kFail = 0, kServerClosed = 1, kClosed = 2, kDue = 3 };

struct Tunnel;

struct BareSet {
  napi_env env = nullptr;
  uv_loop_t* uv = nullptr;
  napi_ref on_event = nullptr;
  napi_async_context actx = nullptr;
  uv_timer_t timer;  // connect deadlines and no-answer waits, scanned
  uint64_t period = 0;
  char ip[64] = {0};
  int32_t port = 0;
  uint64_t timeout_ms = 0;
  uint64_t idle_ms = 0;
  uint64_t no_answer_ms = 0;
  uint64_t gave_up_ms = 0;
  uint8_t master[32] = {0};
  size_t key_len = 0;
  int method = 0;
  bool at_once = false;
  bool debug = false;
  std::vector<uint8_t> salts;  // whole salts; salts[salt_off..) not used yet
  size_t salt_off = 0;
  std::vector<Tunnel*> live;
  double started = 0;
  bool closed = false;
  bool finalized = false;
  bool timer_open = false;
  bool hooked = false;
};

struct Tunnel {
  BareSet* set = nullptr;
  size_t index = 0;
  int fd = -1;      // the server's socket while connecting
  int app_fd = -1;  // the application's, until the relay takes it
  PollWatch watch;  // EPOLLOUT while connecting
  void* relay = nullptr;
  Codec* enc = nullptr;  // until the relay takes it
  std::vector<uint8_t> first;  // until the relay takes it
  uint64_t sent_at = 0;
  uint64_t due_at = 0;  // the no-answer wait's end (0: none)
  uint64_t connect_deadline = 0;
  bool settled = false;  // judged once: nothing more to tell
  uint8_t addr[262];
  size_t addr_len = 0;
};

void Arm(BareSet* s);

// The watch's clock: the real time now, as answer-watch's (the loop's cached time may be a long
// callback behind on a loaded machine, which would end a no-answer wait early).
uint64_t NowMs() { return uv_hrtime() / 1000000; }

void MaybeFreeSet(BareSet* s) {
  if (s->finalized && s->closed && !s->timer_open) delete s;
}

void Remove(Tunnel* t) {
  BareSet* s = t->set;
  Tunnel* last = s->live.back();
  s->live[t->index] = last;
  last->index = t->index;
  s->live.pop_back();
  if (s->live.empty() && s->period != 0) {
    uv_timer_stop(&s->timer);
    s->period = 0;
  }
}

void FreeTunnel(Tunnel* t) {
  if (t->enc != nullptr) CodecFree(t->enc);
  t->enc = nullptr;
  if (!t->first.empty()) OPENSSL_cleanse(t->first.data(), t->first.size());
  delete t;
}

// onEvent(code, a, b, addr, up, sentAgoMs) from the loop (none once the set is closed).
void Event(BareSet* s, const Tunnel* t, Code code, int32_t a, int32_t b, double up) {
  if (s->closed || s->on_event == nullptr) return;
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, result, argv[6];
  void* data = nullptr;
  argv[0] = Number(env, code);
  argv[1] = Number(env, a);
  argv[2] = Number(env, b);
  if (napi_create_buffer_copy(env, t->addr_len, t->addr, &data, &argv[3]) != napi_ok) napi_get_undefined(env, &argv[3]);
  argv[4] = Double(env, up);
  argv[5] = Double(env, static_cast<double>(NowMs() - t->sent_at));
  if (napi_get_reference_value(env, s->on_event, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok) {
    napi_make_callback(env, s->actx, recv, cb, 6, argv, &result);
    RaisePendingException(env);
  }
  napi_close_handle_scope(env, scope);
}

// The relay ended (relay_pair.cc Finish): out of the set, and JS told only if it must judge.
void OnEnd(void* owner, int32_t reason, double up, int32_t side, bool answered) {
  Tunnel* t = static_cast<Tunnel*>(owner);
  BareSet* s = t->set;
  t->relay = nullptr;
  Remove(t);
  if (!answered && !t->settled && reason == 2 && side == 0) {  // a reset from the server
    t->settled = true;
    Event(s, t, kServerClosed, 0, 0, up);
  }
  bool judge = false;
  if (!answered && !t->settled) {
    const bool failed = reason == 4 || reason == 5;
    judge = failed || NowMs() - t->sent_at >= s->gave_up_ms;
  }
  if (judge || (s->debug && reason != 0)) Event(s, t, kClosed, reason, judge ? 1 : 0, up);
  FreeTunnel(t);
}

void OnFin(void* owner, bool shut, double up) {
  Tunnel* t = static_cast<Tunnel*>(owner);
  if (t->settled) return;
  t->settled = true;
  Event(t->set, t, kServerClosed, shut ? 1 : 0, 0, up);
}

// Connected: the relay takes both sockets, the encoder and the first write.
void Relay(Tunnel* t, int fd, bool adopt) {
  BareSet* s = t->set;
  const int app = t->app_fd;
  t->app_fd = -1;
  Codec* enc = t->enc;
  t->enc = nullptr;
  if (adopt) PollAdopting(app);
  t->relay = RelayStartOwned(s->env, fd, app, s->master, s->key_len, enc, t->first.data(), t->first.size(),
                             s->idle_ms, OnEnd, OnFin, t);
  if (adopt) PollAdopting(-1);
  OPENSSL_cleanse(t->first.data(), t->first.size());
  std::vector<uint8_t>().swap(t->first);
  if (t->relay == nullptr) {  // both closed; JS says so at debug
    Remove(t);
    Event(s, t, kFail, 0, 2, 0);
    FreeTunnel(t);
  }
}

// The connect failed or timed out: the sockets closed, out of the set, JS logs it.
void Failed(Tunnel* t, int32_t err, int32_t why) {
  BareSet* s = t->set;
  PollEnd(&t->watch);
  if (t->fd >= 0) close(t->fd);
  t->fd = -1;
  if (t->app_fd >= 0) close(t->app_fd);
  t->app_fd = -1;
  Remove(t);
  Event(s, t, kFail, err, why, 0);
  FreeTunnel(t);
}

void OnWritable(void* target, uint32_t /*events*/) {
  Tunnel* t = static_cast<Tunnel*>(target);
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == EINPROGRESS || err == EALREADY) return;
  if (err != 0) return Failed(t, -err, 0);
  PollEnd(&t->watch);
  const int fd = t->fd;
  t->fd = -1;
  t->connect_deadline = 0;
  Relay(t, fd, false);
}

void OnTick(uv_timer_t* h) {
  BareSet* s = static_cast<BareSet*>(h->data);
  const uint64_t now = NowMs();
  // Copies: an event's JS may close the set (every tunnel freed) or start tunnels.
  std::vector<Tunnel*> timed_out, due;
  for (Tunnel* t : s->live) {
    if (t->relay == nullptr && t->connect_deadline != 0 && now >= t->connect_deadline) timed_out.push_back(t);
    else if (t->due_at != 0 && now >= t->due_at) due.push_back(t);
  }
  for (Tunnel* t : timed_out) {
    if (s->closed) return;
    Failed(t, 0, 1);
  }
  for (Tunnel* t : due) {
    // Still in the set: an event's JS can end tunnels only by closing the set (checked here).
    if (s->closed) return;
    if (t->relay == nullptr) {  // still connecting: the wait starts again (answer-watch due())
      t->due_at = now + s->no_answer_ms;
      continue;
    }
    t->due_at = 0;
    double up = 0;
    if (t->settled || RelayOwnedAnswered(t->relay, &up)) continue;
    t->settled = true;
    Event(s, t, kDue, 0, 0, up);
  }
}

// The scan's period: an eighth of the shortest wait, 10 ms..250 ms.
void Arm(BareSet* s) {
  if (s->period != 0) return;
  uint64_t shortest = s->timeout_ms < s->no_answer_ms ? s->timeout_ms : s->no_answer_ms;
  uint64_t period = shortest / 8;
  if (period < 10) period = 10;
  if (period > 250) period = 250;
  s->period = period;
  uv_timer_start(&s->timer, OnTick, period, period);
}

bool ProberTrigger(size_t len) { return len >= 160 && len <= 999 && (len % 16 == 2 || len % 16 == 9); }

void Cleanup(void* arg);

void CloseSet(BareSet* s) {
  if (s->closed) return;
  s->closed = true;  // no events from here
  while (!s->live.empty()) {
    Tunnel* t = s->live.back();
    if (t->relay != nullptr) {
      RelayStopOwned(t->relay);  // OnEnd removes and frees t
      // Not if the relay had stopped already (the env's teardown ran relay_pair.cc's hook
      // first): t is still here, with nothing left to call it back.
      if (s->live.empty() || s->live.back() != t) continue;
      t->relay = nullptr;
      Remove(t);
      FreeTunnel(t);
    } else {
      PollEnd(&t->watch);
      if (t->fd >= 0) close(t->fd);
      if (t->app_fd >= 0) close(t->app_fd);
      Remove(t);
      FreeTunnel(t);
    }
  }
  if (!s->salts.empty()) OPENSSL_cleanse(s->salts.data(), s->salts.size());
  std::vector<uint8_t>().swap(s->salts);
  s->salt_off = 0;
  OPENSSL_cleanse(s->master, sizeof(s->master));
  if (s->on_event != nullptr) napi_delete_reference(s->env, s->on_event);
  s->on_event = nullptr;
  if (s->actx != nullptr) napi_async_destroy(s->env, s->actx);
  s->actx = nullptr;
  if (s->hooked) napi_remove_env_cleanup_hook(s->env, Cleanup, s);
  s->hooked = false;
  uv_timer_stop(&s->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->timer), [](uv_handle_t* h) {
    BareSet* set = static_cast<BareSet*>(h->data);
    set->timer_open = false;
    MaybeFreeSet(set);
  });
}

void Cleanup(void* arg) {
  BareSet* s = static_cast<BareSet*>(arg);
  s->hooked = false;
  CloseSet(s);
}

void Finalize(napi_env /*env*/, void* data, void* /*hint*/) {
  BareSet* s = static_cast<BareSet*>(data);
  s->finalized = true;
  MaybeFreeSet(s);
}

}  // namespace

namespace {

bool TakeIn(BareSet* s, int fd, const uint8_t* addr, size_t addr_len, const uint8_t* data, size_t n, bool parked) {
  if (s == nullptr || s->closed || n == 0 || addr_len == 0 || addr_len > sizeof(Tunnel::addr)) return false;
  if (addr[0] == 3) {  // a name: ASCII only (JS decides the rest)
    for (size_t i = 2; i + 2 < addr_len; i++) {
      if (addr[i] >= 0x80) return false;
    }
  }
  const size_t plain = addr_len + n;
  const size_t first_len = s->key_len + plain + kChunkOverhead;
  // One chunk outside the prober's length trigger (shaping.ts oneChunkFirstWrite); else JS.
  if (plain > kMaxPayload || ProberTrigger(first_len)) return false;
  if (s->salts.size() - s->salt_off < s->key_len) return false;  // JS draws more meanwhile
  Tunnel* t = new (std::nothrow) Tunnel();
  if (t == nullptr) return false;
  t->set = s;
  memcpy(t->addr, addr, addr_len);
  t->addr_len = addr_len;
  const uint8_t* salt = s->salts.data() + s->salt_off;
  t->enc = CodecDerived(s->method, s->master, s->key_len, salt, s->key_len, 1);
  bool ok = t->enc != nullptr;
  if (ok) {
    t->first.resize(first_len);
    memcpy(t->first.data(), salt, s->key_len);
    uint8_t* body = t->first.data() + s->key_len;
    memcpy(body, addr, addr_len);  // sealed in place below (header || data, one chunk)
    memcpy(body + addr_len, data, n);
    std::vector<uint8_t> joined(body, body + plain);
    ok = CodecEncodedSize(t->enc, plain) == plain + kChunkOverhead && CodecEncodeTo(t->enc, joined.data(), plain, body);
    OPENSSL_cleanse(joined.data(), joined.size());
  }
  if (!ok) {
    FreeTunnel(t);
    return false;
  }
  // The salt is spent: never used again, whatever happens next.
  OPENSSL_cleanse(s->salts.data() + s->salt_off, s->key_len);
  s->salt_off += s->key_len;
  if (s->salt_off == s->salts.size()) {
    s->salts.clear();
    s->salt_off = 0;
  }
  int err = 0;
  const int sfd = TcpConnectStart(s->ip, s->port, &err);
  t->app_fd = fd;
  t->sent_at = NowMs();
  t->due_at = t->sent_at + s->no_answer_ms;
  t->index = s->live.size();
  s->live.push_back(t);
  s->started++;
  Arm(s);
  if (sfd < 0) {  // refused at once (EADDRNOTAVAIL, EMFILE...): the application's socket closed
    if (parked) PollUnpark();
    Failed(t, sfd == -2 ? -EINVAL : -err, 3);
    return true;
  }
  t->fd = sfd;
  if (s->at_once && Established(sfd)) {
    t->fd = -1;
    Relay(t, sfd, parked);
    if (parked) PollUnpark();  // not taken: out of the set before the fd is used elsewhere
    return true;
  }
  if (parked) PollUnpark();
  t->connect_deadline = t->sent_at + s->timeout_ms;
  if (!PollStart(s->env, &t->watch, sfd, EPOLLOUT, OnWritable, t)) Failed(t, -errno, 3);
  return true;
}

}  // namespace

bool BareTake(void* set, int fd, const uint8_t* addr, size_t addr_len, const uint8_t* data, size_t n, bool parked) {
  BareSet* s = static_cast<BareSet*>(set);
  if (s == nullptr || s->closed) return false;
  // The relay's first start on this thread makes N-API values (relay_pair.cc LoopFor).
  napi_handle_scope scope;
  if (napi_open_handle_scope(s->env, &scope) != napi_ok) return false;
  const bool took = TakeIn(s, fd, addr, addr_len, data, n, parked);
  napi_close_handle_scope(s->env, scope);
  return took;
}

napi_value BareTunnels(napi_env env, napi_callback_info info) {
  const char* usage =
      "bareTunnels(ip, port, timeoutMs, masterKey, method, idleMs, noAnswerMs, gaveUpMs, onEvent, atOnce, debug)";
  Args a(env, info);
  char ip[64];
  int32_t port = 0, method = -1;
  int64_t timeout = 0, idle = 0, no_answer = 0, gave_up = 0;
  const uint8_t* key = nullptr;
  size_t key_len = 0;
  bool at_once = false, debug = false;
  if (!a.Need(11, usage) || !a.String(0, ip, sizeof(ip)) || !a.Int32(1, &port) || port < 1 || port > 65535 ||
      !a.Index(2, &timeout) || timeout < 1 || !a.Bytes(3, &key, &key_len, usage) || key_len < 16 || key_len > 32 ||
      !a.Int32(4, &method) || method < 0 || method > 3 || !a.Index(5, &idle) || idle < 1 ||
      !a.Index(6, &no_answer) || no_answer < 1 || !a.Index(7, &gave_up) || !a.Function(8) ||
      !a.Boolean(9, &at_once) || !a.Boolean(10, &debug)) {
    Throw(env, usage);
    return nullptr;
  }
  BareSet* s = PollReady(env) ? new (std::nothrow) BareSet() : nullptr;
  napi_value name, ext;
  if (s == nullptr || napi_get_uv_event_loop(env, &s->uv) != napi_ok || s->uv == nullptr) {
    delete s;
    napi_throw_error(env, "ERR_LADDER_BARE", "cannot start the bare tunnels");
    return nullptr;
  }
  PinLibrary();
  s->env = env;
  memcpy(s->ip, ip, sizeof(ip));
  s->port = port;
  s->timeout_ms = static_cast<uint64_t>(timeout);
  s->idle_ms = static_cast<uint64_t>(idle);
  s->no_answer_ms = static_cast<uint64_t>(no_answer);
  s->gave_up_ms = static_cast<uint64_t>(gave_up);
  memcpy(s->master, key, key_len);
  s->key_len = key_len;
  s->method = method;
  s->at_once = at_once;
  s->debug = debug;
  uv_timer_init(s->uv, &s->timer);
  s->timer.data = s;
  s->timer_open = true;
  uv_unref(reinterpret_cast<uv_handle_t*>(&s->timer));
  if (napi_create_reference(env, a[8], 1, &s->on_event) != napi_ok ||
      napi_create_string_utf8(env, "ladder:bare", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, nullptr, name, &s->actx) != napi_ok ||
      napi_create_external(env, s, Finalize, nullptr, &ext) != napi_ok) {
    CloseSet(s);
    s->finalized = true;
    napi_throw_error(env, "ERR_LADDER_BARE", "cannot start the bare tunnels");
    return nullptr;
  }
  napi_type_tag_object(env, ext, &kBareTag);
  if (napi_add_env_cleanup_hook(env, Cleanup, s) == napi_ok) s->hooked = true;
  return ext;
}

void* BareSetOf(napi_env env, napi_value v) {
  bool ok = false;
  void* p = nullptr;
  if (napi_check_object_type_tag(env, v, &kBareTag, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, v, &p) != napi_ok) {
    return nullptr;
  }
  return p;
}

napi_value BareSalts(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* p = nullptr;
  const uint8_t* bytes = nullptr;
  size_t n = 0;
  if (!a.Need(2) || !a.Tagged(0, kBareTag, &p, "bareSalts(set, salts)") ||
      !a.Bytes(1, &bytes, &n, "bareSalts(set, salts)")) {
    return nullptr;
  }
  BareSet* s = static_cast<BareSet*>(p);
  if (s->closed) return Number(env, 0);
  if (n % s->key_len != 0) {
    Throw(env, "bareSalts: salts must be whole salts as long as the key");
    return nullptr;
  }
  s->salts.insert(s->salts.end(), bytes, bytes + n);
  return Number(env, static_cast<int32_t>((s->salts.size() - s->salt_off) / s->key_len));
}

napi_value BareTakeJs(napi_env env, napi_callback_info info) {
  const char* usage = "bareTake(set, fd, request, addrLength)";
  Args a(env, info);
  void* p = nullptr;
  int32_t fd = -1, alen = 0;
  const uint8_t* req = nullptr;
  size_t n = 0;
  if (!a.Need(4, usage) || !a.Tagged(0, kBareTag, &p, usage) || !a.Int32(1, &fd) || fd < 0 ||
      !a.Bytes(2, &req, &n, usage) || !a.Int32(3, &alen) || alen < 1 || static_cast<size_t>(alen) >= n) {
    Throw(env, usage);
    return nullptr;
  }
  return Bool(env, BareTake(p, fd, req, static_cast<size_t>(alen), req + alen, n - static_cast<size_t>(alen), false));
}

napi_value BareClose(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* p = nullptr;
  if (!a.Need(1) || !a.Tagged(0, kBareTag, &p, "bareClose(set)")) return nullptr;
  CloseSet(static_cast<BareSet*>(p));
  return nullptr;
}

napi_value BareCount(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* p = nullptr;
  if (!a.Need(1) || !a.Tagged(0, kBareTag, &p, "bareCount(set)")) return nullptr;
  const BareSet* s = static_cast<BareSet*>(p);
  napi_value arr;
  napi_create_array_with_length(env, 3, &arr);
  napi_set_element(env, arr, 0, Number(env, static_cast<int32_t>(s->live.size())));
  napi_set_element(env, arr, 1, Double(env, s->started));
  napi_set_element(env, arr, 2, Number(env, static_cast<int32_t>((s->salts.size() - s->salt_off) / s->key_len)));
  return arr;
}

#endif  // __linux__

}  // namespace ladder
