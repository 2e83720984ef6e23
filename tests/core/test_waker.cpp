// The asyncio waker (waker.hpp): one thread sleeping on many futex words.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "check.hpp"
#include "core/futex.hpp"
#include "core/waker.hpp"
#include "eventually.hpp"
#include "shared_memory.hpp"

using namespace interlock::core;
using interlock::test::EventFd;
using interlock::test::eventually;
using interlock::test::notified;

namespace {

std::vector<uint64_t> fired(Waker& waker) {
  std::vector<uint64_t> out;
  waker.take_fired(out);
  return out;
}

}  // namespace

TEST(waker_fires_when_a_watched_word_changes) {
  EventFd efd;
  const int fd = efd.fd;
  auto waker = std::make_unique<Waker>(fd);
  std::atomic<uint32_t> a{0}, b{5};
  CHECK(waker->watch(&a, 0, 1));
  CHECK(waker->watch(&b, 5, 2));
  CHECK(!notified(fd, 50));  // nothing moved
  b.store(6);
  futex_wake(&b, 1);
  CHECK(notified(fd, 5000));
  CHECK(fired(*waker) == std::vector<uint64_t>{2});
  CHECK(waker->watching() == 1);
  CHECK(!waker->unwatch(2));  // fired already
  CHECK(waker->unwatch(1));   // still waiting: removed
  a.store(1);
  futex_wake(&a, 1);
  CHECK(!notified(fd, 50));  // a removed watch never fires
  waker.reset();
}

TEST(waker_fires_at_once_for_a_word_that_moved_before_the_sleep) {
  EventFd efd;
  const int fd = efd.fd;
  Waker waker(fd);
  std::atomic<uint32_t> word{3};
  CHECK(waker.watch(&word, 2, 7));  // already differs: nobody will ever wake it
  CHECK(notified(fd, 5000));
  CHECK(fired(waker) == std::vector<uint64_t>{7});
}

TEST(waker_holds_up_to_its_capacity) {
  Waker waker(-1);
  std::vector<std::atomic<uint32_t>> words(Waker::kCapacity + 1);
  for (size_t i = 0; i < Waker::kCapacity; ++i) CHECK(waker.watch(&words[i], 0, i));
  CHECK(waker.full());
  CHECK(!waker.watch(&words[Waker::kCapacity], 0, 999));  // refused, nothing added
  // The last watch of a full table still fires.
  words[Waker::kCapacity - 1].store(1);
  futex_wake(&words[Waker::kCapacity - 1], 1);
  CHECK(eventually([&] { return waker.watching() == Waker::kCapacity - 1; }));
  CHECK(fired(waker) == std::vector<uint64_t>{Waker::kCapacity - 1});
}

TEST(waker_sees_a_change_made_by_another_process) {
  EventFd efd;
  const int fd = efd.fd;
  Waker waker(fd);
  auto* word = interlock::test::shared_new<std::atomic<uint32_t>>();
  CHECK(waker.watch(word, 0, 42));
  pid_t child = fork();
  if (child == 0) {
    usleep(50 * 1000);
    word->store(1);
    futex_wake(word, 1);
    _exit(0);
  }
  CHECK(notified(fd, 10000));
  CHECK(fired(waker) == std::vector<uint64_t>{42});
  int status = 0;
  waitpid(child, &status, 0);
}

TEST(waker_paused_for_a_fork_keeps_its_watches_and_resumes) {
  EventFd efd;
  const int fd = efd.fd;
  Waker waker(fd);
  std::atomic<uint32_t> a{0}, b{0};
  CHECK(waker.watch(&a, 0, 1));
  waker.pause();  // no thread from here on
  CHECK(waker.watch(&b, 0, 2));  // waits in the table
  b.store(1);
  futex_wake(&b, 1);
  CHECK(!notified(fd, 50));  // nobody watches while paused
  waker.resume();
  CHECK(notified(fd, 5000));  // the change made while paused is seen at once
  CHECK(fired(waker) == std::vector<uint64_t>{2});
  a.store(1);
  futex_wake(&a, 1);
  CHECK(notified(fd, 5000));
  CHECK(fired(waker) == std::vector<uint64_t>{1});
}

TEST(waker_fires_a_watch_whose_word_is_woken_unchanged) {
  // Polling (no futex_waitv) cannot see a wake that changes nothing; it fires every
  // watch when the death watch wakes instead (test_asyncio.py kills a holder so).
  if (!Waker::supported()) return;
  EventFd efd;
  const int fd = efd.fd;
  Waker waker(fd);
  std::atomic<uint32_t> word{4}, other{4};
  CHECK(waker.watch(&word, 4, 1));
  CHECK(waker.watch(&other, 4, 2));
  CHECK(eventually([&] { return waker.watching() == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // asleep by now
  // A wake without a change (the death watch does this when a robust lock's holder dies).
  CHECK(eventually([&] {
    futex_wake(&word, 1);
    return notified(fd, 20);
  }));
  CHECK(fired(waker) == std::vector<uint64_t>{1});  // only the woken word's watch
  CHECK(waker.watching() == 1);
}
