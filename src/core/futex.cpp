#include "core/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace interlock::core {

Status futex_wait(std::atomic<uint32_t>* word, uint32_t expected, const Deadline& deadline) {
  const timespec* when = deadline.is_infinite() ? nullptr : &deadline.when();
  // FUTEX_WAIT_BITSET without FUTEX_CLOCK_REALTIME measures an absolute CLOCK_MONOTONIC time.
  long rc = syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_BITSET, expected,
                    when, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (rc == 0) return Status::kOk;
  switch (errno) {
    case ETIMEDOUT:
      return Status::kTimedOut;
    case EINTR:
      return Status::kInterrupted;
    default:  // EAGAIN: the word had already changed.
      return Status::kOk;
  }
}

void futex_wake(std::atomic<uint32_t>* word, int count) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, count < 0 ? INT_MAX : count,
          nullptr, nullptr, 0);
}

}  // namespace interlock::core
