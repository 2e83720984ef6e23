// rwlock_wait.hpp: how an RWLock's waiters sleep and its releasers wake them.
//
// Readers sleep on RWLockState::read_seq and writers on write_seq, never on the state word.
// Each side counts its sleepers. The handshake is store-then-load on two locations, all
// seq_cst:
//   sleeper: read the sequence word, add itself to the sleepers, look at the state (its
//            `ready` test), and sleep only while the sequence word is unchanged;
//   waker:   change the state, read the sleepers, and only if there are any, bump the
//            sequence word and wake.
// Either the waker sees the sleeper, whose sleep then ends on the bumped word, or the sleeper
// sees the new state and does not sleep. So an uncontended release costs no system call and
// no extra atomic write.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/deadline.hpp"
#include "core/futex.hpp"

namespace interlock::core::rwlock {

// The waker half; `count` sleepers are woken (INT_MAX: all).
inline void wake_side(std::atomic<uint32_t>& seq, std::atomic<uint32_t>& sleepers, int count) {
  if (sleepers.load(std::memory_order_seq_cst) == 0) return;  // seq_cst: the handshake
  seq.fetch_add(1, std::memory_order_seq_cst);
  futex_wake(&seq, count);
}

// The sleeper half: sleeps once on `seq`, unless `ready()` holds once this thread counts
// among `sleepers`. kOk: look again.
template <class Ready>
Status sleep_on(std::atomic<uint32_t>& seq, std::atomic<uint32_t>& sleepers,
                const Deadline& deadline, Ready&& ready) {
  // seq_cst: the sleeper half of the handshake: sequence, sleepers, then state.
  const uint32_t seen = seq.load(std::memory_order_seq_cst);
  sleepers.fetch_add(1, std::memory_order_seq_cst);
  Status st = ready() ? Status::kOk : futex_wait(&seq, seen, deadline);
  sleepers.fetch_sub(1, std::memory_order_relaxed);  // only ever an over-estimate
  return st;
}

}  // namespace interlock::core::rwlock
