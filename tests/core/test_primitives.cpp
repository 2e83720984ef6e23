// Semaphore, Event, Condition and Barrier protocols, driven by threads (TSan watches them).
#include <algorithm>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "check.hpp"
#include "core/barrier.hpp"
#include "core/condition.hpp"
#include "core/event.hpp"
#include "core/mutex.hpp"
#include "core/semaphore.hpp"
#include "shared_memory.hpp"

using namespace interlock::core;

TEST(semaphore_bound_and_value) {
  SemaphoreState s{};
  semaphore::init(s, 2, 2);
  CHECK(semaphore::try_acquire(s));
  CHECK(semaphore::try_acquire(s));
  CHECK(!semaphore::try_acquire(s));
  CHECK(semaphore::acquire(s, Deadline::after(0.02)) == Status::kTimedOut);
  CHECK(semaphore::release(s, 2));
  CHECK(!semaphore::release(s, 1));  // past the bound: refused, nothing changes
  CHECK(semaphore::value(s) == 2);
}

TEST(semaphore_conserves_permits_between_threads) {
  SemaphoreState s{};
  semaphore::init(s, 3, semaphore::kValueMax);
  std::atomic<int> inside{0}, most{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        CHECK(semaphore::acquire(s, Deadline::never()) == Status::kOk);
        int now = ++inside;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        --inside;
        CHECK(semaphore::release(s, 1));
      }
    });
  for (auto& t : threads) t.join();
  CHECK(most.load() <= 3);
  CHECK(semaphore::value(s) == 3);
}

TEST(semaphore_ping_pong_between_processes) {
  struct Pair {
    SemaphoreState ping, pong;
  };
  auto* p = interlock::test::shared_new<Pair>();
  semaphore::init(p->ping, 0, semaphore::kValueMax);
  semaphore::init(p->pong, 0, semaphore::kValueMax);
  pid_t child = interlock::test::fork_child([&] {
    for (int i = 0; i < 2000; ++i) {
      CHECK(semaphore::acquire(p->ping, Deadline::after(10)) == Status::kOk);
      CHECK(semaphore::release(p->pong, 1));
    }
  });
  for (int i = 0; i < 2000; ++i) {
    CHECK(semaphore::release(p->ping, 1));
    CHECK(semaphore::acquire(p->pong, Deadline::after(10)) == Status::kOk);
  }
  CHECK(interlock::test::child_succeeded(child));
}

TEST(event_wakes_every_waiter) {
  EventState e{};
  std::atomic<int> woken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      CHECK(event::wait(e, Deadline::after(10)) == Status::kOk);
      ++woken;
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  event::set(e);
  for (auto& t : threads) t.join();
  CHECK(woken.load() == 4);
  event::clear(e);
  CHECK(!event::is_set(e));
  CHECK(event::wait(e, Deadline::after(0.01)) == Status::kTimedOut);
}

// A set() that a clear() follows at once still ends every wait that had started: waiters
// compare the word with their snapshot, not the flag with "set".
TEST(event_pulse_wakes_every_sleeping_waiter) {
  EventState e{};
  for (int round = 0; round < 200; ++round) {
    std::atomic<int> woken{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        if (event::wait(e, Deadline::after(10), Spin::kNo) == Status::kOk) ++woken;
      });
    while (event::waiters(e) != 4) std::this_thread::yield();
    event::set(e);
    event::clear(e);
    for (auto& t : threads) t.join();
    CHECK(woken.load() == 4);
    CHECK(!event::is_set(e));
  }
  // A snapshot taken before a pulse sees it even when the wait begins after the pulse.
  uint32_t since = event::snapshot(e);
  event::set(e);
  event::clear(e);
  CHECK(event::wait(e, since, Deadline::after(0)) == Status::kOk);
  CHECK(event::wait(e, Deadline::after(0.01)) == Status::kTimedOut);
  // set() on a set Event and clear() on a clear one change nothing.
  since = event::snapshot(e);
  event::clear(e);
  CHECK(event::snapshot(e) == since);
  event::set(e);
  event::set(e);
  CHECK(event::snapshot(e) == since + 1);
}

TEST(condition_notify_wakes_exactly_n) {
  MutexState m{};
  ConditionState c{};
  std::atomic<int> woken{0}, waiting{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 5; ++t)
    threads.emplace_back([&] {
      CHECK(mutex::lock_acquire(m, Deadline::never()) == Status::kOk);
      condition::Ticket ticket = condition::enqueue(c);
      ++waiting;
      mutex::lock_release(m);
      Status s = condition::sleep(c, ticket, Deadline::after(1.0));
      CHECK(mutex::lock_acquire(m, Deadline::never()) == Status::kOk);
      bool notified = s == Status::kOk || condition::withdraw(c, ticket);
      if (notified) ++woken;
      mutex::lock_release(m);
    });
  while (waiting.load() < 5) std::this_thread::yield();
  CHECK(mutex::lock_acquire(m, Deadline::never()) == Status::kOk);
  CHECK(condition::waiting(c) == 5);
  CHECK(condition::notify(c, 2) == 2);
  mutex::lock_release(m);
  for (auto& t : threads) t.join();
  CHECK(woken.load() == 2);  // the other three timed out
  CHECK(condition::waiting(c) == 0);
}

TEST(barrier_rounds_have_distinct_indices) {
  constexpr int kParties = 4, kRounds = 200;
  BarrierState b{};
  barrier::init(b, kParties);
  std::mutex mu;
  std::vector<std::set<uint32_t>> seen(kRounds);
  std::vector<std::thread> threads;
  for (int t = 0; t < kParties; ++t)
    threads.emplace_back([&] {
      for (int r = 0; r < kRounds; ++r) {
        barrier::Ticket ticket{};
        barrier::Outcome o = barrier::arrive(b, Deadline::after(10), &ticket);
        if (o == barrier::Outcome::kLast) o = barrier::finish_round(b, ticket, true);
        else if (o == barrier::Outcome::kWait) o = barrier::await(b, ticket, Deadline::after(10));
        CHECK(o == barrier::Outcome::kReleased);
        std::lock_guard<std::mutex> guard(mu);
        seen[r].insert(ticket.index);
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& round : seen) CHECK(round.size() == kParties);
  CHECK(!barrier::is_broken(b));
}
