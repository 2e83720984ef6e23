// barrier.hpp: a reusable barrier for a fixed number of parties.
//
// BarrierState::inner is a small mutex (the mutex.hpp protocol) that guards every other field
// except `seq`, the futex word that sleepers wait on. Every change that a sleeper may be
// waiting for (a round released, broken, or reset) bumps `seq` under `inner` and wakes all.
//
// Rounds: `gen` numbers the current round and `count` says how many parties arrived in it;
// a party's index is the count it found on arrival. The party that completes a round sets
// `releasing`, drops `inner`, runs the action (in the caller), then finish_round() either
// advances `gen` (releasing everyone) or breaks the barrier if the action failed. Because a
// finished round is recognised by `gen` having moved, the next round can start at once; there
// is no draining phase for a dead process to get stuck in. A round ended by reset() sets bit
// (round % 64) of `reset_rounds`, so its sleepers raise BrokenBarrierError instead of
// returning; a round released normally clears its bit.
//
// `broken` is sticky until reset(). A timed-out or interrupted waiter breaks the barrier, as
// threading.Barrier does on timeout, so a party that died never leaves the others waiting
// longer than their timeout. arrive() and await() only report that their deadline passed;
// the caller breaks the barrier (time_out, abort) once its own timeout has really expired, so
// it may also wait in shorter slices.
//
// Memory ordering: `inner` is acquired with acquire and released with release semantics, so
// the guarded fields can be relaxed. Sleepers read `seq` before dropping `inner` and sleep on
// that value, so a bump made after they looked refuses their futex_wait.
#pragma once

#include <cstdint>

#include "core/deadline.hpp"
#include "core/futex.hpp"
#include "core/slot.hpp"
#include "core/spin.hpp"

namespace interlock::core::barrier {

enum class Outcome {
  kWait,      // arrive(): joined the round; call await()
  kLast,      // arrive(): completed the round; run the action, then finish_round()
  kReleased,  // await()/finish_round(): the round completed
  kBroken,    // the barrier is broken, or the round was reset
  kTimedOut,  // the deadline passed with the round unresolved (see time_out)
  kInterrupted,  // a signal arrived; await() may be called again, or abandon() the wait
};

struct Ticket {
  uint32_t gen;
  uint32_t index;
};

void init(BarrierState& b, uint32_t parties);
Outcome arrive(BarrierState& b, const Deadline& deadline, Ticket* ticket);
Outcome await(BarrierState& b, Ticket ticket, const Deadline& deadline, Spin spin = Spin::kYes);
// After await() returned kTimedOut and the caller's own timeout has really passed: breaks the
// barrier unless the round was resolved meanwhile, and says how the round ended for this party.
Outcome time_out(BarrierState& b, Ticket ticket);
// After kLast: completes the round (action_ok) or breaks it (the action raised).
Outcome finish_round(BarrierState& b, Ticket ticket, bool action_ok);
// Breaks the barrier (abort(), or a waiter leaving on an exception).
void abort(BarrierState& b);
void reset(BarrierState& b);
uint32_t n_waiting(BarrierState& b);
bool is_broken(BarrierState& b);

}  // namespace interlock::core::barrier
