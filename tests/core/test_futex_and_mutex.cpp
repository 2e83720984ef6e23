// The futex wrapper and the mutex protocol, within one process and across processes.
#include <chrono>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/wait.h>

#include "check.hpp"
#include "core/deadline.hpp"
#include "core/death_watch.hpp"
#include "core/futex.hpp"
#include "core/mutex.hpp"
#include "core/process_identity.hpp"
#include "shared_memory.hpp"

using namespace interlock::core;

namespace {
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

TEST(deadline_basics) {
  CHECK(Deadline::never().is_infinite());
  CHECK(!Deadline::never().passed());
  CHECK(Deadline::after(0).passed());
  CHECK(Deadline::after(-5).passed());
  CHECK(!Deadline::after(60).passed());
  CHECK(!Deadline::earlier(Deadline::never(), Deadline::after(60)).is_infinite());
}

TEST(futex_wait_times_out_and_refuses_a_changed_word) {
  std::atomic<uint32_t> word{0};
  auto start = std::chrono::steady_clock::now();
  CHECK(futex_wait(&word, 0, Deadline::after(0.05)) == Status::kTimedOut);
  CHECK(seconds_since(start) >= 0.04);
  CHECK(futex_wait(&word, 1, Deadline::after(5)) == Status::kOk);  // value differs: no sleep
}

TEST(futex_wake_reaches_another_process) {
  auto* word = interlock::test::shared_new<std::atomic<uint32_t>>();
  pid_t child = interlock::test::fork_child([&] {
    while (word->load() == 0) CHECK(futex_wait(word, 0, Deadline::after(10)) == Status::kOk);
    CHECK(word->load() == 1);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  word->store(1);
  futex_wake(word, 1);
  CHECK(interlock::test::child_succeeded(child));
}

TEST(lock_basics) {
  MutexState m{};
  CHECK(mutex::lock_try_acquire(m));
  CHECK(!mutex::lock_try_acquire(m));
  CHECK(mutex::is_locked(m));
  CHECK(mutex::lock_release(m));
  CHECK(!mutex::lock_release(m));  // unlocked: refused
  CHECK(mutex::lock_acquire(m, Deadline::after(1)) == Status::kOk);
  CHECK(record_pid(m.owner.load()) == static_cast<uint32_t>(getpid()));
  std::thread other([&] { CHECK(mutex::lock_acquire(m, Deadline::after(0.05)) == Status::kTimedOut); });
  other.join();
  CHECK(mutex::lock_release(m));
}

TEST(rlock_depth_and_ownership) {
  MutexState m{};
  CHECK(mutex::rlock_try_acquire(m));
  CHECK(mutex::rlock_try_acquire(m));
  CHECK(m.depth.load() == 2);
  std::thread other([&] {
    CHECK(!mutex::rlock_release(m));  // not the owner
    CHECK(!mutex::rlock_try_acquire(m));
  });
  other.join();
  CHECK(mutex::rlock_release(m));
  CHECK(mutex::rlock_release(m));
  CHECK(!mutex::is_locked(m));
  CHECK(!mutex::rlock_release(m));
}

TEST(mutex_excludes_threads) {
  MutexState m{};
  long counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        CHECK(mutex::lock_acquire(m, Deadline::never()) == Status::kOk);
        counter = counter + 1;  // a data race unless the mutex orders it (TSan checks)
        mutex::lock_release(m);
      }
    });
  for (auto& t : threads) t.join();
  CHECK(counter == 80000);
}

namespace {
struct SharedCounter {
  MutexState m;
  long counter;
};
}  // namespace

TEST(mutex_excludes_processes) {
  auto* s = interlock::test::shared_new<SharedCounter>();
  std::vector<pid_t> children;
  for (int c = 0; c < 4; ++c)
    children.push_back(interlock::test::fork_child([&] {
      for (int i = 0; i < 20000; ++i) {
        CHECK(mutex::lock_acquire(s->m, Deadline::never()) == Status::kOk);
        long v = s->counter;
        if (i % 1000 == 0) std::this_thread::yield();  // widen the window a broken lock leaves
        s->counter = v + 1;
        mutex::lock_release(s->m);
      }
    }));
  for (pid_t c : children) CHECK(interlock::test::child_succeeded(c));
  CHECK(s->counter == 80000);
}

TEST(process_records) {
  const ThreadIdentity& me = current_thread();
  CHECK(record_pid(me.owner) == me.pid);
  CHECK(record_tid(me.owner) == me.tid);
  CHECK(!record_process_gone(me.owner));
  // Our own pid with another start stamp: a recycled pid, so the recorded process is gone.
  CHECK(record_process_gone(make_owner_record(me.tid, me.pid, record_stamp(me.owner) + 1)));
  CHECK(record_process_gone(make_owner_record(1, 4194303, 0)));  // above any pid in use here
  CHECK(!record_process_gone(0));  // no record: nothing is presumed
}

TEST(robust_lock_is_taken_over_from_a_dead_holder) {
  auto* m = interlock::test::shared_new<MutexState>();
  m->robust.store(1);
  pid_t child = interlock::test::fork_child([&] { CHECK(mutex::lock_try_acquire(*m)); });
  CHECK(interlock::test::child_succeeded(child));  // exited holding the lock
  mutex::set_owner_check_interval(0.01);
  auto start = std::chrono::steady_clock::now();
  CHECK(mutex::lock_acquire(*m, Deadline::after(5)) == Status::kOwnerDied);
  CHECK(seconds_since(start) < 1.0);
  CHECK(record_pid(m->owner.load()) == static_cast<uint32_t>(getpid()));
  CHECK(mutex::lock_release(*m));
  CHECK(mutex::lock_acquire(*m, Deadline::after(1)) == Status::kOk);  // ordinary again
  mutex::set_owner_check_interval(0.05);
}

TEST(robust_lock_waits_for_a_live_holder) {
  auto* m = interlock::test::shared_new<MutexState>();
  m->robust.store(1);
  auto* go = interlock::test::shared_new<std::atomic<uint32_t>>();
  pid_t child = interlock::test::fork_child([&] {
    CHECK(mutex::lock_try_acquire(*m));
    go->store(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    mutex::lock_release(*m);
  });
  while (go->load() == 0) std::this_thread::yield();
  mutex::set_owner_check_interval(0.01);
  CHECK(mutex::lock_acquire(*m, Deadline::after(0.1)) == Status::kTimedOut);  // alive: wait
  CHECK(mutex::lock_acquire(*m, Deadline::after(10)) == Status::kOk);  // released normally
  mutex::set_owner_check_interval(0.05);
  CHECK(interlock::test::child_succeeded(child));
}

TEST(interrupt_word_ends_a_wait_even_when_it_changed_before) {
  if (!interrupt_word_supported()) return;  // a kernel without futex_waitv: nothing to test
  std::atomic<uint32_t> word{7};
  std::atomic<uint32_t> interrupt{0};
  {
    // Changed before the sleep began: the wait ends at once.
    ScopedInterruptWord set(&interrupt, 0);
    interrupt.store(1);
    auto start = std::chrono::steady_clock::now();
    CHECK(futex_wait(&word, 7, Deadline::after(5)) == Status::kInterrupted);
    CHECK(seconds_since(start) < 1.0);
  }
  {
    // Changed (and woken) during the sleep: the wait ends then.
    ScopedInterruptWord set(&interrupt, 1);
    std::thread bumper([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      interrupt.store(2);
      futex_wake_private(&interrupt, -1);
    });
    auto start = std::chrono::steady_clock::now();
    CHECK(futex_wait(&word, 7, Deadline::after(5)) == Status::kInterrupted);
    CHECK(seconds_since(start) < 2.0);
    bumper.join();
    // An unchanged interrupt word leaves an ordinary wait: it times out.
    ScopedInterruptWord again(&interrupt, 2);
    CHECK(futex_wait(&word, 7, Deadline::after(0.05)) == Status::kTimedOut);
  }
  // Leaving the scope restores "no interrupt word": a timed wait times out as usual.
  interrupt.store(3);
  CHECK(futex_wait(&word, 7, Deadline::after(0.02)) == Status::kTimedOut);
}

// Makes *m a robust lock held by a forked child, which holds it until killed; its pid.
static pid_t fork_robust_holder(MutexState* m) {
  m->robust.store(1);
  auto* held = interlock::test::shared_new<std::atomic<uint32_t>>();
  pid_t child = fork();
  if (child == 0) {
    mutex::lock_try_acquire(*m);
    held->store(1);
    pause();  // until killed, holding the lock
    _exit(0);
  }
  while (held->load() == 0) std::this_thread::yield();
  return child;
}

TEST(death_watch_wakes_a_waiter_that_slept_after_the_death) {
  // The holder dies between a waiter's watch() and its sleep: the watcher's first wake finds
  // nobody asleep. The waiter must still be woken, and its next watch() must answer kGone.
  auto* m = interlock::test::shared_new<MutexState>();
  pid_t child = fork_robust_holder(m);
  int ticket = -1;
  CHECK(death_watch::watch(&m->word, m->owner.load(), &ticket) == death_watch::Result::kWatching);
  kill(child, SIGKILL);
  while (process_stamp(static_cast<uint32_t>(child)) >= 0) std::this_thread::yield();  // a zombie
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the watcher has seen it die
  uint32_t w = m->word.load();
  auto start = std::chrono::steady_clock::now();
  CHECK(futex_wait(&m->word, w, Deadline::after(20)) == Status::kOk);
  CHECK(seconds_since(start) < 10.0);
  death_watch::unwatch(ticket);
  CHECK(death_watch::watched_count() == 0);
  int again = -1;
  CHECK(death_watch::watch(&m->word, m->owner.load(), &again) == death_watch::Result::kGone);
  int status = 0;
  waitpid(child, &status, 0);
  death_watch::quiesce();
}

TEST(robust_waiter_is_woken_by_the_death_watch) {
  auto* m = interlock::test::shared_new<MutexState>();
  pid_t child = fork_robust_holder(m);
  mutex::set_owner_check_interval(3600);  // a poll would take an hour
  std::thread killer([&] {
    while (death_watch::watched_count() == 0) std::this_thread::yield();
    kill(child, SIGKILL);
  });
  auto start = std::chrono::steady_clock::now();
  CHECK(mutex::lock_acquire(*m, Deadline::after(30)) == Status::kOwnerDied);
  CHECK(seconds_since(start) < 5.0);
  CHECK(death_watch::watched_count() == 0);
  killer.join();
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(mutex::lock_release(*m));
  mutex::set_owner_check_interval(0.05);
  death_watch::quiesce();  // nothing watched: the watcher thread stops
}
