// Ladder native addon: the relay of an established Shadowsocks TCP connection (Linux). JS keeps
// every decision (key, replay, header, destination policy, the dial); once a connection relays,
// this moves its bytes on the thread's libuv loop without a JS call per read: both sockets in the
// thread's epoll set (thread_poll.h), read -> codec (the decoder and encoder JS created and
// keyed) -> write, and one JS call at the end. It does what src/transport/relay.ts does for the JS path:
//   - back-pressure: a side is read only while the other side has no unsent bytes;
//   - half-close: after EOF on one side, the other side's write half is shut down
//     (shutdown(SHUT_WR)) once everything read before the EOF is written; both EOFs -> done;
//   - idle timeout: no bytes read in either direction for idleMs closes both (one coarse timer
//     per thread scans the relays, every idleMs/4, 10 ms..1 s);
//   - any socket error, or a chunk that fails to decode, closes both at once.
//
//   relayPair(clientFd, destFd, decoder, encoder, pending, idleMs, onClose, owned?, onFirst?) -> relay
//       clientFd, destFd: connected TCP sockets. They are dup()ed here; the caller then closes
//       its own descriptors (destroys its sockets) without affecting the connection. owned:
//       true or 1 (destFd, from tcpConnect), 2 (clientFd, from connRelease) or 3 (both): those
//       are taken over as they are, not duplicated: the relay closes them (also when relayPair
//       throws).
//       decoder (client -> destination) and encoder (destination -> client): codecs from
//       create(), or both null to relay bytes unchanged.
//       pending: [prefix, toClient, toDest], each a Uint8Array or undefined: bytes sent before
//       the first encoded bytes to the client (the salt; held until there are some), bytes to
//       write to the client now, and plaintext to write to the destination now.
//       onClose(reason, up, down, side, answered) is called once: reason 0 done, 1 idle, 2 socket error,
//       3 closed by relayClose, 4 authentication failed, 5 chunk length out of bounds; up =
//       bytes read from the client, down = bytes produced for the client (as relay.ts counts);
//       side: for reason 2, the socket that failed (0 the client, 1 the destination), else -1.
//       onFirst (the client's SOCKS5 front, client/native-socks.ts): with a null decoder, what
//       is read from the client goes to onFirst(chunk, shut) until it hands over a decoder;
//       chunk null = the client sent FIN, shut = the client's write half was shut down by then
//       (its own FIN had been passed on). It returns undefined, the plaintext for the destination
//       (a Uint8Array), or [decoder, plaintext | undefined] to decode in C++ from then on; a
//       throw ends the relay as reason 4. One call per connection when the client's first read
//       holds the salt and a whole chunk.
//       decoder may be the master key (a Uint8Array, 16..32 bytes) with onFirst: the relay then
//       reads the client's salt itself (as long as the key) and decodes with the decoder of the
//       encoder's method keyed HKDF-SHA1(masterKey, salt), which it owns; onFirst is called only
//       for the client's FIN before a payload opened (chunk null). Once one opened, the relay
//       has "answered": relayCounts' out[2] and onClose's fifth argument say so.
//   relayConnect(connId, ip, port, connectMs, decoder, encoder, pending, idleMs, onClose, atOnce?, serverSalts?) -> relay
//       The server's dial and relay start in one (src/server/native-relay.ts): connects to ip:port
//       (a literal) and, once connected, takes the client's socket from the native accept
//       (connId, tcp_accept.cc; JS keeps it paused meanwhile) and relays as relayPair with
//       owned 3 would, with no JS call in between. The client is not read while connecting.
//       When the connect fails or connectMs pass first (checked by the idle scan, at most
//       connectMs/4 late, 10 ms..1 s), onClose(6, 0, 0, -errno) (-ETIMEDOUT for the budget) and
//       the client's connection stays JS's, as after a failed tcpConnect. relayClose while
//       connecting closes the destination's socket only (reason 3). Throws (err.errno) when the
//       connect is refused at once. encoder may be the master key (a Uint8Array) instead of a
//       codec: the relay then derives its encoder (the decoder's method, keyed with
//       HKDF-SHA1(masterKey, prefix): the prefix is the response salt) and owns it. atOnce: when connect(2) returns with the connection
//       established (TCP_INFO; on loopback the kernel runs the handshake inside the call), the
//       relay starts inside this call (the first bytes are sent), with no wake-up for EPOLLOUT.
//       serverSalts (the port's shared server-salt filter's bytes, shared_salts.h; with the master
//       key for encoder and no prefix): the relay draws the response salt (RandomBytes,
//       oneshot.h: RAND_bytes' output through a per-thread block) and, once the connect was not
//       refused at once, adds it to that filter under its try-lock; when the lock is busy it sets
//       pending[0] to the salt instead, which the caller then adds.
//   relayClose(relay)            closes both sockets now (reason 3, onClose called before it
//                                returns); nothing when already closed
//   relayCounts(relay, out)      out (Float64Array, length >= 2) = [up, down] so far; a third
//                                element: 1 once a payload opened with a decoder the relay derived;
//                                fourth and fifth: the most the next read for the client and for
//                                the destination takes (Side::read_cap; at most 128 KiB while the
//                                thread serves short exchanges: ReadSizeNow); sixth: 1 once a read
//                                filled (the relay is bulk: thread_poll.h PollMarkBulk)
//   relayLive() -> number        relays running on this thread (tests: nothing leaks)
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#if defined(__linux__)
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#endif

#include "exports.h"
#include "napi_args.h"
#include "oneshot.h"
#include "shared_salts.h"
#include "stream_codec.h"
#include "tcp_parts.h"
#include "thread_poll.h"

namespace ladder {

#if defined(__linux__)

namespace {

constexpr size_t kPrefixMax = 64;
// The codec's output for a read of n bytes: a decoded read is at most the read plus one element
// carried from earlier (<= 0xFFFF + 16); an encoded one the read plus 34 bytes per chunk and the
// prefix.
constexpr size_t OutSize(size_t n) { return n + 0x10000 + 16 + kPrefixMax; }
// A thread with no relay running gives its scratch pages back after this long (review17: once
// bulk data had passed, the 2 MiB stayed resident in every relaying thread for good, some 2.8 MiB
// of a used client's RSS). Long enough that a run of short connections never waits on it.
constexpr uint64_t kScratchReleaseMs = 5000;

// The bulk path's knobs, read once per process from the environment (docs/benchmarks.md, session
// 17): LADDER_RELAY_READ_KIB the most one read takes (16..1024 KiB; 1024 by default; 64 until session
// 16), LADDER_RELAY_ADAPT=0 reads that much every time (by default the reads for a side that
// leaves bytes unsent shrink, down to 64 KiB: Side::read_cap). Tried and left out (no gain in CPU
// per GiB): several reads per readiness event, SO_SNDBUF / SO_RCVBUF of 1 MiB on both sockets.
constexpr size_t kSmallRead = 64 * 1024;
struct Tuning {
  size_t read_size = 1024 * 1024;
  // The most one read takes while the thread has served short exchanges within kLightWindowMs
  // (LADDER_RELAY_SHARED_READ_KIB, 16..1024).
  size_t shared_read = 128 * 1024;
  // Past this many bytes held for slow readers on the thread (t_held), reads take kSmallRead
  // (LADDER_RELAY_HELD_MIB, 1..4096).
  size_t held_budget = 64 * 1024 * 1024;
  bool adapt = true;
  // LADDER_LAST_FIN_BY_CLOSE=0: the last FIN is sent by shutdown(SHUT_WR) as the first one (Flush).
  bool fin_by_close = true;
};
constexpr uint64_t kLightWindowMs = 100;

long EnvLong(const char* name, long def, long lo, long hi) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return def;
  char* end = nullptr;
  const long x = strtol(v, &end, 10);
  return end == nullptr || *end != '\0' || x < lo || x > hi ? def : x;
}

const Tuning& Tune() {
  static const Tuning t = [] {
    Tuning k;
    k.read_size = static_cast<size_t>(EnvLong("LADDER_RELAY_READ_KIB", 1024, 16, 1024)) * 1024;
    k.adapt = EnvLong("LADDER_RELAY_ADAPT", 1, 0, 1) == 1;
    k.shared_read = static_cast<size_t>(EnvLong("LADDER_RELAY_SHARED_READ_KIB", 128, 16, 1024)) * 1024;
    k.held_budget = static_cast<size_t>(EnvLong("LADDER_RELAY_HELD_MIB", 64, 1, 4096)) * 1024 * 1024;
    const char* fin = getenv("LADDER_LAST_FIN_BY_CLOSE");
    k.fin_by_close = fin == nullptr || strcmp(fin, "0") != 0;
    return k;
  }();
  return t;
}

enum Reason : int32_t { kDone = 0, kIdle = 1, kError = 2, kAborted = 3, kCipher = 4, kPayloadSize = 5, kConnect = 6 };

const napi_type_tag kRelayTag = {0x6c61646465725245ULL, 0x4c41595041490001ULL};

// Bytes this thread's relays have allocated for slow readers (every Out's cap): past
// Tune().held_budget a read takes at most kSmallRead (ReadSizeNow), so many readers whose windows
// shut right after their reads grew to 1 MiB cannot pin 1 MiB each.
thread_local size_t t_held = 0;

// Bytes waiting to be written to one socket: p[off..len).
struct Out {
  uint8_t* p = nullptr;
  size_t off = 0;
  size_t len = 0;
  size_t cap = 0;

  bool empty() const { return off == len; }
  // Room for `extra` more bytes at the end; nullptr when out of memory.
  uint8_t* Reserve(size_t extra) {
    if (off == len) off = len = 0;
    if (cap - len >= extra) return p + len;
    if (off > 0) {
      memmove(p, p + off, len - off);
      len -= off;
      off = 0;
      if (cap - len >= extra) return p + len;
    }
    const size_t want = len + extra;
    uint8_t* q = static_cast<uint8_t*>(realloc(p, want));
    if (q == nullptr) return nullptr;
    p = q;
    t_held += want - cap;
    cap = want;
    return p + len;
  }
  bool Append(const uint8_t* d, size_t n) {
    if (n == 0) return true;
    uint8_t* w = Reserve(n);
    if (w == nullptr) return false;
    memcpy(w, d, n);
    len += n;
    return true;
  }
  void Free() {
    free(p);
    t_held -= cap;
    p = nullptr;
    off = len = cap = 0;
  }
};

struct Relay;

struct Side {
  int fd = -1;
  PollWatch watch;    // its interest (EPOLLIN, EPOLLOUT) in the thread's epoll set; 0: out of it
  bool eof = false;   // read returned 0: no more reads from this side
  bool shut = false;  // its write half was shut down
  bool sole = false;  // fd is the socket's only descriptor (taken over, not a dup): see Stop
  Out out;            // bytes to write to this side
  // The most the next read for this side takes (0: none sent yet, kSmallRead): doubled after a
  // send to this side that it took whole, halved (down to kSmallRead) after one that left bytes.
  // So the bytes a relay holds for a slow reader (out, at most one read's output) follow what its
  // socket takes at a time rather than a whole 1 MiB read's worth, and a new relay starts at 64
  // KiB (a first read of 1 MiB into a reader whose window is already shut would be held whole).
  size_t read_cap = 0;
};

// What one thread's relays share: the read buffer, the idle scan, the list of running relays.
struct Loop {
  uv_loop_t* uv = nullptr;
  napi_env env = nullptr;
  uv_timer_t timer;
  uint64_t period = 0;  // ms; 0 while the timer is stopped
  // Tune().read_size bytes read, then OutSize(read_size) for the codec's output: 2.06 MiB with
  // the 1 MiB reads (192 KiB with session 16's 64 KiB), one per thread that relays; its own
  // mapping, so its pages can go back while the thread relays nothing (ReleaseScratch).
  uint8_t* scratch = nullptr;
  size_t scratch_size = 0;
  std::vector<Relay*> live;
  napi_async_context actx = nullptr;
};

struct Relay {
  napi_env env = nullptr;
  Loop* loop = nullptr;
  napi_ref callback = nullptr;
  napi_ref codec_refs[2] = {nullptr, nullptr};
  Codec* dec = nullptr;
  Codec* enc = nullptr;
  bool enc_owned = false;  // relayConnect derived the encoder itself (no JS codec): freed here
  bool dec_owned = false;  // relayPair derived the decoder from the client's salt: freed here
  napi_ref first = nullptr;  // onFirst, until it hands over the decoder (or the answer opened)
  // relayPair with a master key for decoder: the client's salt is read here (salt_len bytes),
  // then the decoder is derived; answered once a payload opened.
  uint8_t master[32] = {0};
  size_t master_len = 0;
  uint8_t salt[32] = {0};
  size_t salt_have = 0;
  bool answered = false;
  int err_side = -1;
  Out prefix;
  Side s[2];  // 0 the client, 1 the destination
  double up = 0;
  double down = 0;
  uint64_t idle_ms = 0;
  uint64_t last = 0;
  size_t index = 0;  // in loop->live while running
  bool bulk = false;  // a read filled once: its watches are PollMarkBulk's
  int busy = 0;      // inside a callback from the loop: freed when it returns
  // relayConnect: the destination is connecting (s[1]; s[0] not yet taken from client_id).
  bool connecting = false;
  int64_t client_id = -1;
  uint64_t connect_deadline = 0;
  int32_t connect_err = 0;  // -errno for kConnect
  bool running = false;
  bool finalized = false;
  // RelayStartOwned (tcp_parts.h: the client's bare tunnels, client_bare.cc): C++ hooks instead
  // of onClose and onFirst's FIN; no JS handle (finalized from the start).
  RelayEndFn end_fn = nullptr;
  RelayFinFn fin_fn = nullptr;
  void* owner = nullptr;
};

thread_local Loop* t_loop = nullptr;

void Cleanup(void* arg);

void MaybeFree(Relay* r) {
  if (r->busy == 0 && r->finalized && !r->running) {
    r->s[0].out.Free();
    r->s[1].out.Free();
    r->prefix.Free();
    delete r;
  }
}

void Finalize(napi_env /*env*/, void* data, void* /*hint*/) {
  Relay* r = static_cast<Relay*>(data);
  r->finalized = true;
  MaybeFree(r);
}

// The timer's one-shot form while no relay runs: the scratch pages go back (zero-filled again at
// the next touch) unless a relay started meanwhile (StartTimer re-arms the timer for OnTick).
void ReleaseScratch(uv_timer_t* t) {
  Loop* l = static_cast<Loop*>(t->data);
  if (l->live.empty() && l->scratch != nullptr) madvise(l->scratch, l->scratch_size, MADV_DONTNEED);
}

void StopTimerIfIdle(Loop* l) {
  if (l->live.empty() && l->period != 0) {
    uv_timer_start(&l->timer, ReleaseScratch, kScratchReleaseMs, 0);
    l->period = 0;
  }
}

// Stops both polls, closes both sockets, leaves the thread's list; true if it was running.
// Does not call JS and does not free r.
bool Stop(Relay* r) {
  if (!r->running) return false;
  r->running = false;
  Loop* l = r->loop;
  Relay* last = l->live.back();
  l->live[r->index] = last;
  last->index = r->index;
  l->live.pop_back();
  StopTimerIfIdle(l);
  for (Side& side : r->s) {
    // Out of the epoll set before the fd is closed: by the close itself when the relay holds the
    // socket's only descriptor (one it was handed, owned, or made: tcpConnect, connRelease, the
    // SOCKS5 front's accept, relayConnect's connect and AcceptTake, all close-on-exec and given
    // up by their makers), else (a dup: the caller's descriptor may still be open) by a DEL.
    if (side.sole && side.fd >= 0) PollEndForClose(&side.watch);
    else PollEnd(&side.watch);
    if (side.fd >= 0) close(side.fd);
    side.fd = -1;
    side.out.Free();
  }
  r->prefix.Free();
  return true;
}

void ReleaseRefs(Relay* r) {
  if (r->dec_owned) {
    CodecFreeIn(r->env, r->dec);
    r->dec = nullptr;
    r->dec_owned = false;
  }
  if (r->master_len > 0) OPENSSL_cleanse(r->master, sizeof(r->master));
  r->master_len = 0;
  if (r->enc_owned) {
    CodecFree(r->enc);
    r->enc = nullptr;
    r->enc_owned = false;
  }
  for (napi_ref& ref : r->codec_refs) {
    if (ref != nullptr) napi_delete_reference(r->env, ref);
    ref = nullptr;
  }
  if (r->callback != nullptr) napi_delete_reference(r->env, r->callback);
  r->callback = nullptr;
  if (r->first != nullptr) napi_delete_reference(r->env, r->first);
  r->first = nullptr;
}

// Ends the relay and tells JS why. from_js: called inside a JS call (relayClose), so the callback
// is a plain call; otherwise from the loop, through napi_make_callback (microtasks run after).
void Finish(Relay* r, Reason reason, bool from_js) {
  if (!Stop(r)) return;
  napi_env env = r->env;
  if (r->end_fn != nullptr) {
    r->end_fn(r->owner, reason, r->up, reason == kError ? r->err_side : -1, r->answered);
    ReleaseRefs(r);
    MaybeFree(r);
    return;
  }
  napi_handle_scope scope;
  if (r->callback != nullptr && napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value cb, recv, result;
    napi_value argv[5] = {Number(env, reason), Double(env, r->up), Double(env, r->down),
                          Number(env, reason == kError ? r->err_side : reason == kConnect ? r->connect_err : -1),
                          Bool(env, r->answered)};
    if (napi_get_reference_value(env, r->callback, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok) {
      if (from_js) {
        napi_call_function(env, recv, cb, 5, argv, &result);  // an exception propagates to the caller
      } else {
        napi_make_callback(env, r->loop->actx, recv, cb, 5, argv, &result);
        RaisePendingException(env);
      }
    }
    napi_close_handle_scope(env, scope);
  }
  ReleaseRefs(r);
  MaybeFree(r);  // only when JS dropped the handle already and no loop callback is running
}

// The most the next read for side `to` takes (ReadFrom; relayCounts reports it): its read_cap,
// kSmallRead before any send to it, the whole Tune().read_size with LADDER_RELAY_ADAPT=0.
size_t NextReadSize(const Side& to) {
  const size_t max = Tune().read_size;
  const size_t cap = to.read_cap != 0 ? to.read_cap : kSmallRead;
  return Tune().adapt && cap < max ? cap : max;
}

// The read ReadFrom takes now for side `to`: NextReadSize, but kSmallRead while the thread holds
// more than its budget for slow readers (t_held), and no more than Tune().shared_read while this
// thread has served short exchanges lately (a loop turn is at least one bulk read, and
// each of their steps waits a turn: docs/benchmarks.md, "short connections under bulk flows").
size_t ReadSizeNow(const Side& to) {
  const size_t n = NextReadSize(to);
  if (n > kSmallRead && t_held > Tune().held_budget) return kSmallRead;
  return n > Tune().shared_read && PollLightWithin(kLightWindowMs) ? Tune().shared_read : n;
}

// The interest side i needs: readable while the other side has nothing unsent, writable while
// it has something unsent itself; none takes it out of the set (a hung-up socket would be
// reported without end).
uint32_t Want(const Relay* r, int i) {
  const Side& side = r->s[i];
  return (!side.eof && r->s[1 - i].out.empty() ? EPOLLIN : 0u) | (side.out.empty() ? 0u : EPOLLOUT);
}

void Arm(Relay* r, int i) { PollSet(&r->s[i].watch, Want(r, i)); }

// The last of the two FINs (both sides at EOF, side i's bytes all written, none pending for the
// other side) is left to Stop's close(2), which the caller reaches without a JS call in between
// (OnEvents: both EOFs and nothing unsent -> Finish -> Stop, before onClose): a close of the
// socket's only descriptor, its peer's FIN read (so nothing unread: no RST), sends the same FIN
// as shutdown(SHUT_WR) would, one system call less per connection. Only for a side the relay
// holds alone (with another descriptor open, close sends nothing), and not while onFirst may
// still be called with the client's FIN (it may hand plaintext for the destination).
bool LastFinByClose(const Relay* r, int i) {
  const Side& side = r->s[i];
  return Tune().fin_by_close && side.sole && side.eof && r->s[1 - i].out.empty() &&
         !(i == 1 && r->first != nullptr);
}

// Writes what side i has pending; false on a socket error. Once everything read before the
// other side's EOF is written, shuts down side i's write half (LastFinByClose: leaves it to the
// close that follows).
bool Flush(Relay* r, int i) {
  Side& side = r->s[i];
  while (!side.out.empty()) {
    const ssize_t n = send(side.fd, side.out.p + side.out.off, side.out.len - side.out.off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      return false;
    }
    side.out.off += static_cast<size_t>(n);
    // Bytes moving to a slow reader are not idleness (the relay reads nothing meanwhile).
    r->last = uv_now(r->loop->uv);
  }
  side.out.off = side.out.len = 0;
  side.out.Free();  // an idle relay keeps no buffer
  if (r->s[1 - i].eof && !side.shut) {
    side.shut = true;
    if (LastFinByClose(r, i)) return true;
    if (shutdown(side.fd, SHUT_WR) != 0 && errno != ENOTCONN) return false;
  }
  return true;
}

// Sends data[0..n) to side i, keeping what the socket does not take; false on a socket error.
bool SendOrKeep(Relay* r, int i, const uint8_t* data, size_t n) {
  Side& side = r->s[i];
  size_t sent = 0;
  if (side.out.empty()) {
    while (sent < n) {
      const ssize_t w = send(side.fd, data + sent, n - sent, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return false;
      }
      sent += static_cast<size_t>(w);
    }
  }
  if (Tune().adapt) {
    const size_t max = Tune().read_size;
    const size_t cap = NextReadSize(side);
    side.read_cap = sent == n ? (cap >= max / 2 ? max : cap * 2) : (cap / 2 <= kSmallRead ? kSmallRead : cap / 2);
  }
  return side.out.Append(data + sent, n - sent);
}

// A socket error on side `side`: remembered for onClose.
Reason Err(Relay* r, int side) {
  r->err_side = side;
  return kError;
}

// Hands what the client sent (n bytes at p; p null: its FIN) to onFirst, writes the plaintext it
// returns to the destination and adopts the decoder it hands over. kDone also when JS closed
// the relay meanwhile (the caller checks r->running).
Reason CallFirst(Relay* r, const uint8_t* p, size_t n) {
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return kError;
  Reason why = kDone;
  napi_value cb, recv, result = nullptr, argv[2];
  void* copy = nullptr;
  argv[1] = Bool(env, r->s[0].shut);
  if (p == nullptr) napi_get_null(env, &argv[0]);
  else if (napi_create_buffer_copy(env, n, p, &copy, &argv[0]) != napi_ok) why = kError;
  if (why == kDone && (napi_get_reference_value(env, r->first, &cb) != napi_ok ||
                       napi_get_global(env, &recv) != napi_ok ||
                       napi_make_callback(env, r->loop->actx, recv, cb, 2, argv, &result) != napi_ok)) {
    why = kCipher;  // it threw: the bytes did not open
    bool pending = false;
    napi_value err;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) napi_get_and_clear_last_exception(env, &err);
  }
  if (why == kDone && r->running && result != nullptr) {
    napi_value plain = result;
    bool is_array = false;
    if (napi_is_array(env, result, &is_array) == napi_ok && is_array) {
      napi_value dec;
      plain = nullptr;
      // A decoder is taken only while the relay has none and is not making its own (master key):
      // otherwise one would be overwritten or freed twice.
      if (r->dec != nullptr || r->master_len > 0) {
        why = kCipher;
      } else if (napi_get_element(env, result, 0, &dec) != napi_ok || (r->dec = CodecOf(env, dec, 0)) == nullptr ||
          CodecFailed(r->dec) || napi_create_reference(env, dec, 1, &r->codec_refs[0]) != napi_ok) {
        r->dec = nullptr;
        why = kCipher;
      } else {
        napi_get_element(env, result, 1, &plain);
        napi_delete_reference(env, r->first);
        r->first = nullptr;
      }
    }
    bool is_ta = false;
    napi_typedarray_type type;
    size_t len = 0;
    void* data = nullptr;
    if (why == kDone && plain != nullptr && napi_is_typedarray(env, plain, &is_ta) == napi_ok && is_ta &&
        napi_get_typedarray_info(env, plain, &type, &len, &data, nullptr, nullptr) == napi_ok &&
        type == napi_uint8_array && len > 0 && data != nullptr &&
        !SendOrKeep(r, 1, static_cast<const uint8_t*>(data), len)) {
      why = Err(r, 1);
    }
  }
  napi_close_handle_scope(env, scope);
  return why;
}

// One read from side i, through the codec, written to the other side (what it does not take is
// kept, and side i is not read again until it is written); kDone when all went well (EAGAIN
// included), else why the relay must end. Called only while the other side has nothing unsent.
Reason ReadFrom(Relay* r, int i) {
  Side& src = r->s[i];
  const Tuning& t = Tune();
  const size_t read_size = ReadSizeNow(r->s[1 - i]);
  uint8_t* buf = r->loop->scratch;
  uint8_t* out = buf + t.read_size;  // room for OutSize(t.read_size) bytes
  ssize_t n;
  do n = recv(src.fd, buf, read_size, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? kDone : Err(r, i);
  if (n == 0) {
    src.eof = true;
    if (!Flush(r, 1 - i)) return Err(r, 1 - i);
    if (i == 0 && r->fin_fn != nullptr && !r->answered) r->fin_fn(r->owner, r->s[0].shut, r->up);
    return i == 0 && r->first != nullptr ? CallFirst(r, nullptr, 0) : kDone;
  }
  size_t len = static_cast<size_t>(n);
  r->last = uv_now(r->loop->uv);
  if (len == read_size && !r->bulk) {
    // A read the socket filled: a bulk flow, served after the short exchanges in each loop turn.
    r->bulk = true;
    PollMarkBulk(&r->s[0].watch);
    PollMarkBulk(&r->s[1].watch);
  }
  const uint8_t* result = buf;
  size_t result_len = len;
  if (i == 0) {
    r->up += static_cast<double>(len);
    if (r->master_len > 0 && r->dec == nullptr) {
      // The client's salt (in one read or several), then the decoder keyed from it.
      const size_t take = r->master_len - r->salt_have < len ? r->master_len - r->salt_have : len;
      memcpy(r->salt + r->salt_have, buf, take);
      r->salt_have += take;
      buf += take;
      len -= take;
      if (r->salt_have < r->master_len) return kDone;
      r->dec = CodecDerived(CodecMethod(r->enc), r->master, r->master_len, r->salt, r->master_len, 0);
      if (r->dec == nullptr) return kError;
      r->dec_owned = true;
    } else if (r->first != nullptr && r->master_len == 0) {
      return CallFirst(r, buf, len);
    }
    if (r->dec != nullptr) {
      const int32_t st = CodecDecodeTo(r->env, r->dec, buf, len, out, &result_len);
      if (st != 0) return st == 2 ? kPayloadSize : kCipher;
      result = out;
      if (!r->answered && result_len > 0 && r->master_len > 0) {
        r->answered = true;  // onFirst hears no FIN from now on, as once it handed the decoder over
        if (r->first != nullptr) napi_delete_reference(r->env, r->first);
        r->first = nullptr;
      }
    }
  } else {
    if (r->enc != nullptr) {
      const size_t head = r->prefix.len;
      if (head > kPrefixMax || !CodecEncodeTo(r->enc, buf, len, out + head)) return kError;
      if (head > 0) memcpy(out, r->prefix.p, head);
      r->prefix.Free();
      result = out;
      result_len = head + CodecEncodedSize(r->enc, len);
    }
    r->down += static_cast<double>(result_len);
  }
  if (result_len > 0 && !SendOrKeep(r, 1 - i, result, result_len)) return Err(r, 1 - i);
  return kDone;
}

// Side i's events (as uv_poll reports them: an error ends the relay; a hang-up counts as what
// the side waits for, so the read or write that follows says what happened).
void Connected(Relay* r);

void OnEvents(Relay* r, int i, uint32_t events) {
  if (!r->running) return;
  if (r->connecting) return Connected(r);  // only the destination is polled, for EPOLLOUT
  const uint32_t wanted = r->s[i].watch.events;
  if ((events & EPOLLHUP) != 0) events |= wanted;
  Reason why = (events & EPOLLERR) != 0 ? Err(r, i) : kDone;
  if (why == kDone && (events & EPOLLOUT) != 0 && !Flush(r, i)) why = Err(r, i);
  if (why == kDone && (events & (EPOLLIN | EPOLLRDHUP)) != 0 && !r->s[i].eof && r->s[1 - i].out.empty()) {
    why = ReadFrom(r, i);
    if (!r->running) return;  // onFirst closed it
  }
  if (why != kDone) return Finish(r, why, false);
  if (r->s[0].eof && r->s[1].eof && r->s[0].out.empty() && r->s[1].out.empty()) return Finish(r, kDone, false);
  Arm(r, 0);
  Arm(r, 1);
}

template <int kSide>
void OnPoll(void* target, uint32_t events) {
  Relay* r = static_cast<Relay*>(target);
  r->busy++;
  OnEvents(r, kSide, events);
  r->busy--;
  MaybeFree(r);
}

void OnTick(uv_timer_t* t) {
  Loop* l = static_cast<Loop*>(t->data);
  const uint64_t now = uv_now(l->uv);
  std::vector<Relay*> expired;
  for (Relay* r : l->live) {
    if (r->connecting ? now >= r->connect_deadline : now - r->last >= r->idle_ms) {
      if (r->connecting) r->connect_err = -ETIMEDOUT;
      expired.push_back(r);
      r->busy++;  // Finish may call JS, which may close or start relays: none is freed meanwhile
    }
  }
  for (Relay* r : expired) Finish(r, r->connecting ? kConnect : kIdle, false);
  for (Relay* r : expired) {
    r->busy--;
    MaybeFree(r);
  }
}

void FreeScratch(Loop* l) {
  if (l->scratch != nullptr) munmap(l->scratch, l->scratch_size);
  l->scratch = nullptr;
}

void OnTimerClosed(uv_handle_t* h) { delete static_cast<Loop*>(h->data); }

// The env is going away (worker exit): end every relay without calling JS, and the timer.
void Cleanup(void* arg) {
  Loop* l = static_cast<Loop*>(arg);
  while (!l->live.empty()) {
    Relay* r = l->live.back();
    Stop(r);
    ReleaseRefs(r);
  }
  if (l->actx != nullptr) napi_async_destroy(l->env, l->actx);
  FreeScratch(l);
  if (t_loop == l) t_loop = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&l->timer), OnTimerClosed);
}

bool MapScratch(Loop* l) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t n = (Tune().read_size + OutSize(Tune().read_size) + page - 1) / page * page;
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  l->scratch = static_cast<uint8_t*>(p);
  l->scratch_size = n;
  return true;
}

Loop* LoopFor(napi_env env) {
  PinLibrary();
  if (t_loop != nullptr && t_loop->env == env) return t_loop;
  if (t_loop != nullptr) return nullptr;  // one env per thread in node; refuse anything else
  Loop* l = PollReady(env) ? new (std::nothrow) Loop() : nullptr;  // the set's hook before ours
  napi_value name;
  if (l == nullptr || napi_get_uv_event_loop(env, &l->uv) != napi_ok || l->uv == nullptr ||
      !MapScratch(l) ||
      napi_create_string_utf8(env, "ladder:relay", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, nullptr, name, &l->actx) != napi_ok || uv_timer_init(l->uv, &l->timer) != 0) {
    if (l != nullptr) {
      if (l->actx != nullptr) napi_async_destroy(env, l->actx);
      FreeScratch(l);
    }
    delete l;
    return nullptr;
  }
  l->env = env;
  l->timer.data = l;
  uv_unref(reinterpret_cast<uv_handle_t*>(&l->timer));
  if (napi_add_env_cleanup_hook(env, Cleanup, l) != napi_ok) {
    Cleanup(l);
    return nullptr;
  }
  t_loop = l;
  return l;
}

void StartTimer(Loop* l, uint64_t idle_ms) {
  uint64_t period = idle_ms / 4;
  if (period < 10) period = 10;
  if (period > 1000) period = 1000;
  if (l->period != 0 && l->period <= period) return;
  l->period = period;
  uv_timer_start(&l->timer, OnTick, period, period);
}

bool OptionalBytesAt(napi_env env, napi_value arr, uint32_t i, const uint8_t** p, size_t* n) {
  napi_value v;
  napi_valuetype t;
  *p = nullptr;
  *n = 0;
  if (napi_get_element(env, arr, i, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok) return false;
  if (t == napi_undefined || t == napi_null) return true;
  bool is_ta = false;
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array) {
    return false;
  }
  *p = static_cast<const uint8_t*>(data);
  *n = data == nullptr ? 0 : length;
  return true;
}

// The codec at argument i (null for none), kept alive by a reference while the relay runs.
bool CodecArg(const Args& a, size_t i, int enc, Codec** c, napi_ref* ref) {
  bool nullish = false;
  if (!a.Nullish(i, &nullish)) return false;
  if (nullish) return true;
  *c = CodecOf(a.env(), a[i], enc);
  if (*c == nullptr || CodecFailed(*c)) return false;
  return napi_create_reference(a.env(), a[i], 1, ref) == napi_ok;
}


// Frees a relay that never ran (its sockets closed) and throws `msg` (a TypeError when is_type).
napi_value Undo(napi_env env, Relay* r, const char* msg, bool is_type) {
  ReleaseRefs(r);
  for (Side& side : r->s) {
    PollEnd(&side.watch);
    if (side.fd >= 0) close(side.fd);
    side.out.Free();
  }
  r->prefix.Free();
  delete r;
  if (is_type) Throw(env, msg);
  else napi_throw_error(env, "ERR_LADDER_RELAY", msg);
  return nullptr;
}

// A relay (not running) with the codecs at arguments dec_i and dec_i + 1, the pending bytes at
// pending_i, onClose at cb_i and, when first_i > 0 holds a function, onFirst; nullptr after
// throwing. The caller sets the sockets.
// With draw (derive only, with no prefix in pending) the relay draws the prefix, the response salt,
// into draw (32 bytes) itself, as long as the master key; its length goes to *drawn.
Relay* NewRelay(const Args& a, size_t dec_i, size_t pending_i, size_t cb_i, size_t first_i, bool derive = false,
                uint8_t* draw = nullptr, size_t* drawn = nullptr) {
  napi_env env = a.env();
  const uint8_t* bytes[3];
  size_t lens[3];
  for (uint32_t i = 0; i < 3; i++) {
    if (!OptionalBytesAt(env, a[pending_i], i, &bytes[i], &lens[i])) {
      Throw(env, "relayPair: pending must hold Uint8Arrays or undefined");
      return nullptr;
    }
  }
  if (draw != nullptr) {
    const uint8_t* key = nullptr;
    size_t key_len = 0;
    bool is_key = false;
    if (lens[0] != 0 || napi_is_typedarray(env, a[dec_i + 1], &is_key) != napi_ok || !is_key ||
        !a.Bytes(dec_i + 1, &key, &key_len, "encoder") || key_len < 16 || key_len > 32) {
      Throw(env, "relayConnect: with serverSalts, no prefix and the master key for encoder");
      return nullptr;
    }
    if (!RandomBytes(draw, key_len)) {
      napi_throw_error(env, "ERR_LADDER_RELAY", "relayConnect: cannot draw a salt");
      return nullptr;
    }
    bytes[0] = draw;
    lens[0] = *drawn = key_len;
  }
  if (lens[0] > kPrefixMax) {
    Throw(env, "relayPair: prefix longer than 64 bytes");
    return nullptr;
  }
  Loop* l = LoopFor(env);
  Relay* r = l == nullptr ? nullptr : new (std::nothrow) Relay();
  if (r == nullptr) {
    napi_throw_error(env, "ERR_LADDER_RELAY", "cannot start the relay");
    return nullptr;
  }
  r->env = env;
  r->loop = l;
  const bool with_first = first_i > 0 && a.Has(first_i) && a.Function(first_i);
  // derive: the encoder argument may be the master key instead, the prefix its salt.
  const uint8_t* master = nullptr;
  size_t master_len = 0;
  bool is_key = false;
  if (derive && napi_is_typedarray(env, a[dec_i + 1], &is_key) == napi_ok && is_key &&
      a.Bytes(dec_i + 1, &master, &master_len, "encoder")) {
    if (lens[0] != master_len || !CodecArg(a, dec_i, 0, &r->dec, &r->codec_refs[0]) || r->dec == nullptr ||
        (r->enc = CodecDerived(CodecMethod(r->dec), master, master_len, bytes[0], lens[0])) == nullptr) {
      Undo(env, r, "relayConnect: a decoder and a master key of its method with the salt as prefix", true);
      return nullptr;
    }
    r->enc_owned = true;
  }
  // With onFirst, the decoder argument may be the master key: the relay reads the client's salt.
  bool dec_key = false;
  if (with_first && !derive && napi_is_typedarray(env, a[dec_i], &dec_key) == napi_ok && dec_key) {
    if (!a.Bytes(dec_i, &master, &master_len, "decoder") || master_len < 16 || master_len > sizeof(r->master)) {
      Undo(env, r, "relayPair: a master key for decoder must be 16 to 32 bytes", true);
      return nullptr;
    }
    memcpy(r->master, master, master_len);
    r->master_len = master_len;
  }
  if ((!r->enc_owned && !dec_key && !CodecArg(a, dec_i, 0, &r->dec, &r->codec_refs[0])) ||
      (!r->enc_owned && !CodecArg(a, dec_i + 1, 1, &r->enc, &r->codec_refs[1])) ||
      (with_first ? r->dec != nullptr || r->enc == nullptr : (r->dec == nullptr) != (r->enc == nullptr))) {
    Undo(env, r,
         "relayPair: decoder and encoder must be a working decoder and encoder, or both null (with onFirst: a null "
         "decoder and an encoder)",
         true);
    return nullptr;
  }
  if (dec_key && static_cast<size_t>(EVP_CIPHER_key_length(CipherOf(CodecMethod(r->enc)))) != r->master_len) {
    Undo(env, r, "relayPair: the master key's length does not match the encoder's method", true);
    return nullptr;
  }
  if (with_first && napi_create_reference(env, a[first_i], 1, &r->first) != napi_ok) {
    Undo(env, r, "relayPair: out of memory", false);
    return nullptr;
  }
  if (napi_create_reference(env, a[cb_i], 1, &r->callback) != napi_ok || !r->prefix.Append(bytes[0], lens[0]) ||
      !r->s[0].out.Append(bytes[1], lens[1]) || !r->s[1].out.Append(bytes[2], lens[2])) {
    Undo(env, r, "relayPair: out of memory", false);
    return nullptr;
  }
  return r;
}

// Writes what the relay starts with; a write error shows again (and ends the relay) when the
// poll reports the socket writable. Then both sides join the set with their interest (a failure
// to join leaves that side unpolled: the idle timeout ends the relay).
void Begin(Relay* r) {
  for (int i = 0; i < 2; i++) {
    Side& side = r->s[i];
    while (!side.out.empty()) {
      const ssize_t n = send(side.fd, side.out.p + side.out.off, side.out.len - side.out.off, MSG_NOSIGNAL);
      if (n <= 0) break;
      side.out.off += static_cast<size_t>(n);
    }
    if (side.out.empty()) side.out.off = side.out.len = 0;
  }
  Arm(r, 0);
  Arm(r, 1);
}

// The handle JS holds, and r running on its thread (idle time from now); nullptr after throwing.
napi_value Run(napi_env env, Relay* r, uint64_t idle_ms, uint64_t scan_ms) {
  napi_value ext;
  if (napi_create_external(env, r, Finalize, nullptr, &ext) != napi_ok) {
    return Undo(env, r, "relayPair: cannot poll the sockets", false);
  }
  napi_type_tag_object(env, ext, &kRelayTag);
  Loop* l = r->loop;
  r->idle_ms = idle_ms;
  uv_update_time(l->uv);  // this loop turn may have run a while: the idle time starts now
  r->last = uv_now(l->uv);
  r->running = true;
  r->index = l->live.size();
  l->live.push_back(r);
  StartTimer(l, scan_ms);
  return ext;
}

bool Relaying(Relay* r);

// The destination's connect of a relayConnect completed (or failed): take the client from the
// native accept and relay, or end with kConnect.
void Connected(Relay* r) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(r->s[1].fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == EINPROGRESS || err == EALREADY) return;
  if (err != 0) {
    r->connect_err = -err;
    return Finish(r, kConnect, false);
  }
  if (!Relaying(r)) Finish(r, Err(r, 0), false);  // the client's connection is gone
}

// The destination is connected: take the client from the native accept and relay (the
// destination's interest changes from EPOLLOUT, or none, to what the relay wants). False when
// the client's socket cannot be taken or polled (r->s[0].fd holds it if it was taken).
bool Relaying(Relay* r) {
  // The accept's watch comes along as it is (LADDER_ACCEPT_WATCH_MOVE=0: out of the set and in
  // again, a DEL and an ADD): the client's socket stays in the set for its reads.
  static const bool move = [] {
    const char* v = getenv("LADDER_ACCEPT_WATCH_MOVE");
    return v == nullptr || strcmp(v, "0") != 0;
  }();
  const int fd = move ? AcceptTake(r->env, r->client_id, &r->s[0].watch, OnPoll<0>, r)
                      : AcceptTake(r->env, r->client_id);
  if (fd < 0) return false;
  r->s[0].fd = fd;
  if (r->s[0].watch.token == 0 && !PollStart(r->env, &r->s[0].watch, fd, 0, OnPoll<0>, r)) return false;
  r->connecting = false;
  r->last = uv_now(r->loop->uv);
  Begin(r);
  return true;
}

}  // namespace

napi_value RelayPair(napi_env env, napi_callback_info info) {
  const char* usage =
      "relayPair(clientFd, destFd, decoder|null, encoder|null, [prefix, toClient, toDest], idleMs, onClose, "
      "owned?, onFirst?)";
  Args a(env, info);
  int32_t fds[2] = {-1, -1};
  int64_t idle = 0;
  bool is_array = false;
  // true or 1: destFd owned, 2: clientFd owned, 3: both; anything else: duplicate both.
  bool flag = false;
  int32_t own = 0;
  if (a.Has(7) && a.Boolean(7, &flag)) own = flag ? 1 : 0;
  else if (!a.Has(7) || !a.Int32(7, &own) || own < 0 || own > 3) own = 0;
  const bool owned = (own & 1) != 0;
  const bool client_owned = (own & 2) != 0;
  int32_t dest_in = -1, client_in = -1;
  struct OwnedFd {  // an owned fd is closed on every way out until the relay holds it
    int fd;
    ~OwnedFd() {
      if (fd >= 0) close(fd);
    }
  } owned_fd{owned && a.Int32(1, &dest_in) && dest_in >= 0 ? dest_in : -1},
      owned_client{client_owned && a.Int32(0, &client_in) && client_in >= 0 ? client_in : -1};
  if (!a.Need(7, usage) || !a.Int32(0, &fds[0]) || !a.Int32(1, &fds[1]) || fds[0] < 0 || fds[1] < 0 ||
      napi_is_array(env, a[4], &is_array) != napi_ok || !is_array || !a.Index(5, &idle) || idle < 1 ||
      !a.Function(6)) {
    Throw(env, usage);
    return nullptr;
  }
  Relay* r = NewRelay(a, 2, 4, 6, 8);
  if (r == nullptr) return nullptr;
  r->s[0].sole = client_owned;
  r->s[1].sole = owned;
  r->s[0].fd = client_owned ? fds[0] : fcntl(fds[0], F_DUPFD_CLOEXEC, 0);
  owned_client.fd = -1;  // r->s[0].fd now: closed by Undo or by the relay
  if (r->s[0].fd < 0) return Undo(env, r, "relayPair: cannot duplicate the sockets", false);
  r->s[1].fd = owned ? fds[1] : fcntl(fds[1], F_DUPFD_CLOEXEC, 0);
  owned_fd.fd = -1;  // r->s[1].fd now: closed by Undo or by the relay
  if (r->s[1].fd < 0) return Undo(env, r, "relayPair: cannot duplicate the sockets", false);
  // Known to the epoll set (no system call yet: they join it below with their interest).
  if (!PollStart(env, &r->s[0].watch, r->s[0].fd, 0, OnPoll<0>, r) ||
      !PollStart(env, &r->s[1].watch, r->s[1].fd, 0, OnPoll<1>, r)) {
    return Undo(env, r, "relayPair: cannot poll the sockets", false);
  }
  napi_value ext = Run(env, r, static_cast<uint64_t>(idle), static_cast<uint64_t>(idle));
  if (ext != nullptr) Begin(r);
  return ext;
}

napi_value RelayConnect(napi_env env, napi_callback_info info) {
  const char* usage =
      "relayConnect(connId, ip, port 1..65535, connectMs, decoder, encoder, [prefix, toClient, toDest], idleMs, "
      "onClose, atOnce?, serverSalts?)";
  Args a(env, info);
  int64_t id = -1, connect_ms = 0, idle = 0;
  int32_t port = 0;
  char ip[64];
  bool is_array = false;
  if (!a.Need(9, usage) || !a.Index(0, &id) || !a.String(1, ip, sizeof(ip)) || !a.Int32(2, &port) ||
      !a.Index(3, &connect_ms) || connect_ms < 1 || napi_is_array(env, a[6], &is_array) != napi_ok || !is_array ||
      !a.Index(7, &idle) || idle < 1 || !a.Function(8)) {
    Throw(env, usage);
    return nullptr;
  }
  // serverSalts: the port's shared server-salt filter (shared_salts.h); the relay draws the salt.
  SharedSalts server_salts;
  const bool own_salt = a.Has(10) && !a.Undefined(10);
  if (own_salt && !SharedSaltsFrom(env, a[10], &server_salts)) {
    Throw(env, "relayConnect: serverSalts must be a shared salt filter's bytes");
    return nullptr;
  }
  uint8_t salt[32];
  size_t salt_len = 0;
  Relay* r = NewRelay(a, 4, 6, 8, 0, true, own_salt ? salt : nullptr, &salt_len);
  if (r == nullptr) return nullptr;
  if (r->dec == nullptr) return Undo(env, r, "relayConnect: needs a decoder and an encoder", true);
  int e = 0;
  r->s[0].sole = r->s[1].sole = true;  // AcceptTake's and TcpConnectStart's: nobody else's
  r->s[1].fd = TcpConnectStart(ip, port, &e);
  if (r->s[1].fd == -2) return Undo(env, r, usage, true);
  if (r->s[1].fd < 0) {
    Undo(env, r, "connect failed", false);
    napi_value err;
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
        napi_get_and_clear_last_exception(env, &err) == napi_ok) {
      napi_set_named_property(env, err, "errno", Number(env, -e));
      napi_throw(env, err);
    }
    return nullptr;
  }
  // The connect was not refused at once: the response salt goes into the server-salt filter now,
  // before anything can be sent. The lock busy (the addon never waits): pending[0] = the salt,
  // for the caller to add in JS.
  if (own_salt && SharedSaltsCheckAndAdd(server_salts, salt, salt_len) == SaltResult::kBusy) {
    napi_value copy;
    if (napi_create_buffer_copy(env, salt_len, salt, nullptr, &copy) != napi_ok ||
        napi_set_element(env, a[6], 0, copy) != napi_ok) {
      return Undo(env, r, "relayConnect: out of memory", false);
    }
  }
  // A connect the kernel completed inside connect(2) (loopback) needs no writable event.
  bool at_once = false;
  if (a.Has(9) && !a.Undefined(9) && !a.Boolean(9, &at_once)) return Undo(env, r, usage, true);
  at_once = at_once && Established(r->s[1].fd);
  if (!PollStart(env, &r->s[1].watch, r->s[1].fd, at_once ? 0u : uint32_t{EPOLLOUT}, OnPoll<1>, r)) {
    return Undo(env, r, "relayConnect: cannot poll the socket", false);
  }
  r->connecting = true;
  r->client_id = id;
  const uint64_t budget = static_cast<uint64_t>(connect_ms);
  napi_value ext = Run(env, r, static_cast<uint64_t>(idle), budget < static_cast<uint64_t>(idle) ? budget : idle);
  r->connect_deadline = r->last + budget;
  // Relay now, with no JS call (Begin only writes and polls). If the client cannot be taken,
  // wait for the writable event as a later connect would: Connected then ends it.
  if (ext != nullptr && at_once && !Relaying(r)) PollSet(&r->s[1].watch, EPOLLOUT);
  return ext;
}

napi_value RelayClose(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* p = nullptr;
  if (!a.Need(1) || !a.Tagged(0, kRelayTag, &p, "relayClose(relay)")) return nullptr;
  Finish(static_cast<Relay*>(p), kAborted, true);
  return nullptr;
}

napi_value RelayCounts(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* p = nullptr;
  if (!a.Need(2, "relayCounts(relay, out)") || !a.Tagged(0, kRelayTag, &p, "relayCounts(relay, out)")) return nullptr;
  bool is_ta = false;
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_is_typedarray(env, a[1], &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, a[1], &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_float64_array || length < 2 || data == nullptr) {
    Throw(env, "relayCounts: out must be a Float64Array of length >= 2");
    return nullptr;
  }
  const Relay* r = static_cast<Relay*>(p);
  static_cast<double*>(data)[0] = r->up;
  static_cast<double*>(data)[1] = r->down;
  if (length >= 3) static_cast<double*>(data)[2] = r->answered ? 1 : 0;
  for (size_t i = 0; i < 2 && 3 + i < length; i++) {  // the read caps (tests, docs/benchmarks.md)
    static_cast<double*>(data)[3 + i] = static_cast<double>(ReadSizeNow(r->s[i]));
  }
  if (length >= 6) static_cast<double*>(data)[5] = r->bulk ? 1 : 0;
  return nullptr;
}

void* RelayStartOwned(napi_env env, int server_fd, int app_fd, const uint8_t* master, size_t master_len, Codec* enc,
                      const uint8_t* first, size_t first_len, uint64_t idle_ms, RelayEndFn end, RelayFinFn fin,
                      void* owner) {
  Loop* l = master_len <= sizeof(Relay::master) ? LoopFor(env) : nullptr;
  Relay* r = l == nullptr ? nullptr : new (std::nothrow) Relay();
  if (r == nullptr) {
    close(server_fd);
    close(app_fd);
    CodecFree(enc);
    return nullptr;
  }
  r->env = env;
  r->loop = l;
  r->finalized = true;  // no JS handle: freed once it stopped
  r->enc = enc;
  r->enc_owned = true;
  memcpy(r->master, master, master_len);
  r->master_len = master_len;
  r->end_fn = end;
  r->fin_fn = fin;
  r->owner = owner;
  r->s[0].sole = r->s[1].sole = true;
  r->s[0].fd = server_fd;
  r->s[1].fd = app_fd;
  if (!r->s[0].out.Append(first, first_len) || !PollStart(env, &r->s[0].watch, server_fd, 0, OnPoll<0>, r) ||
      !PollStart(env, &r->s[1].watch, app_fd, 0, OnPoll<1>, r)) {
    ReleaseRefs(r);
    for (Side& side : r->s) {
      PollEnd(&side.watch);
      close(side.fd);
      side.out.Free();
    }
    delete r;
    return nullptr;
  }
  r->idle_ms = idle_ms;
  uv_update_time(l->uv);
  r->last = uv_now(l->uv);
  r->running = true;
  r->index = l->live.size();
  l->live.push_back(r);
  StartTimer(l, idle_ms);
  r->busy++;  // Begin's writes cannot end it, but keep it alive through the call anyway
  Begin(r);
  r->busy--;
  return r;
}

void RelayStopOwned(void* relay) { Finish(static_cast<Relay*>(relay), kAborted, true); }

bool RelayOwnedAnswered(const void* relay, double* up) {
  const Relay* r = static_cast<const Relay*>(relay);
  *up = r->up;
  return r->answered;
}

napi_value RelayLive(napi_env env, napi_callback_info /*info*/) {
  const Loop* l = t_loop;
  return Number(env, l == nullptr || l->env != env ? 0 : static_cast<int32_t>(l->live.size()));
}

#endif  // __linux__

}  // namespace ladder
