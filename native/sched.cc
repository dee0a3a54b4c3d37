// Ladder native addon: the relay process's scheduling policy (Linux).
//
//   schedBatch() -> number
//       Puts every thread of this process in SCHED_BATCH (nice values kept); threads created
//       afterwards inherit it from their creator. Child processes do not: a fork's child goes
//       back to the policy the process had before (a pthread_atfork handler, before its exec:
//       Node's child_process and libuv's uv_spawn fork through the C library), so the peers a
//       lab or probe starts, or an openssl the API runs, are scheduled as they would have been.
//       Returns how many threads were set, -errno when the first one failed (0 elsewhere than
//       Linux).
//
// Why (docs/benchmarks.md, "where the kernel time of a short connection goes"): on loopback each
// write wakes its reader, and a woken SCHED_OTHER task preempts the task that woke it when the
// scheduler finds its deadline earlier - a context switch out and back for the waker, about 8 µs
// each in the measured VM. A woken SCHED_BATCH task does not preempt; it runs when the CPU's
// current task blocks or its slice ends. The price: on a busy CPU a woken relay waits for that
// slice (latency), so the CLI applies it only when asked (LADDER_SCHED_BATCH=1).
#include "exports.h"
#include "napi_args.h"

#include <cerrno>
#include <cstdlib>

#if defined(__linux__)
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <sys/types.h>
#endif

namespace ladder {

#if defined(__linux__)
namespace {

int g_policy_before = -1;  // the calling thread's policy at the first schedBatch (-1: none yet)

// In a fork's child (its one thread, the one that forked): the policy from before schedBatch.
void RestoreInChild() {
  if (g_policy_before < 0 || sched_getscheduler(0) != SCHED_BATCH) return;  // nothing to undo
  sched_param param{};
  param.sched_priority = 0;
  sched_setscheduler(0, g_policy_before, &param);
}

}  // namespace
#endif

napi_value SchedBatch(napi_env env, napi_callback_info /*info*/) {
#if defined(__linux__)
  if (g_policy_before < 0) {
    const int before = sched_getscheduler(0);
    if (before < 0) return Number(env, -errno);
    // Only a policy a child could be given back without privilege (not the real-time ones).
    if (before == SCHED_OTHER || before == SCHED_BATCH || before == SCHED_IDLE) {
      const int e = pthread_atfork(nullptr, nullptr, RestoreInChild);
      if (e != 0) return Number(env, -e);
    }
    g_policy_before = before;
  }
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return Number(env, -errno);
  int32_t set = 0;
  int32_t first_err = 0;
  sched_param param{};
  param.sched_priority = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const pid_t tid = static_cast<pid_t>(strtol(e->d_name, nullptr, 10));
    if (sched_setscheduler(tid, SCHED_BATCH, &param) == 0) set++;
    else if (first_err == 0 && errno != ESRCH) first_err = -errno;  // ESRCH: the thread ended
  }
  closedir(d);
  return Number(env, set > 0 ? set : first_err);
#else
  return Number(env, 0);
#endif
}

}  // namespace ladder
