// thread_identity.hpp: who is calling, as the kernel names it.
//
// A kernel thread id (gettid) is unique among the live threads of every process in one pid
// namespace, so it identifies "this process and this thread" in a single 32-bit word that
// other processes can compare against. Both ids are cached per thread; the fork handler
// (lifecycle.hpp) clears the cache in the child, whose only thread has new ids.
#pragma once

#include <cstdint>

namespace interlock::core {

struct ThreadIdentity {
  uint32_t tid;    // kernel thread id (gettid), never 0
  uint32_t pid;    // process id (getpid)
  uint64_t owner;  // this thread's owner record (process_identity.hpp)
};

namespace detail {
// __thread (a plain POD, so no TLS wrapper call) with the initial-exec model: the identity
// is read on every acquire, and this model makes that one
// %fs-relative load instead of a __tls_get_addr call. It needs 16 bytes of static TLS, which
// glibc's surplus provides to modules loaded with dlopen.
extern __thread ThreadIdentity tls_identity __attribute__((tls_model("initial-exec")));
const ThreadIdentity& load_identity();
// Clears the calling thread's cache (the fork child's step, lifecycle.cpp).
void forget_identity();
}  // namespace detail

// The calling thread's identity. Cheap after the first call in each thread.
inline const ThreadIdentity& current_thread() {
  if (detail::tls_identity.tid != 0) return detail::tls_identity;
  return detail::load_identity();
}

}  // namespace interlock::core
