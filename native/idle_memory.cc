// Ladder native addon: give back what start-up left behind (main thread only).
//
//   releaseIdleMemory() -> boolean
//       One last-resort garbage collection of the calling thread's V8 heap (the one V8 itself
//       runs under memory pressure: compacts the old generation, shrinks the young generation to
//       its initial size, drops bytecode no function is running, frees the pages V8 kept pooled
//       for reuse), then malloc_trim(0) (glibc: the free memory of every arena goes back to the
//       kernel). False when called off a JavaScript thread (nothing done).
//
// Why (docs/benchmarks.md, "Sixteenth session: rss16"): an idle process reaches that state on
// its own - V8's memory reducer runs the same kind of collection once the process has been idle
// for a while - but only some 8 s after start-up's heap first grew, so for its first ~9 s a
// client or unmanaged server holds 2.7 MiB more, and a managed server ~6 MiB more. The CLI calls
// this once when start-up is over (src/cli/main.ts, through whenStarted in src/shared/startup.ts);
// it costs the main thread some 20-60 ms then and nothing afterwards. Includes <v8.h>: the addon
// is built against the headers of the node that runs it (scripts/build-native.mjs), and
// Isolate::GetCurrent / LowMemoryNotification are long-standing exports of every node binary.
#include "exports.h"
#include "napi_args.h"

#include <v8.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace ladder {

napi_value ReleaseIdleMemory(napi_env env, napi_callback_info /*info*/) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate == nullptr) return Bool(env, false);
  isolate->LowMemoryNotification();
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
  return Bool(env, true);
}

}  // namespace ladder
