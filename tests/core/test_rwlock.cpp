// The reader-writer lock's protocol (rwlock.hpp), driven by threads and a forked process.
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "check.hpp"
#include "eventually.hpp"
#include "core/rwlock.hpp"
#include "rwlock_checks.hpp"
#include "shared_memory.hpp"

using namespace interlock::core;
using interlock::test::eventually;

namespace {

using Ms = std::chrono::milliseconds;

}  // namespace

TEST(rwlock_readers_share_and_a_writer_excludes) {
  Slot slot{};
  rwlock::init(slot, rwlock::Prefer::kWriters);
  CHECK(rwlock::try_read(slot));
  CHECK(rwlock::try_read(slot));  // nested
  CHECK(rwlock::own_reads(slot) == 2);
  std::thread([&] {
    CHECK(rwlock::try_read(slot));  // readers share
    CHECK(!rwlock::try_write(slot));
    CHECK(rwlock::write(slot, Deadline::after(0.02)) == Status::kTimedOut);
    CHECK(rwlock::waiting_writers(slot) == 0);  // the writer that gave up withdrew
    CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
  }).join();
  CHECK(rwlock::readers(slot) == 2);
  CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
  CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
  CHECK(rwlock::try_write(slot));
  CHECK(rwlock::owns_write(slot));
  std::thread([&] {
    CHECK(!rwlock::try_read(slot));
    CHECK(rwlock::read(slot, Deadline::after(0.02)) == Status::kTimedOut);
    CHECK(!rwlock::owns_write(slot));
  }).join();
  CHECK(rwlock::release_write(slot) == rwlock::Release::kOk);
  CHECK(rwlock::readers(slot) == 0 && !rwlock::write_locked(slot));
}

TEST(rwlock_misuse_is_refused_and_changes_nothing) {
  Slot slot{};
  rwlock::init(slot, rwlock::Prefer::kWriters);
  CHECK(rwlock::release_read(slot) == rwlock::Release::kNotHeld);
  CHECK(rwlock::release_write(slot) == rwlock::Release::kNotHeld);
  CHECK(rwlock::downgrade(slot) == rwlock::Release::kNotHeld);
  std::atomic<int> step{0};
  std::thread other([&] {
    CHECK(rwlock::try_read(slot));
    step = 1;
    eventually([&] { return step.load() == 2; });
    CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
    CHECK(rwlock::try_write(slot));
    step = 3;
    eventually([&] { return step.load() == 4; });
    CHECK(rwlock::release_write(slot) == rwlock::Release::kOk);
  });
  CHECK(eventually([&] { return step.load() == 1; }));
  CHECK(rwlock::release_read(slot) == rwlock::Release::kNotOwner);  // another thread's read
  CHECK(rwlock::readers(slot) == 1);
  step = 2;
  CHECK(eventually([&] { return step.load() == 3; }));
  CHECK(rwlock::release_write(slot) == rwlock::Release::kNotOwner);
  CHECK(rwlock::downgrade(slot) == rwlock::Release::kNotOwner);
  CHECK(rwlock::release_read(slot) == rwlock::Release::kNotHeld);
  CHECK(rwlock::write_locked(slot));
  step = 4;
  other.join();
  CHECK(rwlock::readers(slot) == 0 && !rwlock::write_locked(slot));
}

TEST(rwlock_waiting_writer_holds_back_new_readers_but_not_nested_ones) {
  Slot slot{};
  rwlock::init(slot, rwlock::Prefer::kWriters);
  CHECK(rwlock::try_read(slot));
  std::atomic<bool> wrote{false};
  std::thread writer([&] {
    CHECK(rwlock::write(slot, Deadline::after(10)) == Status::kOk);
    wrote = true;
    CHECK(rwlock::release_write(slot) == rwlock::Release::kOk);
  });
  CHECK(eventually([&] { return rwlock::waiting_writers(slot) == 1; }));
  std::thread([&] { CHECK(!rwlock::try_read(slot)); }).join();  // a new reader waits
  CHECK(rwlock::try_read(slot));                                 // a nested one does not
  CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
  CHECK(!wrote.load());
  CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);  // the last reader wakes it
  writer.join();
  CHECK(wrote.load());
}

TEST(rwlock_prefer_readers_lets_readers_pass_a_waiting_writer) {
  Slot slot{};
  rwlock::init(slot, rwlock::Prefer::kReaders);
  CHECK(rwlock::try_read(slot));
  std::thread writer([&] {
    CHECK(rwlock::write(slot, Deadline::after(10)) == Status::kOk);
    CHECK(rwlock::release_write(slot) == rwlock::Release::kOk);
  });
  CHECK(eventually([&] { return rwlock::waiting_writers(slot) == 1; }));
  std::thread([&] {
    CHECK(rwlock::try_read(slot));
    CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
  }).join();
  CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
  writer.join();
}

TEST(rwlock_writer_release_lets_every_waiting_reader_in_together) {
  Slot slot{};
  rwlock::init(slot, rwlock::Prefer::kWriters);
  CHECK(rwlock::try_write(slot));
  constexpr int kReaders = 6;
  std::atomic<int> inside{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < kReaders; ++i)
    readers.emplace_back([&] {
      CHECK(rwlock::read(slot, Deadline::after(10)) == Status::kOk);
      ++inside;
      // Every reader holds at once: none leaves before all are in.
      CHECK(eventually([&] { return inside.load() == kReaders; }));
      CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
    });
  CHECK(eventually([&] { return slot.body.rwlock.read_sleepers.load() == kReaders; }));
  CHECK(rwlock::release_write(slot) == rwlock::Release::kOk);
  for (auto& t : readers) t.join();
  CHECK(inside.load() == kReaders);
}

TEST(rwlock_writer_that_gives_up_lets_the_readers_it_held_back_in) {
  Slot slot{};
  rwlock::init(slot, rwlock::Prefer::kWriters);
  CHECK(rwlock::try_read(slot));
  std::thread writer([&] {
    CHECK(rwlock::write(slot, Deadline::after(0.3)) == Status::kTimedOut);
  });
  CHECK(eventually([&] { return rwlock::waiting_writers(slot) == 1; }));
  std::atomic<bool> read{false};
  std::thread reader([&] {
    CHECK(rwlock::read(slot, Deadline::after(10)) == Status::kOk);  // behind the writer
    read = true;
    CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
  });
  writer.join();  // timed out: its withdrawal must wake the reader
  reader.join();
  CHECK(read.load());
  CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
}

TEST(rwlock_downgrade_keeps_writers_out) {
  Slot slot{};
  rwlock::init(slot, rwlock::Prefer::kWriters);
  CHECK(rwlock::try_write(slot));
  CHECK(rwlock::downgrade(slot) == rwlock::Release::kOk);
  CHECK(!rwlock::write_locked(slot) && rwlock::readers(slot) == 1);
  CHECK(rwlock::own_reads(slot) == 1);
  std::thread([&] {
    CHECK(!rwlock::try_write(slot));
    CHECK(rwlock::try_read(slot));  // readers may join
    CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
  }).join();
  CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
  CHECK(rwlock::try_write(slot));
  CHECK(rwlock::release_write(slot) == rwlock::Release::kOk);
}

TEST(rwlock_threads_never_see_a_writer_with_anyone) {
  for (auto prefer : {rwlock::Prefer::kWriters, rwlock::Prefer::kReaders}) {
    Slot slot{};
    rwlock::init(slot, prefer);
    std::atomic<int> readers_in{0}, writers_in{0}, writes{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 6; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < 3000; ++i) {
          if ((i + t) % 5 == 0) {
            Status st = rwlock::write(slot, Deadline::after(i % 7 == 0 ? 0.0001 : 10));
            if (st != Status::kOk) continue;
            CHECK(++writers_in == 1);
            CHECK(readers_in.load() == 0);
            ++writes;
            --writers_in;
            CHECK(rwlock::release_write(slot) == rwlock::Release::kOk);
          } else {
            Status st = rwlock::read(slot, Deadline::after(i % 11 == 0 ? 0.0001 : 10));
            if (st != Status::kOk) continue;
            ++readers_in;
            CHECK(writers_in.load() == 0);
            --readers_in;
            CHECK(rwlock::release_read(slot) == rwlock::Release::kOk);
          }
        }
      });
    for (auto& t : threads) t.join();
    CHECK(writes.load() > 0);
    CHECK(rwlock::readers(slot) == 0 && !rwlock::write_locked(slot));
    CHECK(rwlock::waiting_writers(slot) == 0);
  }
}

TEST(rwlock_readers_share_between_processes_and_a_writer_waits) {
  auto* slot = interlock::test::shared_new<Slot>();
  auto* step = interlock::test::shared_new<std::atomic<int>>();
  rwlock::init(*slot, rwlock::Prefer::kWriters);
  CHECK(rwlock::try_read(*slot));
  pid_t child = interlock::test::fork_child([&] {
    CHECK(rwlock::own_reads(*slot) == 0);  // the parent's hold is not the child's
    CHECK(rwlock::release_read(*slot) == rwlock::Release::kNotOwner);
    CHECK(rwlock::try_read(*slot));  // readers share across processes
    step->store(1);
    CHECK(eventually([&] { return step->load() == 2; }));
    CHECK(rwlock::release_read(*slot) == rwlock::Release::kOk);
    CHECK(rwlock::write(*slot, Deadline::after(10)) == Status::kOk);  // after the parent
    CHECK(rwlock::release_write(*slot) == rwlock::Release::kOk);
  });
  CHECK(eventually([&] { return step->load() == 1; }));
  CHECK(rwlock::readers(*slot) == 2);
  step->store(2);
  CHECK(eventually([&] { return rwlock::waiting_writers(*slot) == 1; }));
  CHECK(rwlock::release_read(*slot) == rwlock::Release::kOk);  // wakes the child's writer
  CHECK(interlock::test::child_succeeded(child));
  CHECK(rwlock::readers(*slot) == 0 && !rwlock::write_locked(*slot));
}

TEST(rwlock_a_write_wait_spans_calls) {
  Slot slot{};
  rwlock::init(slot, rwlock::Prefer::kWriters);
  interlock::test::check_a_write_wait_spans_calls(slot);
}
