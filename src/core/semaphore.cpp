#include "core/semaphore.hpp"

#include "core/spin.hpp"

namespace interlock::core::semaphore {

void init(SemaphoreState& s, uint32_t value, uint32_t maxvalue) {
  // Not yet shared with anyone: relaxed stores; publication happens with the slot's tag.
  s.value.store(value, std::memory_order_relaxed);
  s.waiters.store(0, std::memory_order_relaxed);
  s.maxvalue = maxvalue;
}

bool try_acquire(SemaphoreState& s) {
  uint32_t v = s.value.load(std::memory_order_relaxed);  // a guess for the CAS
  while (v > 0) {
    // acquire: take the permit and everything its releaser did before releasing it.
    if (s.value.compare_exchange_weak(v, v - 1, std::memory_order_acquire,
                                      std::memory_order_relaxed))
      return true;
  }
  return false;
}

Status acquire(SemaphoreState& s, const Deadline& deadline, Spin spin) {
  if (try_acquire(s) || (spin == Spin::kYes && spin_until([&] { return try_acquire(s); })))
    return Status::kOk;
  // seq_cst: the waiter half of the handshake described in the header.
  s.waiters.fetch_add(1, std::memory_order_seq_cst);
  Status result;
  while (true) {
    if (try_acquire(s)) {
      result = Status::kOk;
      break;
    }
    Status st = futex_wait(&s.value, 0, deadline);
    if (st == Status::kOk) continue;
    result = (st == Status::kTimedOut && try_acquire(s)) ? Status::kOk : st;
    break;
  }
  s.waiters.fetch_sub(1, std::memory_order_relaxed);  // only ever an over-estimate
  return result;
}

bool release(SemaphoreState& s, uint32_t n) {
  uint32_t v = s.value.load(std::memory_order_relaxed);  // a guess for the CAS
  do {
    if (n > s.maxvalue - v) return false;
    // seq_cst: release for the permit, and the releaser half of the handshake.
  } while (!s.value.compare_exchange_weak(v, v + n, std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
  if (s.waiters.load(std::memory_order_seq_cst) != 0)
    futex_wake(&s.value, n > 0x7fffffffu ? -1 : static_cast<int>(n));
  return true;
}

}  // namespace interlock::core::semaphore
