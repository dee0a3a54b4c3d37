// Ladder native addon: the per-thread epoll set of the TCP path; see thread_poll.h.
#include "thread_poll.h"

#include "napi_args.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#endif

namespace ladder {

#if defined(__linux__)

namespace {

constexpr int kBatch = 64;

struct Slot {
  PollFn fn = nullptr;
  void* target = nullptr;
  uint32_t gen = 0;  // 0: free
  bool bulk = false;  // PollMarkBulk: served after the others in a turn, within its budget
};

struct Poller {
  napi_env env = nullptr;
  int ep = -1;
  uv_poll_t poll;
  uint32_t refs = 0;  // watches in the set: the loop stays alive while there are any
  uint32_t next_gen = 1;
  std::vector<Slot> slots;
  std::vector<uint32_t> free_slots;
  PollWatch parked;      // PollPark's watch: in the set, its slot's fn null (events dropped)
  bool adopt = false;    // the next PollStart of parked.fd takes it
  uint32_t adopted = 0;  // parked watches taken as they were (tests)
  bool keep_del = false;  // LADDER_CLOSE_SKIPS_DEL=0: PollEndForClose makes its DEL as PollEnd does
  uint64_t light_ms = 0;  // uv_now when an event of a watch not marked bulk was last served
  uint32_t resume = 0;    // where in its batch the next turn starts (the last one ran out of budget)
};

thread_local Poller* t_poll = nullptr;

// How long one loop turn may spend on the set's events before the loop serves anything else
// (LADDER_POLL_TURN_US, 0: no limit; read once per process). A relay's readiness event can seal a
// read of up to 1 MiB (~0.3-1 ms of CPU, relay_pair.cc): eight bulk flows on one thread made a
// turn take 4-8 ms, and a short connection on the same thread waits one turn at each of its
// steps (accept, SOCKS5, its first bytes, connect, the answer): 40-70 ms each under 8 downloads
// against libev's 2.5 (docs/benchmarks.md, "short connections under bulk flows").
uint64_t TurnBudgetNs() {
  static const uint64_t ns = [] {
    const char* v = getenv("LADDER_POLL_TURN_US");
    char* end = nullptr;
    const long us = v == nullptr || *v == '\0' ? -1 : strtol(v, &end, 10);
    if (us < 0 || end == nullptr || *end != '\0' || us > 1000000) return static_cast<uint64_t>(250) * 1000;
    return static_cast<uint64_t>(us) * 1000;
  }();
  return ns;
}

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// LADDER_POLL_PRIORITY=0: bulk watches are served in the order epoll gives, as the others (A/B).
bool BulkLast() {
  static const bool on = [] {
    const char* v = getenv("LADDER_POLL_PRIORITY");
    return v == nullptr || strcmp(v, "0") != 0;
  }();
  return on;
}

void Dispatch(Poller* p, const epoll_event& ev) {
  const uint64_t token = ev.data.u64;
  const uint32_t slot = static_cast<uint32_t>(token);
  const uint32_t gen = static_cast<uint32_t>(token >> 32);
  if (slot >= p->slots.size()) return;
  const Slot s = p->slots[slot];
  if (s.gen == gen && s.fn != nullptr) s.fn(s.target, ev.events);
}

// The set has events: at most kBatch per wake-up (level-triggered: the rest come at the next).
// Everything but bulk relays first (a connection being accepted, a SOCKS5 handshake, a connect,
// a relay that has not yet filled a read: each a step some short exchange waits on), then the
// bulk ones until the turn's budget is spent; each of the rest is reported again at the next
// turn, which starts where this one stopped (epoll_wait gives a set that stays ready in the same
// order, so without the rotation the first few would be served every turn and the others never).
// A token whose watch ended meanwhile (its slot free or reused) names nothing.
void OnEpoll(uv_poll_t* h, int /*status*/, int /*events*/) {
  Poller* p = static_cast<Poller*>(h->data);
  epoll_event evs[kBatch];
  int n;
  do n = epoll_wait(p->ep, evs, kBatch, 0);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return;
  const uint64_t budget = TurnBudgetNs();
  const uint64_t t0 = budget != 0 && n > 1 ? NowNs() : 0;
  int bulk[kBatch];
  int nb = 0;
  const bool bulk_last = BulkLast();
  bool light = false;  // this turn has an event of a watch not marked bulk
  for (int i = 0; i < n; i++) {
    const uint32_t slot = static_cast<uint32_t>(evs[i].data.u64);
    const bool is_bulk = slot < p->slots.size() && p->slots[slot].bulk;
    if (!is_bulk) light = true;
    if (!bulk_last || is_bulk) bulk[nb++] = i;
    else Dispatch(p, evs[i]);
  }
  if (light) p->light_ms = uv_now(p->poll.loop);
  if (nb == 0) return;
  const int start = static_cast<int>(p->resume % static_cast<uint32_t>(nb));
  int done = 0;
  while (done < nb) {
    Dispatch(p, evs[bulk[(start + done) % nb]]);
    done++;
    if (t0 != 0 && done < nb && NowNs() - t0 >= budget) break;
  }
  p->resume = done < nb ? static_cast<uint32_t>(start + done) : 0;
}

// libuv's idle-time pre-poll. Node configures UV_METRICS_IDLE_TIME on every loop (for
// performance.eventLoopUtilization()); libuv then polls once with timeout 0 before each blocking
// poll, so that the time it sleeps can be told from the time events were already waiting: one
// epoll_pwait more per sleep, 4-5 per short connection in each process (docs/benchmarks.md,
// "the kernel side, session 20"). A thread with the addon's set turns the measure off when the
// set is made (LADDER_SKIP_IDLE_POLL=0: left on), unless something on the thread asked for it
// (LoopIdleTime(true): the server's loop statistics): libuv has no call to turn it off, so the
// bit is cleared in its loop's internal fields, whose first member is the flags word that
// uv_loop_configure(UV_METRICS_IDLE_TIME) sets (libuv 1.39 to 1.x; any other version: left on).
// While off, eventLoopUtilization() on that thread reads its idle time as it was (busy).
thread_local bool t_keep_idle_time = false;

unsigned int* IdleFlags(uv_loop_t* uv) {
  static const bool known = [] {
    const unsigned int v = uv_version();
    return (v >> 16) == 1 && ((v >> 8) & 0xff) >= 39;
  }();
  return known && uv->internal_fields != nullptr ? static_cast<unsigned int*>(uv->internal_fields) : nullptr;
}

bool SkipIdlePoll() {
  static const bool on = [] {
    const char* v = getenv("LADDER_SKIP_IDLE_POLL");
    return v == nullptr || strcmp(v, "0") != 0;
  }();
  return on;
}

void DropIdleTime(uv_loop_t* uv) {
  unsigned int* flags = IdleFlags(uv);
  if (flags != nullptr) *flags &= ~static_cast<unsigned int>(UV_METRICS_IDLE_TIME);
}

void OnClosed(uv_handle_t* h) {
  Poller* p = static_cast<Poller*>(h->data);
  close(p->ep);
  delete p;
}

// The env is going away: the watches' owners ended theirs in their own hooks (registered after
// this one, so run before it); anything left is forgotten with the set.
void Cleanup(void* arg) {
  Poller* p = static_cast<Poller*>(arg);
  if (t_poll == p) t_poll = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&p->poll), OnClosed);
}

Poller* PollerFor(napi_env env) {
  if (t_poll != nullptr) return t_poll->env == env ? t_poll : nullptr;
  PinLibrary();  // the poll's close callback may run after the env that loaded us
  uv_loop_t* uv = nullptr;
  if (napi_get_uv_event_loop(env, &uv) != napi_ok || uv == nullptr) return nullptr;
  Poller* p = new (std::nothrow) Poller();
  if (p == nullptr) return nullptr;
  p->env = env;
  const char* skip = getenv("LADDER_CLOSE_SKIPS_DEL");  // for A/B measures (docs/benchmarks.md)
  p->keep_del = skip != nullptr && strcmp(skip, "0") == 0;
  p->ep = epoll_create1(EPOLL_CLOEXEC);
  if (p->ep < 0 || uv_poll_init(uv, &p->poll, p->ep) != 0) {
    if (p->ep >= 0) close(p->ep);
    delete p;
    return nullptr;
  }
  p->poll.data = p;
  if (SkipIdlePoll() && !t_keep_idle_time) DropIdleTime(uv);
  uv_poll_start(&p->poll, UV_READABLE, OnEpoll);
  uv_unref(reinterpret_cast<uv_handle_t*>(&p->poll));
  if (napi_add_env_cleanup_hook(env, Cleanup, p) != napi_ok) {
    uv_close(reinterpret_cast<uv_handle_t*>(&p->poll), OnClosed);
    return nullptr;
  }
  t_poll = p;
  return p;
}

}  // namespace

bool PollReady(napi_env env) { return PollerFor(env) != nullptr; }

bool PollStart(napi_env env, PollWatch* w, int fd, uint32_t events, PollFn fn, void* target) {
  Poller* p = PollerFor(env);
  if (p == nullptr || w->token != 0 || fd < 0) {
    errno = ENOMEM;
    return false;
  }
  if (p->adopt && p->parked.token != 0 && p->parked.fd == fd) {
    // The parked registration, as it is: the same token, in the set with its interest.
    p->adopt = false;
    p->adopted++;
    *w = p->parked;
    p->parked = PollWatch{};
    p->slots[static_cast<uint32_t>(w->token)].fn = fn;
    p->slots[static_cast<uint32_t>(w->token)].target = target;
    return events == 0 || PollSet(w, events);
  }
  uint32_t slot;
  if (!p->free_slots.empty()) {
    slot = p->free_slots.back();
    p->free_slots.pop_back();
  } else if (p->slots.size() < UINT32_MAX) {
    slot = static_cast<uint32_t>(p->slots.size());
    p->slots.emplace_back();
  } else {
    errno = ENOMEM;
    return false;
  }
  uint32_t gen = p->next_gen++;
  if (gen == 0) gen = p->next_gen++;
  p->slots[slot] = Slot{fn, target, gen};
  w->token = (static_cast<uint64_t>(gen) << 32) | slot;
  w->fd = fd;
  w->events = 0;
  if (events != 0 && !PollSet(w, events)) {
    const int e = errno;
    PollEnd(w);
    errno = e;
    return false;
  }
  return true;
}

bool PollSet(PollWatch* w, uint32_t events) {
  Poller* p = t_poll;
  if (p == nullptr || w->token == 0) {
    errno = EBADF;
    return false;
  }
  if (events == w->events) return true;
  epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = events;
  ev.data.u64 = w->token;
  const int op = w->events == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  if (op == EPOLL_CTL_ADD && p->parked.token != 0 && p->parked.fd == w->fd) {
    // Another watch of the parked descriptor (JS gave it to something else within the call), or
    // of a new socket that took its number after JS closed it: the park ends first (its DEL
    // fails harmlessly in the second case), so the ADD neither fails with EEXIST nor is undone
    // by the unpark when the call returns.
    PollUnpark();
  }
  if (epoll_ctl(p->ep, op, w->fd, &ev) != 0) return false;
  if (w->events == 0 && p->refs++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(&p->poll));
  if (events == 0 && --p->refs == 0) uv_unref(reinterpret_cast<uv_handle_t*>(&p->poll));
  w->events = events;
  return true;
}

namespace {

void EndWatch(PollWatch* w, bool del) {
  if (w->token == 0) return;
  Poller* p = t_poll;
  if (p != nullptr) {
    if (w->events != 0) {
      if (del) {
        epoll_event ev;
        memset(&ev, 0, sizeof(ev));
        epoll_ctl(p->ep, EPOLL_CTL_DEL, w->fd, &ev);  // a failure (fd closed already) changes nothing
      }
      if (--p->refs == 0) uv_unref(reinterpret_cast<uv_handle_t*>(&p->poll));
    }
    const uint32_t slot = static_cast<uint32_t>(w->token);
    if (slot < p->slots.size() && p->slots[slot].gen == static_cast<uint32_t>(w->token >> 32)) {
      p->slots[slot] = Slot{};
      p->free_slots.push_back(slot);
    }
  }
  w->token = 0;
  w->events = 0;
  w->fd = -1;
}

}  // namespace

void PollEnd(PollWatch* w) { EndWatch(w, true); }

bool PollLightWithin(uint64_t ms) {
  const Poller* p = t_poll;
  return p != nullptr && p->light_ms != 0 && uv_now(p->poll.loop) - p->light_ms < ms;
}

void PollMarkBulk(PollWatch* w) {
  Poller* p = t_poll;
  if (p == nullptr || w->token == 0) return;
  const uint32_t slot = static_cast<uint32_t>(w->token);
  if (slot < p->slots.size() && p->slots[slot].gen == static_cast<uint32_t>(w->token >> 32)) p->slots[slot].bulk = true;
}

void PollEndForClose(PollWatch* w) { EndWatch(w, t_poll != nullptr && t_poll->keep_del); }

bool PollMove(PollWatch* from, PollWatch* to, PollFn fn, void* target) {
  Poller* p = t_poll;
  if (p == nullptr || from->token == 0 || to->token != 0) return false;
  const uint32_t slot = static_cast<uint32_t>(from->token);
  if (slot >= p->slots.size() || p->slots[slot].gen != static_cast<uint32_t>(from->token >> 32)) return false;
  p->slots[slot].fn = fn;
  p->slots[slot].target = target;
  *to = *from;
  *from = PollWatch{};
  return true;
}

void PollPark(PollWatch* w) {
  Poller* p = t_poll;
  if (p == nullptr || w->token == 0 || w->events == 0) return PollEnd(w);
  PollUnpark();  // one at a time
  const uint32_t slot = static_cast<uint32_t>(w->token);
  if (slot >= p->slots.size() || p->slots[slot].gen != static_cast<uint32_t>(w->token >> 32)) return PollEnd(w);
  p->slots[slot].fn = nullptr;  // an event fetched meanwhile is dropped
  p->slots[slot].target = nullptr;
  p->parked = *w;
  w->token = 0;
  w->events = 0;
  w->fd = -1;
}

bool PollAdopting(int fd) {
  Poller* p = t_poll;
  if (p == nullptr) return false;
  p->adopt = fd >= 0 && p->parked.token != 0 && p->parked.fd == fd;
  return p->adopt;
}

void PollUnpark() {
  Poller* p = t_poll;
  if (p == nullptr) return;
  p->adopt = false;
  PollEnd(&p->parked);
}

void* PollTarget(uint32_t slot, uint32_t gen, uint32_t gen_bits, PollFn fn) {
  const Poller* p = t_poll;
  if (p == nullptr || slot >= p->slots.size()) return nullptr;
  const Slot& s = p->slots[slot];
  const uint32_t mask = gen_bits >= 32 ? UINT32_MAX : (1u << gen_bits) - 1;
  return s.gen != 0 && (s.gen & mask) == gen && s.fn == fn ? s.target : nullptr;
}

// pollLive() -> [watches, in the set, parked watches adopted so far] on this thread (tests: every
// watch ends, the loop is let go; the front's hand-off happened).
napi_value PollLive(napi_env env, napi_callback_info /*info*/) {
  const Poller* p = t_poll;
  const bool here = p != nullptr && p->env == env;
  const size_t watches = here ? p->slots.size() - p->free_slots.size() : 0;
  napi_value arr;
  if (napi_create_array_with_length(env, 3, &arr) != napi_ok) return nullptr;
  napi_set_element(env, arr, 0, Number(env, static_cast<int32_t>(watches)));
  napi_set_element(env, arr, 1, Number(env, here ? static_cast<int32_t>(p->refs) : 0));
  napi_set_element(env, arr, 2, Number(env, here ? static_cast<int32_t>(p->adopted) : 0));
  return arr;
}

// loopIdleTime(keep?) -> boolean: whether libuv measures this thread's idle time (the pre-poll
// above). keep true: measure it from now on and keep measuring when the addon's set is made (for
// eventLoopUtilization(): src/server/workers/loop-stats.ts); false: stop, as the set does.
napi_value LoopIdleTime(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uv_loop_t* uv = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok ||
      napi_get_uv_event_loop(env, &uv) != napi_ok || uv == nullptr) {
    return nullptr;
  }
  bool keep = false;
  napi_valuetype t = napi_undefined;
  if (argc >= 1 && napi_typeof(env, argv[0], &t) == napi_ok && t == napi_boolean &&
      napi_get_value_bool(env, argv[0], &keep) == napi_ok) {
    t_keep_idle_time = keep;
    if (keep) uv_loop_configure(uv, UV_METRICS_IDLE_TIME);
    else DropIdleTime(uv);
  }
  const unsigned int* flags = IdleFlags(uv);
  return Bool(env, flags == nullptr || (*flags & static_cast<unsigned int>(UV_METRICS_IDLE_TIME)) != 0);
}

#endif  // __linux__

}  // namespace ladder
