#include "core/thread_identity.hpp"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace interlock::core {

namespace {

// initial-exec: the identity is read on every acquire, and this model makes that one
// %fs-relative load instead of a __tls_get_addr call. It needs 8 bytes of static TLS, which
// glibc's surplus provides to modules loaded with dlopen.
__attribute__((tls_model("initial-exec"))) thread_local ThreadIdentity tls_identity{0, 0};

void forget_identity_in_child() { tls_identity = ThreadIdentity{0, 0}; }

// Registers the fork handler once, the first time any thread asks who it is.
struct ForkHandlerRegistration {
  ForkHandlerRegistration() { pthread_atfork(nullptr, nullptr, &forget_identity_in_child); }
};

}  // namespace

const ThreadIdentity& current_thread() {
  if (tls_identity.tid == 0) {
    static ForkHandlerRegistration registration;
    (void)registration;
    tls_identity.tid = static_cast<uint32_t>(syscall(SYS_gettid));
    tls_identity.pid = static_cast<uint32_t>(getpid());
  }
  return tls_identity;
}

}  // namespace interlock::core
