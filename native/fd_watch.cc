// Ladder native addon: wait, without accepting or reading, until one of some sockets is readable
// (Linux). The data-plane workers start on demand: at boot the main thread owns the listening
// TCP sockets (listening, so the kernel completes handshakes into their backlogs) and the bound
// UDP socket; this tells it when the first connection or datagram waits, and the workers then
// take the sockets over and accept from the backlog. Nothing is consumed, so nothing is lost.
//   fdWatch(fds: number[], onReadable) -> watch
//       polls every fd (level-triggered, on node's libuv loop; the poll keeps the loop alive).
//       The first time any is readable (or reports an error) every poll stops and onReadable()
//       is called once. The fds stay open and owned by the caller.
//   fdUnwatch(watch)                 stops polling (no callback after it); idempotent
#include <new>
#include <vector>

#if defined(__linux__)
#include <uv.h>
#endif

#include "exports.h"
#include "napi_args.h"

namespace ladder {

#if defined(__linux__)

namespace {

struct Watch {
  napi_env env = nullptr;
  napi_ref callback = nullptr;
  napi_ref self = nullptr;
  napi_async_context actx = nullptr;
  std::vector<uv_poll_t*> polls;
  size_t open = 0;         // poll handles not yet closed
  bool stopped = false;
  bool finalized = false;
  bool hooked = false;     // the env cleanup hook is registered
};

const napi_type_tag kWatchTag = {0x6c61646465725744ULL, 0x4154434830300001ULL};

void Cleanup(void* arg);

void MaybeFree(Watch* w) {
  if (w->open == 0 && w->finalized) delete w;
}

void OnClosed(uv_handle_t* h) {
  Watch* w = static_cast<Watch*>(h->data);
  delete reinterpret_cast<uv_poll_t*>(h);
  w->open--;
  MaybeFree(w);
}

// Stops every poll (the fds are the caller's) and drops the references; true if it was running.
bool Stop(Watch* w) {
  if (w->stopped) return false;
  w->stopped = true;
  if (w->hooked) napi_remove_env_cleanup_hook(w->env, Cleanup, w);
  w->hooked = false;
  for (uv_poll_t* p : w->polls) {
    uv_poll_stop(p);
    uv_close(reinterpret_cast<uv_handle_t*>(p), OnClosed);
  }
  w->polls.clear();
  if (w->self != nullptr) napi_delete_reference(w->env, w->self);
  w->self = nullptr;
  return true;
}

void Release(Watch* w) {
  if (w->callback != nullptr) napi_delete_reference(w->env, w->callback);
  w->callback = nullptr;
  if (w->actx != nullptr) napi_async_destroy(w->env, w->actx);
  w->actx = nullptr;
}

void OnReadable(uv_poll_t* h, int /*status*/, int /*events*/) {
  Watch* w = static_cast<Watch*>(h->data);
  napi_env env = w->env;
  if (!Stop(w)) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, result;
  if (w->callback != nullptr && napi_get_reference_value(env, w->callback, &cb) == napi_ok &&
      napi_get_global(env, &recv) == napi_ok) {
    napi_make_callback(env, w->actx, recv, cb, 0, nullptr, &result);
    RaisePendingException(env);
  }
  Release(w);
  napi_close_handle_scope(env, scope);
}

void Finalize(napi_env /*env*/, void* data, void* /*hint*/) {
  Watch* w = static_cast<Watch*>(data);
  w->finalized = true;  // a running watch holds its own handle, so it was stopped already
  MaybeFree(w);
}

void Cleanup(void* arg) {
  Watch* w = static_cast<Watch*>(arg);
  w->hooked = false;  // running now: not removed again
  if (Stop(w)) Release(w);
}

}  // namespace

napi_value FdWatch(napi_env env, napi_callback_info info) {
  Args a(env, info);
  bool is_array = false;
  uint32_t n = 0;
  if (!a.Need(2) || napi_is_array(env, a[0], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, a[0], &n) != napi_ok || n < 1 || n > 64 || !a.Function(1)) {
    Throw(env, "fdWatch(fds: 1..64 fds, onReadable)");
    return nullptr;
  }
  std::vector<int32_t> fds(n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    if (napi_get_element(env, a[0], i, &v) != napi_ok || napi_get_value_int32(env, v, &fds[i]) != napi_ok ||
        fds[i] < 0) {
      Throw(env, "fdWatch: every fd must be an integer >= 0");
      return nullptr;
    }
  }
  uv_loop_t* loop = nullptr;
  Watch* w = new (std::nothrow) Watch();
  if (w == nullptr || napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    delete w;
    napi_throw_error(env, "ERR_LADDER_WATCH", "cannot watch the sockets");
    return nullptr;
  }
  w->env = env;
  napi_value ext, name;
  if (napi_create_external(env, w, Finalize, nullptr, &ext) != napi_ok) {
    delete w;
    napi_throw_error(env, "ERR_LADDER_WATCH", "napi_create_external failed");
    return nullptr;
  }
  bool ok = napi_type_tag_object(env, ext, &kWatchTag) == napi_ok &&
            napi_create_string_utf8(env, "ladder:fdwatch", NAPI_AUTO_LENGTH, &name) == napi_ok &&
            napi_create_reference(env, a[1], 1, &w->callback) == napi_ok &&
            napi_create_reference(env, ext, 1, &w->self) == napi_ok &&
            napi_async_init(env, nullptr, name, &w->actx) == napi_ok;
  for (uint32_t i = 0; ok && i < n; i++) {
    uv_poll_t* p = new (std::nothrow) uv_poll_t();
    if (p == nullptr || uv_poll_init_socket(loop, p, fds[i]) != 0) {
      delete p;
      ok = false;
      break;
    }
    p->data = w;
    w->polls.push_back(p);
    w->open++;
    if (uv_poll_start(p, UV_READABLE, OnReadable) != 0) ok = false;
  }
  if (!ok) {
    Stop(w);
    Release(w);
    napi_throw_error(env, "ERR_LADDER_WATCH", "cannot poll the sockets");
    return nullptr;
  }
  if (napi_add_env_cleanup_hook(env, Cleanup, w) == napi_ok) w->hooked = true;
  return ext;
}

napi_value FdUnwatch(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* p = nullptr;
  if (!a.Need(1) || !a.Tagged(0, kWatchTag, &p, "fdUnwatch(watch)")) return nullptr;
  Watch* w = static_cast<Watch*>(p);
  if (Stop(w)) Release(w);
  return nullptr;
}

#endif  // __linux__

}  // namespace ladder
