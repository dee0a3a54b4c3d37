// Ladder native addon: one epoll set per thread for the sockets of the TCP path - connections
// accepted and read until the hand-off (tcp_accept.cc), pending connects (tcp_connect.cc) and
// relays (relay_pair.cc) - polled by one uv_poll on the thread's loop (Linux).
//
// Why: a uv_poll per socket costs, on top of the ADD, an epoll_ctl ADD + DEL pair and an ioctl at
// init, a DEL at every stop, and a uv_close whose callback needs one more loop turn (an extra
// epoll_pwait with timeout 0). Here a socket costs one epoll_ctl when watched, one per change of
// interest and one when it stops; nothing needs a close callback, so its owner may free it as
// soon as it stops watching.
//
// Level-triggered, as uv_poll is. An event is delivered by token (slot and generation), so an
// event fetched in the same batch as the stop of its watch is dropped, never delivered to memory
// that was freed. A watch with interest keeps the loop alive (uv_ref), as an active uv_poll does.
#ifndef LADDER_NATIVE_THREAD_POLL_H_
#define LADDER_NATIVE_THREAD_POLL_H_

#include "common.h"

#include <cstdint>

namespace ladder {

#if defined(__linux__)

// Called from the loop with the epoll events (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP...).
using PollFn = void (*)(void* target, uint32_t events);

struct PollWatch {
  uint64_t token = 0;   // 0: no watch (never started, or ended)
  uint32_t events = 0;  // the interest in the epoll set (0: not in it)
  int fd = -1;
};

// Creates this thread's set on first use (false when it cannot: out of memory, a second env on
// the thread). Call it before registering the caller's own env cleanup hook, so that the caller's
// hook (which may end watches) runs before the set's own (hooks run in reverse order).
bool PollReady(napi_env env);

// Starts a watch of fd for `events` (0: known but not in the set yet); false on failure (errno
// from epoll_ctl, or ENOMEM). fn(target, events) is called for each event until PollEnd.
bool PollStart(napi_env env, PollWatch* w, int fd, uint32_t events, PollFn fn, void* target);

// Changes the interest: 0 takes the fd out of the set (a socket whose peer hung up would
// otherwise be reported without end), anything else puts it in or modifies it. False on failure.
bool PollSet(PollWatch* w, uint32_t events);

// Ends the watch (out of the set; call it before closing or handing on the fd). Idempotent.
void PollEnd(PollWatch* w);

#endif  // __linux__

}  // namespace ladder

#endif  // LADDER_NATIVE_THREAD_POLL_H_
