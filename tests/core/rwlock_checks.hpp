// Checks that hold for plain and robust reader-writer locks alike.
#pragma once

#include <atomic>
#include <thread>

#include "check.hpp"
#include "eventually.hpp"
#include "core/rwlock.hpp"

namespace interlock::test {

// A writer's wait made of several write() calls (rwlock.hpp's WriteWait) keeps new readers out
// between the calls, counts itself once, and withdraw() lets the readers in again.
inline void check_a_write_wait_spans_calls(core::Slot& slot) {
  using core::Deadline;
  using core::Spin;
  using core::Status;
  namespace rwlock = core::rwlock;
  auto reader_blocked = [&] {  // a new reader's try, which gives back what it got
    Status st = Status::kOk;
    std::thread([&] {
      st = rwlock::read(slot, Deadline::after(0.02), Spin::kNo);
      if (st == Status::kOk) CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
    }).join();
    return st == Status::kTimedOut;
  };
  for (const bool give_up : {false, true}) {
    std::atomic<int> step{0};
    std::thread holder([&] {  // holds a read until told
      CHECK(rwlock::read(slot, Deadline::never(), Spin::kNo) == Status::kOk);
      step = 1;
      eventually([&] { return step.load() == 2; });
      CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
    });
    CHECK(eventually([&] { return step.load() == 1; }));
    rwlock::WriteWait wait;
    for (int call = 0; call < 2; ++call) {
      CHECK(rwlock::write(slot, Deadline::after(0.02), Spin::kNo, wait) == Status::kTimedOut);
      CHECK(wait.announced_by != 0 && rwlock::waiting_writers(slot) == 1);  // counted once
      CHECK(reader_blocked());  // held back between the calls
    }
    if (give_up) {
      rwlock::withdraw(slot, wait);
      CHECK(wait.announced_by == 0 && rwlock::waiting_writers(slot) == 0);
      CHECK(!reader_blocked());
      step = 2;
      holder.join();
      continue;
    }
    step = 2;
    holder.join();
    CHECK(rwlock::write(slot, Deadline::after(10), Spin::kNo, wait) == Status::kOk);
    CHECK(wait.announced_by == 0 && rwlock::waiting_writers(slot) == 0);
    rwlock::withdraw(slot, wait);  // after a taken hold: nothing
    CHECK(rwlock::owns_write(slot) && rwlock::waiting_writers(slot) == 0);
    CHECK(rwlock::release_write(slot) == rwlock::Release::kOk);
  }
}

}  // namespace interlock::test
