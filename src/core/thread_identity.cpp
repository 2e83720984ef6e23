#include "core/thread_identity.hpp"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace interlock::core {

namespace detail {
__thread ThreadIdentity tls_identity __attribute__((tls_model("initial-exec"))) = {0, 0};
}  // namespace detail

namespace {

void forget_identity_in_child() { detail::tls_identity = ThreadIdentity{0, 0}; }

// Registers the fork handler once, the first time any thread asks who it is.
struct ForkHandlerRegistration {
  ForkHandlerRegistration() { pthread_atfork(nullptr, nullptr, &forget_identity_in_child); }
};

}  // namespace

const ThreadIdentity& detail::load_identity() {
  static ForkHandlerRegistration registration;
  (void)registration;
  tls_identity.tid = static_cast<uint32_t>(syscall(SYS_gettid));
  tls_identity.pid = static_cast<uint32_t>(getpid());
  return tls_identity;
}

}  // namespace interlock::core
