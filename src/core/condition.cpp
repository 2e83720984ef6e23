#include "core/condition.hpp"

#include <algorithm>

#include "core/spin.hpp"

namespace interlock::core::condition {

namespace {

bool is_eligible(const ConditionState& c, Ticket t) {
  // acquire: pairs with notify's ordering; wrap-around safe for < 2^31 notifies.
  return static_cast<int32_t>(c.gen.load(std::memory_order_acquire) - t.gen) > 0;
}

bool take_token(ConditionState& c) {
  uint32_t k = c.tokens.load(std::memory_order_relaxed);  // a guess for the CAS
  while (k > 0) {
    // acquire: the notifier's writes before handing out the token become visible.
    if (c.tokens.compare_exchange_weak(k, k - 1, std::memory_order_acquire,
                                       std::memory_order_relaxed))
      return true;
  }
  return false;
}

}  // namespace

Ticket enqueue(ConditionState& c) {
  // Lock held: relaxed (the lock orders these fields).
  c.fresh.store(c.fresh.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return Ticket{c.gen.load(std::memory_order_relaxed)};
}

Status sleep(ConditionState& c, Ticket t, const Deadline& deadline, Spin spin) {
  bool spun = spin == Spin::kNo;
  while (true) {
    uint32_t seen = c.seq.load(std::memory_order_acquire);  // see the header
    if (is_eligible(c, t) && take_token(c)) return Status::kOk;
    if (!spun) {
      spun = true;
      if (spin_until([&] { return c.seq.load(std::memory_order_relaxed) != seen; })) continue;
    }
    Status st = futex_wait(&c.seq, seen, deadline);
    if (st == Status::kOk) continue;
    if (st == Status::kTimedOut && is_eligible(c, t) && take_token(c)) return Status::kOk;
    return st;
  }
}

bool try_take(ConditionState& c, Ticket t) { return is_eligible(c, t) && take_token(c); }

bool withdraw(ConditionState& c, Ticket t) {
  if (is_eligible(c, t)) {
    if (take_token(c)) return true;
    uint32_t e = c.eligible.load(std::memory_order_relaxed);  // lock held
    if (e > 0) c.eligible.store(e - 1, std::memory_order_relaxed);
  } else {
    uint32_t f = c.fresh.load(std::memory_order_relaxed);  // lock held
    if (f > 0) c.fresh.store(f - 1, std::memory_order_relaxed);
  }
  return false;
}

uint32_t notify(ConditionState& c, uint32_t n) {
  // Lock held: the counters are relaxed; `gen` and `tokens` are published by the release
  // increment of `seq` below.
  uint32_t fresh = c.fresh.load(std::memory_order_relaxed);
  uint32_t eligible = c.eligible.load(std::memory_order_relaxed);
  if (fresh > 0) {
    eligible += fresh;
    c.fresh.store(0, std::memory_order_relaxed);
    c.gen.store(c.gen.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  uint32_t k = std::min(n, eligible);
  c.eligible.store(eligible - k, std::memory_order_relaxed);
  if (k == 0) return 0;
  c.tokens.fetch_add(k, std::memory_order_relaxed);
  c.seq.fetch_add(1, std::memory_order_release);  // publishes gen and tokens
  futex_wake(&c.seq, k > 0x7fffffffu ? -1 : static_cast<int>(k));
  return k;
}

uint32_t waiting(const ConditionState& c) {
  return c.fresh.load(std::memory_order_relaxed) + c.eligible.load(std::memory_order_relaxed) +
         c.tokens.load(std::memory_order_relaxed);  // a snapshot
}

}  // namespace interlock::core::condition
