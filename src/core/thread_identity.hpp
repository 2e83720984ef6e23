// thread_identity.hpp: who is calling, as the kernel names it.
//
// A kernel thread id (gettid) is unique among the live threads of every process in one pid
// namespace, so it identifies "this process and this thread" in a single 32-bit word that
// other processes can compare against. Both ids are cached per thread; a fork handler clears
// the cache in the child, whose only thread has new ids.
#pragma once

#include <cstdint>

namespace interlock::core {

struct ThreadIdentity {
  uint32_t tid;  // kernel thread id (gettid), never 0
  uint32_t pid;  // process id (getpid)
};

// The calling thread's identity. Cheap after the first call in each thread.
const ThreadIdentity& current_thread();

}  // namespace interlock::core
