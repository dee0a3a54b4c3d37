// Ladder native addon: one epoll set per thread for the sockets of the TCP path - connections
// accepted and read until the hand-off (tcp_accept.cc), pending connects (tcp_connect.cc),
// relays (relay_pair.cc), the client's SOCKS5 handshakes (socks5_front.cc) and application
// connections JS carries (app_conn.cc) - polled by one uv_poll on the thread's loop (Linux), so a
// wake-up costs one epoll_wait whichever of them have events.
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

// PollEnd for a descriptor the caller closes right after, when it holds the only descriptor of
// the socket (no dup of it anywhere, none left to JS or libuv): close(2) then releases the open
// file, and the kernel takes it out of every epoll set itself, so the epoll_ctl DEL is skipped.
// Where another descriptor may remain (the caller's dup, a net.Socket's), use PollEnd: the
// registration would outlive the close and report the socket's events until that one closes.
// A fork's child holds copies of every descriptor until its exec (all of the addon's are
// close-on-exec): in that window the set may report events of a closed watch, which are
// dropped as those of any ended watch are (the token names nothing).
void PollEndForClose(PollWatch* w);

// Marks the watch bulk: in each loop turn its events come after every other watch's, and only
// while the turn's time budget lasts (LADDER_POLL_TURN_US, 250 µs; the rest at the next turn, in
// rotation), so a busy relay's 1 MiB reads do not hold up the steps of short connections on the
// same thread. Relays mark both sides once a read fills (relay_pair.cc). Lasts with the watch
// (PollMove keeps it).
void PollMarkBulk(PollWatch* w);

// Whether this thread served an event of a watch not marked bulk within the last `ms` ms (by its
// loop's clock): some short exchange is in progress here, so a bulk relay keeps its reads small
// enough that a loop turn stays short (relay_pair.cc).
bool PollLightWithin(uint64_t ms);

// Hands the watch `from` (in the set or not) to another owner, as it is (no epoll_ctl): `to` takes
// its registration and interest, and events go to fn(target) from now on (one fetched in the
// same wake-up too: it is the same descriptor's). `from` is left ended. False, with nothing
// moved, when `from` has no watch or `to` has one.
bool PollMove(PollWatch* from, PollWatch* to, PollFn fn, void* target);

// A descriptor handed on without leaving the set and joining it again (an epoll_ctl DEL + ADD
// saved): the client's SOCKS5 front parks a connection's watch while JS decides (PollPark); a
// tunnel that starts its relay inside that call arms the adoption for the descriptor it holds
// (PollAdopting), and the relay's PollStart of it then takes the registration as it is (its
// interest kept: PollSet changes it only if the relay wants another). Whatever is still parked
// when the call returns leaves the set (PollUnpark), as PollEnd would have. One parked watch per
// thread. Any other watch that joins the set with the parked descriptor's number ends the park
// first (the descriptor given to something else in the call, or closed and its number reused):
// the DEL that would otherwise come when the call returns would name the new registration.
void PollPark(PollWatch* w);
// Arms (fd >= 0: true if fd is the parked one) or disarms (-1) the next PollStart's adoption.
bool PollAdopting(int fd);
void PollUnpark();

// The target of the live watch on this thread whose token's slot is `slot` and whose generation's
// low `gen_bits` bits are `gen`, when its callback is fn; else nullptr (an ended watch, another
// kind of watch). For ids handed to JS, which cannot hold a whole token exactly.
void* PollTarget(uint32_t slot, uint32_t gen, uint32_t gen_bits, PollFn fn);

#endif  // __linux__

}  // namespace ladder

#endif  // LADDER_NATIVE_THREAD_POLL_H_
