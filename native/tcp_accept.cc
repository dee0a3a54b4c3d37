// Ladder native addon: accepting raw TCP connections and reading them until the hand-off to the
// native relay (Linux), so a connection on the server's TCP port never becomes a net.Socket.
// JS (src/transport/native-stream.ts) keeps every decision; this accepts, reads and closes.
//
//   acceptListen(fd, onConn, onEvent, waitMs?, maxWaiting?, clientSalts?, serverSalts?, allowPrivate?,
//                names?) -> listener
//       fd: a listening TCP socket. It is dup()ed here (the caller closes its own, e.g. the
//       net.Server that made it); the listener owns the duplicate and closes it at acceptClose
//       or when the thread's env goes away. The duplicate is polled on this thread's loop; each
//       wake-up accepts (accept4, non-blocking, close-on-exec) at most 32 connections, sets
//       TCP_NODELAY and reads once (non-blocking) what already arrived, then calls
//         onConn(id, first, code, peer, ageMs) once per connection: id names it in the calls below;
//         first: a Buffer of what was read, or undefined; code 0, 1 (the peer already ended:
//         EOF after first) or a negative errno (the read failed); peer: its address as text
//         ('' when unknown); ageMs: milliseconds since the accept. With waitMs > 0, a connection
//         whose first read finds nothing is not handed to JS yet: the addon waits for its first
//         bytes (or EOF, or a read error) and calls onConn then, or with first undefined and code 0
//         once waitMs have passed with nothing read (JS's idle timer then sees a connection silent
//         since ageMs ago): one JS call per connection instead of two. Without waitMs (or 0),
//         onConn comes at the accept. After onConn returns, a connection that was neither paused, ended
//         by the peer, closed nor released is polled for more:
//         onEvent(id, chunk, code): a Buffer (code 0), or undefined with code 1 (EOF) or a
//         negative errno (the read failed); after either, no more events come.
//       Accept errors: EAGAIN ends the wake-up; EINTR and the per-connection errors accept(2)
//       lists (ECONNABORTED, EPROTO...) are skipped; anything else (EMFILE, ENFILE, ENOBUFS,
//       ENOMEM...) stops polling the listener for a back-off of 50 ms, doubling to 1 s while it
//       keeps failing (the connections wait in the backlog; nothing spins). The connections'
//       reads share the thread's epoll set (thread_poll.h) with its connects and relays.
//       maxWaiting (> 0): at most that many connections wait for their first bytes; an accept
//       beyond it hands the oldest waiting one to JS at once (as when its wait is over, with its
//       age), so JS's caps on pending connections (src/server/pending-limits.ts) see silent ones.
//       clientSalts, serverSalts (Uint8Arrays over the whole SharedArrayBuffers of the port's SIP004
//       replay filters, src/server/workers/shared-salts.ts) and allowPrivate (boolean): the
//       server's lean path (src/server/lean-path.ts) is on, and the trial (acceptKeys) makes its
//       checks here; see `checked` below. The listener keeps references to both until it is freed.
//       names (boolean, with the filters): the lean path dials name targets too (the server's
//       name cache, src/server/names.ts), so their checks are made here as well (`checked` 3).
//   acceptKeys(listener, methods?, keys?)
//       The port's SIP004 keys for a trial at the accept (the server's LADDER_ACCEPT_TRIAL):
//       methods an Int32Array (0..3, as create() takes them), keys the master keys (Uint8Array,
//       each as long as its method's key); both omitted: no trial (the default). With keys, a
//       connection whose first read holds at least every key's salt + sealed length chunk is
//       tried against them in order (sip004Open's test, stream_codec.cc) before onConn, which
//       then gets four more arguments: trial, the index of the key whose tag verified (-1: none
//       did); and for that key codec (its decoder, having read the length chunk and then the rest
//       of first), info (the decoder's Int32Array state, as decode() writes it) and after: the
//       plaintext of the chunks the rest of first completed (a Buffer), or a number: 1 a chunk
//       of the rest failed to open, 2 a length was invalid (info[3]; the length chunk's own
//       invalid length: codec and info undefined). Replaces the list of an earlier call.
//       With the filters of acceptListen, onConn gets a tenth argument, checked: when the key
//       verified, its plaintext `after` came out and the key's secret is no other key's, the
//       lean path's checks in its order: the target an IPv4 or IPv6 literal whole in `after`,
//       its port not 0, not private (private_rule.h) unless allowPrivate, the salt not in the
//       server-salt filter, and then added to the client-salt filter unless there already. 1:
//       all passed (the salt is in the client filter now; JS must serve the connection on the
//       lean path), 2: one refused (nothing changed; JS's full path decides), 0: not checked
//       (a lock was busy - C++ never waits for one - or no filters: JS checks as without), 3:
//       with `names`, the same as 1 for a name target (a domain whole in `after`, not empty, its
//       port not 0, not one of the UDP-over-TCP and Mux.Cool names JS serves otherwise: those
//       are 2); the private rule is JS's, on the name's addresses. Without `names` a name is 2.
//   acceptClose(listener)          stops accepting and closes the listener's socket; accepted
//                                  connections live on (those still waiting for their first bytes
//                                  are handed to onConn first). Idempotent.
//   acceptPending(listener) -> n   connections accepted and waiting for their first bytes
//   connRead(id, on)               on: poll for reads (resume); false: stop (pause)
//   connEnd(id)                    shutdown(SHUT_WR) (a FIN after anything written: nothing is)
//   connClose(id)                  stops polling and closes the socket; no event after it
//   connRelease(id) -> fd          stops polling and gives the socket to the caller (-1 if the
//                                  id is not live); no event after it
//   acceptLive() -> number         connections accepted on this thread, not yet closed or
//                                  released (tests: nothing leaks)
// A stale id (closed, released) is ignored by every call. JS may close or release a connection
// inside either callback.
#include <cerrno>
#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#if defined(__linux__)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#endif

#include "exports.h"
#include "napi_args.h"
#include "private_rule.h"
#include "shared_salts.h"
#include "stream_codec.h"
#include "tcp_parts.h"
#include "thread_poll.h"

namespace ladder {

#if defined(__linux__)

namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr int kAcceptBatch = 32;
constexpr uint64_t kBackoffMinMs = 50;
constexpr uint64_t kBackoffMaxMs = 1000;
constexpr uint32_t kSlotBits = 20;  // ids: generation * 2^20 + slot
constexpr uint32_t kMaxSlots = 1u << kSlotBits;
constexpr size_t kLenChunk = 2 + kTag;  // a sealed SIP004 length
// The trial's plaintext of the rest of a first read: at most the read plus one element.
constexpr size_t kPlainSize = kReadSize + 0x10000 + 64;

const napi_type_tag kListenerTag = {0x6c61646465724143ULL, 0x43455054494e0001ULL};

struct Thread;
struct Listener;

struct Conn {
  Listener* ls = nullptr;
  int fd = -1;
  uint32_t slot = 0;
  uint32_t gen = 0;
  PollWatch watch;       // EPOLLIN in the thread's epoll set while read
  bool polling = false;  // in the thread's epoll set
  bool paused = false;
  bool ended = false;    // EOF or a read error: no more reads
  bool closed = false;   // closed or released: waiting to be freed
  bool busy = false;     // inside onConn: freed by the accept loop after it returns
  bool waiting = false;  // not handed to JS yet: in the listener's wait list (oldest first)
  Conn* prev = nullptr;  // the wait list
  Conn* next = nullptr;
  uint64_t accepted = 0;  // uv_now at the accept
  char peer[INET6_ADDRSTRLEN] = "";
};

// One SIP004 key of the port's trial (acceptKeys).
struct TrialKey {
  int method = 0;
  size_t len = 0;  // the key's length, and so the salt's
  bool shared = false;  // another key of the list has the same method and secret
  uint8_t key[32] = {0};
};

// The keys that last verified for a peer address (its hash), most recent first, tried first for
// that peer next time, as the JS trial tries a client IP's recent keys first (up to 4: users
// behind one address): a client with one key of many costs one trial. Only the order depends on it.
constexpr int kRecentKeys = 4;
struct Recent {
  uint64_t peer = 0;
  uint32_t key[kRecentKeys] = {0, 0, 0, 0};  // index + 1; 0: none
};
constexpr size_t kRecentSlots = 4096;

struct Listener {
  std::vector<TrialKey> keys;  // acceptKeys: tried at the accept when non-empty
  std::vector<Recent> recent;  // by peer hash: kRecentSlots from the first trial on (idle: none)
  SharedSalts client_salts;    // acceptListen's filters: the lean path's checks when both are set
  SharedSalts server_salts;
  napi_ref salts_refs[2] = {nullptr, nullptr};
  bool checks = false;
  bool allow_private = false;
  bool names = false;          // name targets are checked too (`checked` 3)
  size_t probe = 0;            // the longest salt + sealed length among them
  Thread* t = nullptr;
  napi_env env = nullptr;
  uv_poll_t poll;
  uv_timer_t timer;
  uv_timer_t wait_timer;  // the oldest waiting connection's deadline
  uint64_t wait_ms = 0;   // 0: onConn at the accept
  uint32_t max_waiting = 0;  // > 0: the wait list's bound (acceptListen's maxWaiting)
  Conn* wait_head = nullptr;
  Conn* wait_tail = nullptr;
  uint32_t waiting = 0;
  int fd = -1;
  napi_ref on_conn = nullptr;
  napi_ref on_event = nullptr;
  napi_ref self = nullptr;  // the JS handle, kept while open (a running listener is not collected)
  uint32_t conns = 0;        // live connections using on_event
  int handles = 0;           // poll and timers not yet closed
  uint64_t backoff = 0;
  bool open = false;
  bool finalized = false;
};

// What one thread's connections share: the read buffer, the id table and the async context. Their
// reads are in the thread's epoll set (thread_poll.h): a connection costs one epoll_ctl ADD when
// it is read and one DEL when it stops, where a uv_poll of its own costs six and an ioctl.
struct Thread {
  napi_env env = nullptr;
  uv_loop_t* uv = nullptr;
  uint8_t* scratch = nullptr;
  uint8_t* plain = nullptr;  // the trial's decoded rest of a first read (kPlainSize), when keys are set
  napi_async_context actx = nullptr;
  std::vector<Conn*> slots;
  std::vector<uint32_t> free_slots;
  uint32_t live = 0;
  uint32_t next_gen = 1;
  std::vector<Listener*> listeners;
};

thread_local Thread* t_thread = nullptr;

double IdOf(const Conn* c) { return static_cast<double>(c->gen) * kMaxSlots + c->slot; }

Conn* Lookup(Thread* t, int64_t id) {
  if (t == nullptr || id < 0) return nullptr;
  const uint32_t slot = static_cast<uint32_t>(id & (kMaxSlots - 1));
  const uint64_t gen = static_cast<uint64_t>(id) >> kSlotBits;
  if (slot >= t->slots.size()) return nullptr;
  Conn* c = t->slots[slot];
  return c != nullptr && c->gen == gen && !c->closed ? c : nullptr;
}

void MaybeFreeListener(Listener* ls) {
  if (ls->open || ls->conns > 0) return;
  for (TrialKey& k : ls->keys) OPENSSL_cleanse(k.key, sizeof(k.key));
  ls->keys.clear();
  ls->recent.clear();
  if (ls->on_conn != nullptr) napi_delete_reference(ls->env, ls->on_conn);
  if (ls->on_event != nullptr) napi_delete_reference(ls->env, ls->on_event);
  ls->on_conn = ls->on_event = nullptr;
  ls->checks = false;
  for (napi_ref& r : ls->salts_refs) {
    if (r != nullptr) napi_delete_reference(ls->env, r);
    r = nullptr;
  }
  if (ls->handles == 0 && ls->finalized) delete ls;
}

void OnListenerHandleClosed(uv_handle_t* h) {
  Listener* ls = static_cast<Listener*>(h->data);
  ls->handles--;
  MaybeFreeListener(ls);
}

void ListenerFinalize(napi_env /*env*/, void* data, void* /*hint*/) {
  Listener* ls = static_cast<Listener*>(data);
  ls->finalized = true;  // an open listener holds its own handle, so it was closed already
  MaybeFreeListener(ls);
}

void HandWaiting(Listener* ls, bool all);

// deliver: hand the connections still waiting for their first bytes to JS first (from JS);
// otherwise (the env is going away) they are closed with the rest by the caller.
void CloseListener(Listener* ls, bool deliver) {
  if (!ls->open) return;
  if (deliver) HandWaiting(ls, true);
  if (!ls->open) return;  // closed by JS inside onConn
  ls->open = false;
  Thread* t = ls->t;
  for (size_t i = 0; i < t->listeners.size(); i++) {
    if (t->listeners[i] == ls) {
      t->listeners[i] = t->listeners.back();
      t->listeners.pop_back();
      break;
    }
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&ls->poll), OnListenerHandleClosed);  // stops it at once
  uv_close(reinterpret_cast<uv_handle_t*>(&ls->timer), OnListenerHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&ls->wait_timer), OnListenerHandleClosed);
  close(ls->fd);
  ls->fd = -1;
  if (ls->self != nullptr) napi_delete_reference(ls->env, ls->self);
  ls->self = nullptr;
  MaybeFreeListener(ls);
}

// Reads of c on (in the thread's epoll set, level-triggered) or off.
void SetPolling(Conn* c, bool on) {
  if (c->polling == on || (on && c->closed)) return;
  if (!PollSet(&c->watch, on ? uint32_t{EPOLLIN} : 0u) && on) return;
  c->polling = on;
}

void Unwait(Conn* c) {
  if (!c->waiting) return;
  c->waiting = false;
  Listener* ls = c->ls;
  (c->prev != nullptr ? c->prev->next : ls->wait_head) = c->next;
  (c->next != nullptr ? c->next->prev : ls->wait_tail) = c->prev;
  c->prev = c->next = nullptr;
  ls->waiting--;
}

// Leaves the id table and stops polling; the socket is closed unless `keep`. The Conn is freed
// now, or by the accept loop when it is inside onConn.
void Retire(Conn* c, bool keep) {
  if (c->closed) return;
  c->closed = true;
  Unwait(c);
  Listener* ls = c->ls;
  Thread* t = ls->t;
  t->slots[c->slot] = nullptr;
  t->free_slots.push_back(c->slot);
  t->live--;
  SetPolling(c, false);
  PollEnd(&c->watch);  // out of the epoll set before the fd is closed or handed on
  if (!keep && c->fd >= 0) close(c->fd);
  c->fd = -1;
  ls->conns--;
  MaybeFreeListener(ls);
  if (!c->busy) delete c;
}

// Calls fn(argv) through napi_make_callback (microtasks and ticks run after it); an exception
// goes to the process's uncaught-exception handling, as one from an event listener would.
void CallJs(Thread* t, napi_ref fn, size_t argc, napi_value* argv) {
  napi_env env = t->env;
  napi_value cb, recv, result;
  if (fn == nullptr || napi_get_reference_value(env, fn, &cb) != napi_ok || napi_get_global(env, &recv) != napi_ok) {
    return;
  }
  napi_make_callback(env, t->actx, recv, cb, argc, argv, &result);
  RaisePendingException(env);
}

// One non-blocking read: > 0 bytes in the thread's buffer, 0 EOF, -errno (-EAGAIN: nothing yet).
ssize_t ReadOnce(Conn* c) {
  ssize_t n;
  do n = recv(c->fd, c->ls->t->scratch, kReadSize, 0);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

// What a read gives JS: the chunk (or undefined) and the code (0, 1 EOF, -errno).
void ReadResult(napi_env env, Conn* c, ssize_t n, napi_value* chunk, int32_t* code) {
  napi_get_undefined(env, chunk);
  *code = 0;
  if (n > 0) {
    void* data = nullptr;
    if (napi_create_buffer_copy(env, static_cast<size_t>(n), c->ls->t->scratch, &data, chunk) != napi_ok) {
      *code = -ENOMEM;
      c->ended = true;
    }
  } else if (n == 0) {
    *code = 1;
    c->ended = true;
  } else if (n != -EAGAIN && n != -EWOULDBLOCK) {
    *code = static_cast<int32_t>(n);
    c->ended = true;
  }
}

// One connection the epoll set reported (readable, EOF or an error: recv says which).
void OnConnReadable(Thread* t, Conn* c) {
  const ssize_t n = ReadOnce(c);
  if (n == -EAGAIN || n == -EWOULDBLOCK) return;
  napi_env env = t->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value argv[3];
  int32_t code = 0;
  ReadResult(env, c, n, &argv[1], &code);
  if (c->ended) SetPolling(c, false);
  argv[0] = Double(env, IdOf(c));
  argv[2] = Number(env, code);
  CallJs(t, c->ls->on_event, 3, argv);  // may close or release c (and free it): not used after
  napi_close_handle_scope(env, scope);
}

void Hand(Conn* c, ssize_t n);

// The Int32Array of a decoder's state (sip004Open's info).
napi_value InfoArray(napi_env env, const int32_t* info) {
  void* data = nullptr;
  napi_value ab, ta;
  if (napi_create_arraybuffer(env, 4 * sizeof(int32_t), &data, &ab) != napi_ok ||
      napi_create_typedarray(env, napi_int32_array, 4, ab, 0, &ta) != napi_ok) {
    return nullptr;
  }
  memcpy(data, info, 4 * sizeof(int32_t));
  return ta;
}

// The names a SIP004 target may carry that are no destination (src/protocol/uot.ts UOT_MAGIC_V1,
// UOT_MAGIC_V2; src/server/inner-mux.ts MUX_COOL_NAME): JS serves them on its full path.
// strncasecmp folds ASCII only; JS compares toLowerCase() of the UTF-8 name, which also folds
// U+212A KELVIN SIGN to 'k' (the one non-ASCII character that lowercases to ASCII). The two
// agree only while no name here has a 'k': a name with one needs an ASCII-only fold in JS.
bool SpecialName(const uint8_t* name, size_t n) {
  static const char* const kNames[] = {"sp.v2.udp-over-tcp.arpa", "sp.udp-over-tcp.arpa", "v1.mux.cool"};
  for (const char* want : kNames) {
    if (strlen(want) == n && strncasecmp(reinterpret_cast<const char*>(name), want, n) == 0) return true;
  }
  return false;
}

// The lean path's checks (acceptListen's filters) of key k's connection whose first read starts
// with `salt` and whose plaintext after the length chunk is plain[0, len): onConn's `checked`.
int32_t LeanChecks(const Listener* ls, const TrialKey& k, const uint8_t* salt, const uint8_t* plain, size_t len) {
  if (k.shared) return 0;  // the JS walk names the key (accept-trial.ts keyAt): JS decides
  size_t hl;
  const bool name = len >= 2 && plain[0] == 3;
  if (len >= 7 && plain[0] == 1) hl = 7;
  else if (len >= 19 && plain[0] == 4) hl = 19;
  else if (name && ls->names && plain[1] > 0 && len >= 4u + plain[1] && !SpecialName(plain + 2, plain[1]))
    hl = 4u + plain[1];
  else return 2;  // a name JS serves, or an address the first read does not hold whole
  if ((plain[hl - 2] | plain[hl - 1]) == 0) return 2;
  if (!name && !ls->allow_private && (hl == 7 ? IsPrivate4(plain + 1) : IsPrivate6(plain + 1))) return 2;
  // Busy (a lock held): 0, JS checks; seen: 2, refused.
  const SaltResult server = SharedSaltsHas(ls->server_salts, salt, k.len);
  if (server != SaltResult::kNew) return server == SaltResult::kSeen ? 2 : 0;
  const SaltResult client = SharedSaltsCheckAndAdd(ls->client_salts, salt, k.len);
  return client == SaltResult::kNew ? (name ? 3 : 1) : client == SaltResult::kSeen ? 2 : 0;
}

// acceptKeys' trial of the first read (n bytes in the scratch buffer, at least ls->probe): out
// receives onConn's trial, codec, info, after and checked (`lean`: the read's code was 0, so JS's
// lean path may take it). False when it could not be done (out of memory: JS then tries the keys
// itself).
bool Trial(Thread* t, Listener* ls, const char* peer, size_t n, bool lean, napi_value* out) {
  napi_env env = t->env;
  const uint8_t* head = t->scratch;
  int32_t info[4] = {0, 0, 0, 0};
  napi_get_undefined(env, &out[1]);
  out[2] = out[3] = out[1];
  bool done = true;  // false: broke off (out of memory)
  out[0] = Number(env, -1);
  int32_t checked = 0;
  uint64_t h = 1469598103934665603ULL;  // FNV-1a of the peer's address text
  for (const char* p = peer; *p != '\0'; p++) h = (h ^ static_cast<uint8_t>(*p)) * 1099511628211ULL;
  const size_t count = ls->keys.size();
  // One key has no order to keep: the table (96 KiB a listener) is made only for several.
  Recent single;
  if (count > 1 && ls->recent.empty()) ls->recent.resize(kRecentSlots);
  Recent& r = count > 1 ? ls->recent[h % kRecentSlots] : single;
  size_t first[kRecentKeys];
  size_t nfirst = 0;
  for (uint32_t k : r.key) {
    if (r.peer == h && k > 0 && k <= count) first[nfirst++] = k - 1;  // another peer's slot: none
  }
  for (size_t j = 0; j < nfirst + count; j++) {
    // The peer's recent keys first, then the others in order.
    const size_t i = j < nfirst ? first[j] : j - nfirst;
    if (j >= nfirst && std::find(first, first + nfirst, i) != first + nfirst) continue;
    const TrialKey& k = ls->keys[i];
    int32_t status = kOk;
    napi_value codec = Sip004Trial(env, k.method, k.key, head, info, &status);
    if (status == kErrCipher) continue;
    // i + 1 to the front of the peer's list (dropping it from further back, or the oldest).
    if (r.peer != h) r = Recent();
    uint32_t* end = std::find(r.key, r.key + kRecentKeys - 1, static_cast<uint32_t>(i + 1));
    std::move_backward(r.key, end, end + 1);
    r.key[0] = static_cast<uint32_t>(i + 1);
    r.peer = h;
    out[0] = Number(env, static_cast<int32_t>(i));
    if (status == kErrPayloadSize) {
      out[3] = Number(env, kErrPayloadSize);
      break;
    }
    Codec* c = codec == nullptr ? nullptr : CodecOf(env, codec, 0);
    const size_t probe = k.len + kLenChunk;
    size_t len = 0;
    const int32_t st = c == nullptr ? -1 : CodecDecodeTo(env, c, head + probe, n - probe, t->plain, &len, info);
    out[1] = codec;
    if (st > 0) out[3] = Number(env, st);
    else if (st < 0 || napi_create_buffer_copy(env, len, t->plain, nullptr, &out[3]) != napi_ok) done = false;
    if (done && (out[2] = InfoArray(env, info)) == nullptr) done = false;
    // Last, once nothing can fail: what the checks add, JS's lean path then serves.
    if (done && st == 0 && lean && ls->checks) checked = LeanChecks(ls, k, head, t->plain, len);
    break;
  }
  out[4] = Number(env, checked);
  if (done) return true;
  bool pending = false;
  napi_value err;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) napi_get_and_clear_last_exception(env, &err);
  return false;
}

// The epoll set reports c (a connection closed by JS meanwhile is never reported: its watch ended).
void OnConnEvent(void* target, uint32_t /*events*/) {
  Conn* c = static_cast<Conn*>(target);
  if (!c->polling) return;
  if (!c->waiting) return OnConnReadable(c->ls->t, c);
  const ssize_t n = ReadOnce(c);  // the first bytes (or EOF, an error) of a waiting connection
  if (n == -EAGAIN || n == -EWOULDBLOCK) return;
  Unwait(c);
  Hand(c, n);
}

void StartBackoff(Listener* ls);
void OnListen(uv_poll_t* h, int status, int events);

void OnBackoff(uv_timer_t* timer) {
  Listener* ls = static_cast<Listener*>(timer->data);
  if (ls->open) uv_poll_start(&ls->poll, UV_READABLE, OnListen);
}

// onConn for c with its first read `n` (> 0 bytes in the scratch buffer, 0 EOF, -errno; -EAGAIN:
// nothing, the wait is over). Then c is polled unless it was paused, ended, closed or released.
void Hand(Conn* c, ssize_t n) {
  Listener* ls = c->ls;
  Thread* t = ls->t;
  napi_env env = t->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    Retire(c, false);
    return;
  }
  napi_value argv[10];
  int32_t code = 0;
  ReadResult(env, c, n, &argv[1], &code);
  argv[0] = Double(env, IdOf(c));
  argv[2] = Number(env, code);
  napi_create_string_utf8(env, c->peer, NAPI_AUTO_LENGTH, &argv[3]);
  const uint64_t now = uv_now(t->uv);
  argv[4] = Double(env, static_cast<double>(now > c->accepted ? now - c->accepted : 0));
  const size_t argc = n > 0 && !ls->keys.empty() && static_cast<size_t>(n) >= ls->probe &&
                              Trial(t, ls, c->peer, static_cast<size_t>(n), code == 0, argv + 5)
                          ? 10
                          : 5;
  c->busy = true;
  CallJs(t, ls->on_conn, argc, argv);
  c->busy = false;
  napi_close_handle_scope(env, scope);
  if (c->closed) {
    delete c;
  } else {
    SetPolling(c, !c->paused && !c->ended);
  }
}

void OnWait(uv_timer_t* timer);

// Hands the waiting connections to JS: those whose wait is over, or all of them.
void HandWaiting(Listener* ls, bool all) {
  // Bounded: each turn takes one connection off the list (JS cannot add to it).
  while (ls->wait_head != nullptr) {
    Conn* c = ls->wait_head;
    const uint64_t now = uv_now(ls->t->uv);
    if (!all && c->accepted + ls->wait_ms > now) {
      if (ls->open) uv_timer_start(&ls->wait_timer, OnWait, c->accepted + ls->wait_ms - now, 0);
      return;
    }
    Unwait(c);
    Hand(c, -EAGAIN);
  }
}

void OnWait(uv_timer_t* timer) { HandWaiting(static_cast<Listener*>(timer->data), false); }

// One accepted socket: a slot and the first read; then one JS call, now or (waitMs) once its
// first bytes came. False when the listener closed.
bool Deliver(Listener* ls, int fd, const sockaddr_storage& ss) {
  Thread* t = ls->t;
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  Conn* c = new (std::nothrow) Conn();
  uint32_t slot;
  if (!t->free_slots.empty()) {
    slot = t->free_slots.back();
  } else if (t->slots.size() < kMaxSlots) {
    slot = static_cast<uint32_t>(t->slots.size());
  } else {
    slot = kMaxSlots;
  }
  // Known to the epoll set (no system call: SetPolling puts it in); fails only out of memory.
  if (c == nullptr || slot == kMaxSlots || !PollStart(t->env, &c->watch, fd, 0, OnConnEvent, c)) {
    delete c;
    close(fd);  // out of memory or a million connections on one thread: refuse this one
    return true;
  }
  if (!t->free_slots.empty()) t->free_slots.pop_back();
  else t->slots.push_back(nullptr);
  c->ls = ls;
  c->fd = fd;
  c->slot = slot;
  c->gen = t->next_gen++ & 0xFFFFFFFu;  // ids stay below 2^48 (exact as JS numbers)
  c->accepted = uv_now(t->uv);
  t->slots[slot] = c;
  t->live++;
  ls->conns++;
  if (ss.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, c->peer, sizeof(c->peer));
  } else if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, c->peer, sizeof(c->peer));
  }
  const ssize_t n = ReadOnce(c);
  if (ls->wait_ms > 0 && (n == -EAGAIN || n == -EWOULDBLOCK)) {
    // Nothing yet: wait for the first bytes here (oldest first in the list: one timer).
    c->waiting = true;
    c->prev = ls->wait_tail;
    (ls->wait_tail != nullptr ? ls->wait_tail->next : ls->wait_head) = c;
    ls->wait_tail = c;
    if (ls->waiting++ == 0) uv_timer_start(&ls->wait_timer, OnWait, ls->wait_ms, 0);
    SetPolling(c, true);
    if (ls->max_waiting == 0 || ls->waiting <= ls->max_waiting) return true;
    Conn* oldest = ls->wait_head;  // over the bound: the oldest's wait is over now
    Unwait(oldest);
    Hand(oldest, -EAGAIN);
    return ls->open;
  }
  Hand(c, n);
  return ls->open;
}

void OnListen(uv_poll_t* h, int status, int /*events*/) {
  Listener* ls = static_cast<Listener*>(h->data);
  if (!ls->open) return;
  (void)status;  // an error shows as accept's errno below
  for (int i = 0; i < kAcceptBatch; i++) {
    sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    const int fd = accept4(ls->fd, reinterpret_cast<sockaddr*>(&ss), &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) break;
      // This connection's own failure (accept(2)): the next one may be fine.
      if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == ENETDOWN || e == ENOPROTOOPT || e == EHOSTDOWN ||
          e == ENONET || e == EHOSTUNREACH || e == EOPNOTSUPP || e == ENETUNREACH || e == EPERM) {
        continue;
      }
      StartBackoff(ls);  // EMFILE, ENFILE, ENOBUFS, ENOMEM...: try again later
      return;
    }
    ls->backoff = 0;
    if (!Deliver(ls, fd, ss)) return;
  }
}

void StartBackoff(Listener* ls) {
  ls->backoff = ls->backoff == 0 ? kBackoffMinMs : ls->backoff * 2;
  if (ls->backoff > kBackoffMaxMs) ls->backoff = kBackoffMaxMs;
  uv_poll_stop(&ls->poll);
  uv_timer_start(&ls->timer, OnBackoff, ls->backoff, 0);
}

// The env is going away (worker exit): close every listener and connection, no JS calls.
void Cleanup(void* arg) {
  Thread* t = static_cast<Thread*>(arg);
  while (!t->listeners.empty()) CloseListener(t->listeners.back(), false);
  for (Conn* c : t->slots) {
    if (c != nullptr) Retire(c, false);
  }
  if (t->actx != nullptr) napi_async_destroy(t->env, t->actx);
  free(t->scratch);
  free(t->plain);
  t->scratch = t->plain = nullptr;
  if (t_thread == t) t_thread = nullptr;
  delete t;
}

Thread* ThreadFor(napi_env env) {
  PinLibrary();  // the poll handles' close callbacks may run after the env that loaded us
  if (t_thread != nullptr) return t_thread->env == env ? t_thread : nullptr;
  Thread* t = PollReady(env) ? new (std::nothrow) Thread() : nullptr;  // the set's hook before ours
  napi_value name;
  if (t == nullptr || napi_get_uv_event_loop(env, &t->uv) != napi_ok || t->uv == nullptr ||
      (t->scratch = static_cast<uint8_t*>(malloc(kReadSize))) == nullptr ||
      napi_create_string_utf8(env, "ladder:accept", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, nullptr, name, &t->actx) != napi_ok) {
    if (t != nullptr) {
      if (t->actx != nullptr) napi_async_destroy(env, t->actx);
      free(t->scratch);
    }
    delete t;
    return nullptr;
  }
  t->env = env;
  if (napi_add_env_cleanup_hook(env, Cleanup, t) != napi_ok) {
    napi_async_destroy(env, t->actx);
    free(t->scratch);
    delete t;
    return nullptr;
  }
  t_thread = t;
  return t;
}

// The connection named by argument 0, or nullptr (stale ids included; a non-id throws).
Conn* ConnArg(const Args& a, const char* usage, bool* ok) {
  int64_t id = -1;
  *ok = a.Need(1) && a.Index(0, &id);
  if (!*ok) {
    Throw(a.env(), usage);
    return nullptr;
  }
  Thread* t = t_thread;
  return t != nullptr && t->env == a.env() ? Lookup(t, id) : nullptr;
}

}  // namespace

napi_value AcceptListen(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int32_t fd = -1;
  int64_t wait_ms = 0, max_waiting = 0;
  if (!a.Need(3) || !a.Int32(0, &fd) || fd < 0 || !a.Function(1) || !a.Function(2) ||
      (a.Has(3) && !a.Undefined(3) && !a.Index(3, &wait_ms)) ||
      (a.Has(4) && !a.Undefined(4) && (!a.Index(4, &max_waiting) || max_waiting > UINT32_MAX))) {
    Throw(env, "acceptListen(fd >= 0, onConn, onEvent, waitMs >= 0?, maxWaiting >= 0?, ...)");
    return nullptr;
  }
  // The lean path's filters: both, each an untimed SharedSaltFilter's buffer, or none.
  SharedSalts salts[2];
  bool checks = a.Has(6) && !a.Undefined(5) && !a.Undefined(6);
  for (size_t i = 0; checks && i < 2; i++) checks = SharedSaltsFrom(env, a[5 + i], &salts[i]);
  bool allow_private = false;
  if (checks && (!a.Has(7) || !a.Boolean(7, &allow_private))) checks = false;
  bool names = false;
  if (checks && a.Has(8) && !a.Undefined(8) && !a.Boolean(8, &names)) checks = false;
  Thread* t = ThreadFor(env);
  Listener* ls = t == nullptr ? nullptr : new (std::nothrow) Listener();
  if (ls == nullptr) {
    napi_throw_error(env, "ERR_LADDER_ACCEPT", "cannot accept on this thread");
    return nullptr;
  }
  ls->t = t;
  ls->env = env;
  ls->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  napi_value ext;
  if (ls->fd < 0 || napi_create_external(env, ls, ListenerFinalize, nullptr, &ext) != napi_ok) {
    if (ls->fd >= 0) close(ls->fd);
    delete ls;
    napi_throw_error(env, "ERR_LADDER_ACCEPT", "acceptListen: cannot duplicate the socket");
    return nullptr;
  }
  // From here the finalizer frees ls (once closed and its handles are).
  if (uv_poll_init_socket(t->uv, &ls->poll, ls->fd) != 0) {
    close(ls->fd);
    ls->fd = -1;
    napi_throw_error(env, "ERR_LADDER_ACCEPT", "acceptListen: cannot poll the socket");
    return nullptr;
  }
  uv_timer_init(t->uv, &ls->timer);
  uv_timer_init(t->uv, &ls->wait_timer);
  uv_unref(reinterpret_cast<uv_handle_t*>(&ls->wait_timer));  // as JS's idle timers are
  ls->poll.data = ls;
  ls->timer.data = ls;
  ls->wait_timer.data = ls;
  ls->wait_ms = static_cast<uint64_t>(wait_ms);
  ls->max_waiting = static_cast<uint32_t>(max_waiting);
  if (checks && napi_create_reference(env, a[5], 1, &ls->salts_refs[0]) == napi_ok &&
      napi_create_reference(env, a[6], 1, &ls->salts_refs[1]) == napi_ok) {
    ls->client_salts = salts[0];
    ls->server_salts = salts[1];
    ls->allow_private = allow_private;
    ls->names = names;
    ls->checks = true;
  }
  ls->handles = 3;
  ls->open = true;
  t->listeners.push_back(ls);
  if (napi_type_tag_object(env, ext, &kListenerTag) != napi_ok ||
      napi_create_reference(env, a[1], 1, &ls->on_conn) != napi_ok ||
      napi_create_reference(env, a[2], 1, &ls->on_event) != napi_ok ||
      napi_create_reference(env, ext, 1, &ls->self) != napi_ok || uv_poll_start(&ls->poll, UV_READABLE, OnListen) != 0) {
    CloseListener(ls, false);
    napi_throw_error(env, "ERR_LADDER_ACCEPT", "acceptListen: cannot poll the socket");
    return nullptr;
  }
  return ext;
}

napi_value AcceptKeys(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* p = nullptr;
  const char* usage = "acceptKeys(listener, methods?: Int32Array, keys?: Uint8Array[])";
  if (!a.Need(1) || !a.Tagged(0, kListenerTag, &p, usage)) return nullptr;
  Listener* ls = static_cast<Listener*>(p);
  if (!ls->open) return nullptr;  // closed: keys kept now would never be wiped
  std::vector<TrialKey> keys;
  size_t probe = 0;
  if (a.Has(1) && !a.Undefined(1)) {
    int32_t* methods = nullptr;
    size_t count = 0;
    bool is_array = false;
    uint32_t n = 0;
    if (!a.Int32Array(1, 0, &methods, usage) ||
        napi_get_typedarray_info(env, a[1], nullptr, &count, nullptr, nullptr, nullptr) != napi_ok ||
        napi_is_array(env, a[2], &is_array) != napi_ok || !is_array ||
        napi_get_array_length(env, a[2], &n) != napi_ok || n != count) {
      Throw(env, usage);
      return nullptr;
    }
    for (uint32_t i = 0; i < n; i++) {
      napi_value v;
      napi_typedarray_type tt;
      size_t len = 0;
      void* data = nullptr;
      bool ok = false;
      TrialKey k;
      k.method = methods[i];
      if (k.method >= 0 && k.method < kMethods && CipherOf(k.method) != nullptr &&
          napi_get_element(env, a[2], i, &v) == napi_ok && napi_is_typedarray(env, v, &ok) == napi_ok && ok &&
          napi_get_typedarray_info(env, v, &tt, &len, &data, nullptr, nullptr) == napi_ok &&
          tt == napi_uint8_array && len == static_cast<size_t>(EVP_CIPHER_get_key_length(CipherOf(k.method))) &&
          len <= sizeof(k.key)) {
        k.len = len;
        memcpy(k.key, data, len);
        if (len + kLenChunk > probe) probe = len + kLenChunk;
        keys.push_back(k);
        continue;
      }
      for (TrialKey& done : keys) OPENSSL_cleanse(done.key, sizeof(done.key));
      OPENSSL_cleanse(k.key, sizeof(k.key));
      Throw(env, "acceptKeys: each key must be a Uint8Array as long as its method's key");
      return nullptr;
    }
  }
  // Two ids, one secret: which the JS walk names depends on its order (accept-trial.ts #shared).
  // Sorted by method and key, equal ones are neighbours.
  std::vector<TrialKey*> order;
  for (TrialKey& k : keys) order.push_back(&k);
  const auto cmp = [](const TrialKey* x, const TrialKey* y) {
    if (x->method != y->method) return x->method - y->method;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return memcmp(x->key, y->key, x->len);
  };
  std::sort(order.begin(), order.end(), [&](const TrialKey* x, const TrialKey* y) { return cmp(x, y) < 0; });
  for (size_t i = 1; i < order.size(); i++) {
    if (cmp(order[i - 1], order[i]) == 0) order[i - 1]->shared = order[i]->shared = true;
  }
  Thread* t = ls->t;
  if (!keys.empty() && t->plain == nullptr && (t->plain = static_cast<uint8_t*>(malloc(kPlainSize))) == nullptr) {
    napi_throw_error(env, "ERR_LADDER_ACCEPT", "acceptKeys: out of memory");
    return nullptr;
  }
  for (TrialKey& k : ls->keys) OPENSSL_cleanse(k.key, sizeof(k.key));
  ls->keys.swap(keys);
  ls->probe = probe;
  std::fill(ls->recent.begin(), ls->recent.end(), Recent());  // the indices changed
  return nullptr;
}

napi_value AcceptClose(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* p = nullptr;
  if (!a.Need(1) || !a.Tagged(0, kListenerTag, &p, "acceptClose(listener)")) return nullptr;
  CloseListener(static_cast<Listener*>(p), true);
  return nullptr;
}

napi_value AcceptPending(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* p = nullptr;
  if (!a.Need(1) || !a.Tagged(0, kListenerTag, &p, "acceptPending(listener)")) return nullptr;
  return Number(env, static_cast<int32_t>(static_cast<Listener*>(p)->waiting));
}

napi_value ConnRead(napi_env env, napi_callback_info info) {
  Args a(env, info);
  bool ok = false, on = false;
  Conn* c = ConnArg(a, "connRead(id, on)", &ok);
  if (!ok) return nullptr;
  if (!a.Boolean(1, &on)) {
    Throw(env, "connRead(id, on)");
    return nullptr;
  }
  if (c == nullptr) return nullptr;
  c->paused = !on;
  if (c->busy) return nullptr;  // inside onConn: the accept loop starts the poll after it
  SetPolling(c, on && !c->ended);
  return nullptr;
}

napi_value ConnEnd(napi_env env, napi_callback_info info) {
  Args a(env, info);
  bool ok = false;
  Conn* c = ConnArg(a, "connEnd(id)", &ok);
  if (c != nullptr) shutdown(c->fd, SHUT_WR);
  return nullptr;
}

napi_value ConnClose(napi_env env, napi_callback_info info) {
  Args a(env, info);
  bool ok = false;
  Conn* c = ConnArg(a, "connClose(id)", &ok);
  if (c != nullptr) Retire(c, false);
  return nullptr;
}

napi_value ConnRelease(napi_env env, napi_callback_info info) {
  Args a(env, info);
  bool ok = false;
  Conn* c = ConnArg(a, "connRelease(id)", &ok);
  if (!ok) return nullptr;
  if (c == nullptr) return Number(env, -1);
  const int fd = c->fd;
  Retire(c, true);
  return Number(env, fd);
}

int AcceptTake(napi_env env, int64_t id, PollWatch* into, PollFn fn, void* target) {
  Thread* t = t_thread;
  Conn* c = t != nullptr && t->env == env ? Lookup(t, id) : nullptr;
  if (c == nullptr || c->waiting) return -1;
  const int fd = c->fd;
  // Moved: Retire then finds no watch to take out of the set, and no polling to stop.
  if (into != nullptr && PollMove(&c->watch, into, fn, target)) c->polling = false;
  Retire(c, true);
  return fd;
}

napi_value AcceptLive(napi_env env, napi_callback_info /*info*/) {
  const Thread* t = t_thread;
  return Number(env, t == nullptr || t->env != env ? 0 : static_cast<int32_t>(t->live));
}

#endif  // __linux__

}  // namespace ladder
