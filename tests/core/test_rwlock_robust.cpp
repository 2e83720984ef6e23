// The robust reader-writer lock (rwlock_robust.hpp): holds of dead processes come back.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "check.hpp"
#include "eventually.hpp"
#include "core/references.hpp"
#include "core/rwlock_robust.hpp"
#include "rwlock_checks.hpp"
#include "shared_memory.hpp"

using namespace interlock::core;
using interlock::test::eventually;

namespace {

using Ms = std::chrono::milliseconds;

// A robust lock in a fresh arena slot (shared with forked children), with its records.
Slot* robust_lock(rwlock::Prefer prefer = rwlock::Prefer::kWriters) {
  Slot* slot = references::create_linked(Kind::kRWLock, Kind::kRWLockRecords,
                                         rwlock::robust::kRecordSlots);
  rwlock::robust::init(*slot, prefer);
  return slot;
}

// A child that runs body() and then stays until killed.
template <class Body>
pid_t doomed_child(Body&& body) {
  pid_t pid = fork();
  if (pid == 0) {
    body();
    while (true) pause();
  }
  return pid;
}

void kill_and_reap(pid_t pid) {
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
}

// A doomed child that holds the lock, for reading or for writing, once this returns.
pid_t child_holding(Slot* slot, bool write) {
  auto* ready = interlock::test::shared_new<std::atomic<int>>();
  pid_t child = doomed_child([&] {
    const Status got = write ? rwlock::write(*slot, Deadline::never(), Spin::kNo)
                             : rwlock::read(*slot, Deadline::never(), Spin::kNo);
    CHECK(got == Status::kOk);
    ready->store(1);
  });
  CHECK(eventually([&] { return ready->load() == 1; }));
  return child;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST(robust_rwlock_shares_excludes_and_refuses_misuse) {
  Slot* slot = robust_lock();
  CHECK(rwlock::is_robust(*slot));
  CHECK(!rwlock::try_read(*slot));  // robust locks go through read()/write()
  CHECK(rwlock::release_read(*slot) == rwlock::Release::kNotHeld);
  CHECK(rwlock::release_write(*slot) == rwlock::Release::kNotHeld);
  const Deadline now = Deadline::after(-1);
  CHECK(rwlock::read(*slot, now, Spin::kNo) == Status::kOk);
  CHECK(rwlock::read(*slot, now, Spin::kNo) == Status::kOk);  // nested
  CHECK(rwlock::readers(*slot) == 1);                           // one process reads
  std::thread([&] {
    CHECK(rwlock::read(*slot, now, Spin::kNo) == Status::kOk);  // threads share
    CHECK(rwlock::release_write(*slot) == rwlock::Release::kNotHeld);
    CHECK(rwlock::write(*slot, Deadline::after(0.02), Spin::kYes) == Status::kTimedOut);
    CHECK(rwlock::waiting_writers(*slot) == 0);  // the writer that gave up withdrew
    CHECK(rwlock::release_read(*slot) == rwlock::Release::kOk);
    CHECK(rwlock::release_read(*slot) == rwlock::Release::kNotOwner);
  }).join();
  CHECK(rwlock::release_read(*slot) == rwlock::Release::kOk);
  CHECK(rwlock::release_read(*slot) == rwlock::Release::kOk);
  CHECK(rwlock::readers(*slot) == 0);
  CHECK(rwlock::write(*slot, now, Spin::kNo) == Status::kOk);
  CHECK(rwlock::owns_write(*slot));
  std::thread([&] {
    CHECK(rwlock::read(*slot, Deadline::after(0.02), Spin::kYes) == Status::kTimedOut);
    CHECK(rwlock::release_write(*slot) == rwlock::Release::kNotOwner);
    CHECK(rwlock::downgrade(*slot) == rwlock::Release::kNotOwner);
  }).join();
  CHECK(rwlock::downgrade(*slot) == rwlock::Release::kOk);
  CHECK(!rwlock::write_locked(*slot) && rwlock::own_reads(*slot) == 1);
  std::thread([&] {
    CHECK(rwlock::write(*slot, Deadline::after(0.02), Spin::kNo) == Status::kTimedOut);
    CHECK(rwlock::read(*slot, now, Spin::kNo) == Status::kOk);  // the downgraded hold shares
    CHECK(rwlock::release_read(*slot) == rwlock::Release::kOk);
  }).join();
  CHECK(rwlock::release_read(*slot) == rwlock::Release::kOk);
  CHECK(rwlock::write(*slot, now, Spin::kNo) == Status::kOk);
  CHECK(rwlock::release_write(*slot) == rwlock::Release::kOk);
  references::release(slot);
}

TEST(robust_rwlock_drops_a_killed_reader) {
  Slot* slot = robust_lock();
  pid_t child = child_holding(slot, /*write=*/false);
  CHECK(rwlock::readers(*slot) == 1);
  CHECK(rwlock::write(*slot, Deadline::after(0.02), Spin::kNo) == Status::kTimedOut);
  // A writer asleep behind the reader wakes when it is killed, and a dead reader loses no
  // write hold: plain kOk.
  Status got = Status::kInterrupted;
  auto t0 = std::chrono::steady_clock::now();
  std::thread writer([&] {
    got = rwlock::write(*slot, Deadline::after(20), Spin::kNo);
    if (got == Status::kOk) CHECK(rwlock::release_write(*slot) == rwlock::Release::kOk);
  });
  CHECK(eventually([&] { return rwlock::waiting_writers(*slot) == 1; }));
  kill_and_reap(child);
  writer.join();
  CHECK(got == Status::kOk);
  CHECK(seconds_since(t0) < 10);
  CHECK(rwlock::readers(*slot) == 0 && !rwlock::write_locked(*slot));
  references::release(slot);
}

TEST(robust_rwlock_reports_a_killed_writer_to_the_next_acquirer_only) {
  Slot* slot = robust_lock();
  pid_t child = child_holding(slot, /*write=*/true);
  CHECK(rwlock::write_locked(*slot));
  Status got = Status::kInterrupted;
  std::thread reader([&] {
    got = rwlock::read(*slot, Deadline::after(20), Spin::kNo);
    if (got == Status::kOwnerDied) CHECK(rwlock::release_read(*slot) == rwlock::Release::kOk);
  });
  std::this_thread::sleep_for(Ms(50));  // let the reader fall asleep behind the writer
  kill_and_reap(child);
  reader.join();
  CHECK(got == Status::kOwnerDied);
  CHECK(!rwlock::write_locked(*slot) && rwlock::readers(*slot) == 0);
  const Deadline now = Deadline::after(-1);
  CHECK(rwlock::write(*slot, now, Spin::kNo) == Status::kOk);  // reported once
  CHECK(rwlock::release_write(*slot) == rwlock::Release::kOk);
  references::release(slot);
}

TEST(robust_rwlock_non_blocking_acquire_cleans_up_after_the_dead) {
  Slot* slot = robust_lock();
  pid_t child = child_holding(slot, /*write=*/true);
  const Deadline now = Deadline::after(-1);
  CHECK(rwlock::write(*slot, now, Spin::kNo) == Status::kTimedOut);
  kill_and_reap(child);
  CHECK(rwlock::write(*slot, now, Spin::kNo) == Status::kOwnerDied);
  CHECK(rwlock::owns_write(*slot));
  CHECK(rwlock::release_write(*slot) == rwlock::Release::kOk);
  references::release(slot);
}

TEST(robust_rwlock_forgets_a_killed_waiting_writer) {
  // A writer waiting under prefer="writers" holds new readers back; killed, it must not.
  Slot* slot = robust_lock();
  CHECK(rwlock::read(*slot, Deadline::never(), Spin::kNo) == Status::kOk);
  pid_t child = doomed_child([&] { rwlock::write(*slot, Deadline::never(), Spin::kNo); });
  CHECK(eventually([&] { return rwlock::waiting_writers(*slot) == 1; }));
  std::thread([&] {
    CHECK(rwlock::read(*slot, Deadline::after(0.02), Spin::kNo) == Status::kTimedOut);
  }).join();
  Status got = Status::kInterrupted;
  std::thread reader([&] {
    got = rwlock::read(*slot, Deadline::after(20), Spin::kNo);
    if (got == Status::kOk) rwlock::release_read(*slot);
  });
  std::this_thread::sleep_for(Ms(50));
  kill_and_reap(child);
  reader.join();
  CHECK(got == Status::kOk);
  CHECK(rwlock::waiting_writers(*slot) == 0);
  CHECK(rwlock::release_read(*slot) == rwlock::Release::kOk);
  references::release(slot);
}

TEST(robust_rwlock_waits_for_an_entry_when_every_one_is_taken) {
  Slot* slot = robust_lock();
  constexpr int kChildren = rwlock::robust::kEntries;
  auto* reading = interlock::test::shared_new<std::atomic<int>>();
  std::vector<pid_t> children;
  for (int i = 0; i < kChildren; ++i)
    children.push_back(doomed_child([&] {
      CHECK(rwlock::read(*slot, Deadline::never(), Spin::kNo) == Status::kOk);
      reading->fetch_add(1);
    }));
  CHECK(eventually([&] { return reading->load() == kChildren; }));
  CHECK(rwlock::readers(*slot) == static_cast<uint32_t>(kChildren));
  // A 25th process finds no entry: it waits as if the lock were held, and gets in once an
  // entry comes free (here: a reader killed).
  CHECK(rwlock::read(*slot, Deadline::after(0.05), Spin::kNo) == Status::kTimedOut);
  Status got = Status::kInterrupted;
  std::thread reader([&] {
    got = rwlock::read(*slot, Deadline::after(20), Spin::kNo);
    if (got == Status::kOk) CHECK(rwlock::release_read(*slot) == rwlock::Release::kOk);
  });
  std::this_thread::sleep_for(Ms(50));
  kill_and_reap(children.back());
  children.pop_back();
  reader.join();
  CHECK(got == Status::kOk);
  for (pid_t c : children) kill_and_reap(c);
  CHECK(rwlock::write(*slot, Deadline::after(-1), Spin::kNo) == Status::kOk);  // all cleaned
  CHECK(rwlock::release_write(*slot) == rwlock::Release::kOk);
  references::release(slot);
}

TEST(robust_rwlock_threads_and_processes_never_see_a_writer_with_anyone) {
  Slot* slot = robust_lock();
  struct Shared {
    std::atomic<int> readers{0};
    std::atomic<int> writers{0};
    std::atomic<int> violations{0};
  };
  auto* sh = interlock::test::shared_new<Shared>();
  auto work = [&](int seed) {
    unsigned x = static_cast<unsigned>(seed) * 2654435761u + 1;
    for (int i = 0; i < 2000; ++i) {
      x = x * 1103515245u + 12345u;
      const bool write = (x >> 16) % 5 == 0;
      const Deadline d = (x >> 8) % 7 == 0 ? Deadline::after(0.0005) : Deadline::after(10);
      if (write) {
        if (rwlock::write(*slot, d, Spin::kYes) != Status::kOk) continue;
        if (sh->writers.fetch_add(1) != 0 || sh->readers.load() != 0) sh->violations++;
        sh->writers.fetch_sub(1);
        CHECK(rwlock::release_write(*slot) == rwlock::Release::kOk);
      } else {
        if (rwlock::read(*slot, d, Spin::kYes) != Status::kOk) continue;
        sh->readers.fetch_add(1);
        if (sh->writers.load() != 0) sh->violations++;
        sh->readers.fetch_sub(1);
        CHECK(rwlock::release_read(*slot) == rwlock::Release::kOk);
      }
    }
  };
  pid_t child = interlock::test::fork_child([&] {
    std::thread a(work, 1), b(work, 2);
    a.join();
    b.join();
  });
  std::thread c(work, 3), d(work, 4);
  c.join();
  d.join();
  CHECK(interlock::test::child_succeeded(child));
  CHECK(sh->violations.load() == 0);
  CHECK(rwlock::readers(*slot) == 0 && !rwlock::write_locked(*slot));
  CHECK(rwlock::waiting_writers(*slot) == 0);
  references::release(slot);
}

TEST(robust_rwlock_a_write_wait_spans_calls) {
  Slot* slot = robust_lock();
  interlock::test::check_a_write_wait_spans_calls(*slot);
  references::release(slot);
}
