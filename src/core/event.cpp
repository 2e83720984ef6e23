#include "core/event.hpp"

#include "core/spin.hpp"

namespace interlock::core::event {

void set(EventState& e) {
  // Setting the low bit of an even word is adding one; an odd word is left as it is. As a
  // single-bit test-and-set it is one instruction (x86 lock bts, AArch64 ldset).
  // seq_cst: publishes the caller's writes and is the setter half of the handshake (header).
  if (word_is_set(e.word.fetch_or(1u, std::memory_order_seq_cst))) return;
  if (e.waiters.load(std::memory_order_seq_cst) != 0) futex_wake(&e.word, -1);
}

Status wait(EventState& e, uint32_t since, const Deadline& deadline, Spin spin) {
  auto changed = [&] { return snapshot(e) != since; };
  if (word_is_set(since) || changed() || (spin == Spin::kYes && spin_until(changed)))
    return Status::kOk;
  // seq_cst: the waiter half of the handshake.
  e.waiters.fetch_add(1, std::memory_order_seq_cst);
  Status result;
  while (true) {
    // seq_cst: the load after the increment in the handshake.
    if (e.word.load(std::memory_order_seq_cst) != since) {
      result = Status::kOk;
      break;
    }
    Status st = futex_wait(&e.word, since, deadline);
    if (st == Status::kOk) continue;  // woken, or the word already differed: look again
    result = (st == Status::kTimedOut && changed()) ? Status::kOk : st;
    break;
  }
  e.waiters.fetch_sub(1, std::memory_order_relaxed);  // only ever an over-estimate
  return result;
}

uint32_t waiters(const EventState& e) {
  return e.waiters.load(std::memory_order_relaxed);  // a report for tests, not a handshake
}

}  // namespace interlock::core::event
