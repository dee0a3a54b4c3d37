// Ladder native addon: the relay process's scheduling policy (Linux).
//
//   schedBatch() -> number
//       Puts every thread of this process in SCHED_BATCH (nice values kept); threads created
//       afterwards inherit it from their creator. Returns how many threads were set, -errno when
//       the first one failed (0 elsewhere than Linux).
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
#include <sched.h>
#include <sys/types.h>
#endif

namespace ladder {

napi_value SchedBatch(napi_env env, napi_callback_info /*info*/) {
#if defined(__linux__)
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
