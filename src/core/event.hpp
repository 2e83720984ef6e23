// event.hpp: Event over one futex word that counts the flag's transitions.
//
// EventState::word is the futex word. Every set() of an unset Event and every clear() of a
// set Event adds one to it, so its low bit is the flag (odd: set) and the rest counts how
// often the flag changed. `waiters` counts threads asleep or about to sleep on `word`, so that
// set() skips the wake system call when nobody waits. No lock is involved anywhere: set() may
// run in a signal handler that interrupted is_set(), clear() or wait() on the same Event.
//
// Why a count and not a 0/1 flag. wait() must return true if the flag was set at any moment
// after the wait started, even when a clear() followed at once (threading.Event's promise,
// which a pulse `set(); clear()` relies on). A waiter woken by a 0/1 flag would re-read it,
// find it clear again and sleep on: the set() would be lost. With the count, a waiter takes a
// snapshot when its wait starts (even: unset) and compares against it: the word can leave an
// even value only through a set(), and a later clear() moves it on rather than back, so any
// difference proves a set() happened after the snapshot, however brief the set was.
//
// Protocol and memory ordering:
//   set():   fetch_or(1) on the word (seq_cst): an even w becomes w + 1, an odd one is left
//            alone. Only if it changed the word, load waiters (seq_cst) and wake all sleepers
//            if non-zero. With no waiters that is one atomic read-modify-write, as with a
//            plain flag.
//   clear(): CAS word w -> w + 1 while w is odd (release: orders the caller's prior writes).
//            It must be a CAS, not a store of w + 1 after a load: a set() in between would be
//            overwritten and the word would go back to a value a waiter may hold as its
//            snapshot.
//   wait(since): `since` is the word as the caller read it when the wait started (acquire).
//            Spin while word == since; then increment waiters (seq_cst), load word (seq_cst)
//            and sleep while word == since (the kernel compares atomically with the sleep).
//   The increment-then-load of the waiter and the CAS-then-load of the setter are the usual
//   store-then-load handshake on two locations, all seq_cst: either the setter sees the
//   waiter and wakes it, or the waiter sees the new word and does not sleep. Seq_cst makes this
//   hold on weakly ordered machines too (AArch64's LDAR/STLR and LL/SC or LSE CAS), where
//   acquire/release alone would let both sides miss each other.
//   is_set() is an acquire load, so what a setter did before set() is visible to whoever sees
//   the flag.
//
// The count wraps after 2^32 transitions. A waiter could only be fooled by a wrap if exactly
// 2^31 pulses happened between two of its looks at the word while it was not asleep in the
// kernel (asleep, every set() wakes it), and a later pulse would still wake it.
//
// A waiter that dies stays counted in `waiters`: later set() calls make one wake system call
// each, and nothing else is disturbed.
#pragma once

#include <cstdint>

#include "core/deadline.hpp"
#include "core/futex.hpp"
#include "core/slot.hpp"
#include "core/spin.hpp"

namespace interlock::core::event {

// Whether a word (or a snapshot of one) says the flag is set.
inline constexpr bool word_is_set(uint32_t word) { return (word & 1u) != 0; }

// The word as of now: take it when a wait starts and pass it to wait().
inline uint32_t snapshot(const EventState& e) {
  return e.word.load(std::memory_order_acquire);  // see the header
}
inline bool is_set(const EventState& e) { return word_is_set(snapshot(e)); }
void set(EventState& e);
inline void clear(EventState& e) {
  // relaxed: a guess for the CAS; an even word needs no write at all.
  uint32_t w = e.word.load(std::memory_order_relaxed);
  // release on success: orders the caller's prior writes before the clear; relaxed on
  // failure: the loop retries with the fresh value (an odd word only ever moves by a clear).
  while (word_is_set(w) && !e.word.compare_exchange_weak(w, w + 1, std::memory_order_release,
                                                         std::memory_order_relaxed)) {
  }
}

// Spins, then sleeps until the word differs from `since` (kOk: the flag is set, or was set at
// some moment after `since` was taken), the deadline passes or a signal arrives. A `since`
// that says set returns kOk at once. Resuming after kInterrupted with the same `since` keeps
// every set() that happened meanwhile.
Status wait(EventState& e, uint32_t since, const Deadline& deadline, Spin spin = Spin::kYes);

// How many threads are asleep or about to sleep on the word (for tests: a waiter counted here
// has taken its snapshot, so a set() from now on cannot be lost for it).
uint32_t waiters(const EventState& e);

// Waits from now on: wait(e, snapshot(e), ...).
inline Status wait(EventState& e, const Deadline& deadline, Spin spin = Spin::kYes) {
  return wait(e, snapshot(e), deadline, spin);
}

}  // namespace interlock::core::event
