#include "core/thread_identity.hpp"

#include "core/process_identity.hpp"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace interlock::core {

namespace detail {
__thread ThreadIdentity tls_identity __attribute__((tls_model("initial-exec"))) = {0, 0, 0};
}  // namespace detail

namespace {

void forget_identity_in_child() { detail::tls_identity = ThreadIdentity{0, 0, 0}; }

// Registers the fork handler once, the first time any thread asks who it is.
struct ForkHandlerRegistration {
  ForkHandlerRegistration() { pthread_atfork(nullptr, nullptr, &forget_identity_in_child); }
};

}  // namespace

const ThreadIdentity& detail::load_identity() {
  static ForkHandlerRegistration registration;
  (void)registration;
  uint32_t tid = static_cast<uint32_t>(syscall(SYS_gettid));
  uint32_t pid = static_cast<uint32_t>(getpid());
  int64_t stamp = process_stamp(pid);  // once per thread; cheap enough (a /proc read)
  tls_identity.owner = make_owner_record(tid, pid, stamp < 0 ? 0 : static_cast<uint32_t>(stamp));
  tls_identity.pid = pid;
  tls_identity.tid = tid;  // last: a nonzero tid marks the identity as loaded
  return tls_identity;
}

}  // namespace interlock::core
