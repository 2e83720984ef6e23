#include "core/barrier.hpp"

#include "core/mutex.hpp"
#include "core/spin.hpp"
#include "core/thread_identity.hpp"

namespace interlock::core::barrier {

namespace {

// Holds `inner` for a short, system-call-free critical section. Waits without a deadline and
// retries on signals: the holder is always about to let go. (The caller's interrupt word is
// set aside meanwhile: a changed one would end every retry at once.)
class InnerLock {
 public:
  explicit InnerLock(BarrierState& b) : word_(b.inner) {
    uint32_t tid = current_thread().tid;
    if (!mutex::try_lock(word_, tid)) {
      ScopedInterruptWord none(nullptr, 0);
      while (mutex::lock_slow(word_, tid, Deadline::never()) != Status::kOk) {
      }
    }
  }
  ~InnerLock() { mutex::unlock(word_); }
  InnerLock(const InnerLock&) = delete;
  InnerLock& operator=(const InnerLock&) = delete;

 private:
  std::atomic<uint32_t>& word_;
};

uint64_t round_bit(uint32_t gen) { return uint64_t{1} << (gen % 64); }

// Under `inner`: wakes every sleeper after a state change.
void bump_and_wake(BarrierState& b) {
  b.seq.fetch_add(1, std::memory_order_relaxed);  // `inner`'s release orders it
  futex_wake(&b.seq, -1);
}

void break_locked(BarrierState& b) {
  b.broken.store(1, std::memory_order_relaxed);
  bump_and_wake(b);
}

// Under `inner`: what a party of round `t.gen` should do now, or kWait to keep sleeping.
Outcome verdict(const BarrierState& b, Ticket t) {
  if (b.gen.load(std::memory_order_relaxed) != t.gen)
    return (b.reset_rounds.load(std::memory_order_relaxed) & round_bit(t.gen))
               ? Outcome::kBroken
               : Outcome::kReleased;
  if (b.broken.load(std::memory_order_relaxed)) return Outcome::kBroken;
  return Outcome::kWait;
}

}  // namespace

void init(BarrierState& b, uint32_t parties) { b.parties = parties; }

Outcome arrive(BarrierState& b, const Deadline& deadline, Ticket* ticket) {
  while (true) {
    uint32_t seen;
    {
      InnerLock guard(b);
      if (b.broken.load(std::memory_order_relaxed)) return Outcome::kBroken;
      uint32_t count = b.count.load(std::memory_order_relaxed);
      if (!b.releasing.load(std::memory_order_relaxed) && count < b.parties) {
        ticket->gen = b.gen.load(std::memory_order_relaxed);
        ticket->index = count;
        b.count.store(count + 1, std::memory_order_relaxed);
        if (count + 1 < b.parties) return Outcome::kWait;
        b.releasing.store(1, std::memory_order_relaxed);
        return Outcome::kLast;
      }
      // The round is full and its action is running: wait for the next round.
      seen = b.seq.load(std::memory_order_relaxed);
    }
    Status st = futex_wait(&b.seq, seen, deadline);
    if (st == Status::kInterrupted) return Outcome::kInterrupted;
    if (st == Status::kTimedOut) return Outcome::kTimedOut;
  }
}

Outcome await(BarrierState& b, Ticket ticket, const Deadline& deadline, Spin spin) {
  bool spun = spin == Spin::kNo;
  while (true) {
    uint32_t seen;
    {
      InnerLock guard(b);
      Outcome v = verdict(b, ticket);
      if (v != Outcome::kWait) return v;
      seen = b.seq.load(std::memory_order_relaxed);
    }
    if (!spun) {
      spun = true;
      // relaxed poll: any change is re-examined under `inner`.
      if (spin_until([&] { return b.seq.load(std::memory_order_relaxed) != seen; })) continue;
    }
    Status st = futex_wait(&b.seq, seen, deadline);
    if (st == Status::kInterrupted) return Outcome::kInterrupted;
    if (st == Status::kTimedOut) {
      InnerLock guard(b);
      Outcome v = verdict(b, ticket);
      return v != Outcome::kWait ? v : Outcome::kTimedOut;
    }
  }
}

Outcome time_out(BarrierState& b, Ticket ticket) {
  InnerLock guard(b);
  Outcome v = verdict(b, ticket);
  if (v != Outcome::kWait) return v;
  break_locked(b);
  return Outcome::kTimedOut;
}

Outcome finish_round(BarrierState& b, Ticket ticket, bool action_ok) {
  InnerLock guard(b);
  if (b.gen.load(std::memory_order_relaxed) != ticket.gen) return Outcome::kBroken;  // reset
  b.releasing.store(0, std::memory_order_relaxed);
  if (!action_ok || b.broken.load(std::memory_order_relaxed)) {
    break_locked(b);
    return Outcome::kBroken;
  }
  b.reset_rounds.fetch_and(~round_bit(ticket.gen), std::memory_order_relaxed);
  b.gen.store(ticket.gen + 1, std::memory_order_relaxed);
  b.count.store(0, std::memory_order_relaxed);
  bump_and_wake(b);
  return Outcome::kReleased;
}

void abort(BarrierState& b) {
  InnerLock guard(b);
  break_locked(b);
}

void reset(BarrierState& b) {
  InnerLock guard(b);
  uint32_t gen = b.gen.load(std::memory_order_relaxed);
  if (b.count.load(std::memory_order_relaxed) > 0) {
    b.reset_rounds.fetch_or(round_bit(gen), std::memory_order_relaxed);
    b.gen.store(gen + 1, std::memory_order_relaxed);
    b.count.store(0, std::memory_order_relaxed);
    b.releasing.store(0, std::memory_order_relaxed);
  }
  b.broken.store(0, std::memory_order_relaxed);
  bump_and_wake(b);
}

uint32_t n_waiting(BarrierState& b) {
  InnerLock guard(b);
  if (b.broken.load(std::memory_order_relaxed)) return 0;
  return b.count.load(std::memory_order_relaxed);
}

bool is_broken(BarrierState& b) {
  InnerLock guard(b);
  return b.broken.load(std::memory_order_relaxed) != 0;
}

}  // namespace interlock::core::barrier
