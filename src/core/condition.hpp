// condition.hpp: a condition variable whose notify never waits for anyone.
//
// The caller's lock (a Lock or RLock slot) protects every field of ConditionState except
// `seq` and `tokens`, which sleepers read without it. The bookkeeping:
//   fresh     waiters that joined since the last notify,
//   gen       bumped when a notify promotes the fresh waiters to eligible,
//   eligible  eligible waiters that no wake-up token has been handed out for,
//   tokens    wake-ups handed out and not yet taken; any eligible waiter may take one.
// A waiter records `gen` when it joins; it is eligible once `gen` has moved past that value,
// i.e. once a notify was called while it waited. notify(n) first promotes the fresh waiters,
// then hands out min(n, eligible) tokens and wakes that many sleepers. Waiters that join
// after a notify are not eligible for its tokens, so notify(n) wakes at most n of the waiters
// that were waiting when it was called, and it never blocks for their acknowledgement (a dead
// waiter cannot hang it: CPython's does, cpython#75158).
//
// A waiter that leaves without a token (timeout, exception) withdraws under the lock: it
// takes a token if one is pending (the notify then counts as delivered to it), else it
// removes itself from `eligible` or `fresh`. So the invariant
//   eligible + tokens == eligible waiters still waiting
// holds at every point where the lock is held, and no token is ever stranded.
//
// Waking exactly `k` sleepers is enough: the wake is issued while the notifier holds the lock,
// so every sleeper on `seq` at that moment joined before the notify and is eligible.
//
// Memory ordering: notify stores `gen` and adds to `tokens` before a release increment of
// `seq`; a sleeper loads `seq` with acquire before reading `gen` and `tokens`, so a sleeper
// that has seen a given `seq` sees the tokens handed out with it, and a sleeper that read an
// older `seq` is refused by futex_wait (the word changed) and looks again. Taking a token is
// an acquire CAS. Fields touched only under the caller's lock are relaxed: the lock orders them.
#pragma once

#include <cstdint>

#include "core/deadline.hpp"
#include "core/futex.hpp"
#include "core/slot.hpp"
#include "core/spin.hpp"

namespace interlock::core::condition {

struct Ticket {
  uint32_t gen;  // the generation the waiter joined in
};

// Lock held: joins the waiters.
Ticket enqueue(ConditionState& c);
// Lock NOT held: spins, then sleeps until this waiter takes a token (kOk), the deadline
// passes, or a signal arrives.
Status sleep(ConditionState& c, Ticket t, const Deadline& deadline, Spin spin = Spin::kYes);
// Lock NOT held: one look, without sleeping: true when this waiter took a token (an
// awaiting task's attempt, async_wait.hpp).
bool try_take(ConditionState& c, Ticket t);
// Lock held again, after sleep() returned anything but kOk: withdraws the waiter. Returns true
// when it took a token after all (a notify raced with the timeout or signal).
bool withdraw(ConditionState& c, Ticket t);
// Lock held: wakes up to n waiters; returns how many tokens were handed out.
uint32_t notify(ConditionState& c, uint32_t n);
// Waiters that have not returned yet (a snapshot, for repr).
uint32_t waiting(const ConditionState& c);

}  // namespace interlock::core::condition
