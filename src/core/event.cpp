#include "core/event.hpp"

#include "core/spin.hpp"

namespace interlock::core::event {

void set(EventState& e) {
  // seq_cst: publishes the caller's writes and is the setter half of the handshake.
  if (e.flag.exchange(1, std::memory_order_seq_cst) == 0 &&
      e.waiters.load(std::memory_order_seq_cst) != 0)
    futex_wake(&e.flag, -1);
}

Status wait(EventState& e, const Deadline& deadline, Spin spin) {
  if (is_set(e) || (spin == Spin::kYes && spin_until([&] { return is_set(e); })))
    return Status::kOk;
  // seq_cst: the waiter half of the handshake.
  e.waiters.fetch_add(1, std::memory_order_seq_cst);
  Status result;
  while (true) {
    if (is_set(e)) {
      result = Status::kOk;
      break;
    }
    Status st = futex_wait(&e.flag, 0, deadline);
    if (st == Status::kOk) continue;
    result = (st == Status::kTimedOut && is_set(e)) ? Status::kOk : st;
    break;
  }
  e.waiters.fetch_sub(1, std::memory_order_relaxed);  // only ever an over-estimate
  return result;
}

}  // namespace interlock::core::event
