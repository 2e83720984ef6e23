// The io_uring watcher (futex_ring.hpp): futex waits the kernel sleeps through for a loop.
// Where this kernel refuses io_uring's futex waits, open() returns null and each case says so
// and passes: the Waker's cases cover that machine.
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "check.hpp"
#include "core/futex.hpp"
#include "core/futex_ring.hpp"
#include "shared_memory.hpp"

using namespace interlock::core;

namespace {

// Whether the ring's descriptor turns readable within `ms`.
bool readable(const FutexRing& ring, int ms) {
  pollfd p{ring.fd(), POLLIN, 0};
  int rc;
  do {
    rc = poll(&p, 1, ms);
  } while (rc < 0 && errno == EINTR);
  return rc == 1;
}

std::vector<uint64_t> fired(FutexRing& ring) {
  std::vector<uint64_t> out;
  ring.take_fired(out);
  return out;
}

std::unique_ptr<FutexRing> ring_or_note() {
  auto ring = FutexRing::open();
  if (!ring) std::printf("io_uring futex waits unavailable here: nothing to check\n");
  return ring;
}

}  // namespace

TEST(ring_fires_when_a_watched_word_is_woken) {
  auto ring = ring_or_note();
  if (!ring) return;
  std::atomic<uint32_t> a{0}, b{5};
  CHECK(ring->watch(&a, 0, 1));
  CHECK(ring->watch(&b, 5, 2));
  CHECK(!readable(*ring, 50));  // nothing moved
  b.store(6);
  futex_wake(&b, 1);
  CHECK(readable(*ring, 5000));
  CHECK(fired(*ring) == std::vector<uint64_t>{2});
  CHECK(!readable(*ring, 0));  // taken: no longer readable
  CHECK(ring->watching() == 1);
  CHECK(!ring->unwatch(2));  // fired already
  CHECK(ring->unwatch(1));   // still waiting: cancelled
  a.store(1);
  futex_wake(&a, 1);
  CHECK(!readable(*ring, 50));  // a removed watch never fires
  CHECK(fired(*ring).empty());
}

TEST(ring_fires_at_once_for_a_word_that_moved_before_the_watch) {
  auto ring = ring_or_note();
  if (!ring) return;
  std::atomic<uint32_t> word{3};
  CHECK(ring->watch(&word, 2, 7));  // already differs: nobody will ever wake it
  CHECK(readable(*ring, 5000));
  CHECK(fired(*ring) == std::vector<uint64_t>{7});
  CHECK(ring->watching() == 0);
}

TEST(ring_fires_a_watch_whose_word_is_woken_unchanged) {
  // The death watch wakes a robust lock's word without changing it when its holder dies.
  auto ring = ring_or_note();
  if (!ring) return;
  std::atomic<uint32_t> word{4}, other{4};
  CHECK(ring->watch(&word, 4, 1));
  CHECK(ring->watch(&other, 4, 2));
  futex_wake(&word, 1);
  CHECK(readable(*ring, 5000));
  CHECK(fired(*ring) == std::vector<uint64_t>{1});  // only the woken word's watch
  CHECK(ring->watching() == 1);
}

TEST(ring_takes_ten_thousand_completions_at_once) {
  // More completions than the completion queue holds (4096): the rest wait in the kernel
  // and take_fired() flushes them; none is lost.
  auto ring = ring_or_note();
  if (!ring) return;
  const uint64_t n = 10000;
  std::vector<std::atomic<uint32_t>> words(n);
  for (uint64_t i = 0; i < n; ++i) CHECK(ring->watch(&words[i], 0, i + 1));
  CHECK(ring->watching() == n);
  for (auto& w : words) {
    w.store(1);
    futex_wake(&w, 1);
  }
  CHECK(readable(*ring, 5000));
  std::vector<uint64_t> all = fired(*ring);
  std::vector<bool> seen(n + 1, false);
  for (uint64_t token : all) seen.at(token) = true;
  CHECK(all.size() == n);
  for (uint64_t i = 1; i <= n; ++i) CHECK(seen[i]);
  CHECK(ring->watching() == 0);
}

TEST(ring_unwatch_just_after_a_wake_says_the_wake_was_consumed) {
  // A task cancelled after its watch fired but before the loop took the completion must
  // learn that it consumed a wake (so it passes it on): unwatch() false, the token fired.
  auto ring = ring_or_note();
  if (!ring) return;
  for (uint64_t round = 1; round <= 200; ++round) {
    std::atomic<uint32_t> word{0};
    CHECK(ring->watch(&word, 0, round));
    std::thread waker([&] { futex_wake(&word, 1); });
    waker.join();
    CHECK(!ring->unwatch(round));
    CHECK(fired(*ring) == std::vector<uint64_t>{round});
  }
  CHECK(ring->watching() == 0);
}

TEST(ring_sees_a_wake_from_another_process) {
  auto ring = ring_or_note();
  if (!ring) return;
  auto* word = interlock::test::shared_new<std::atomic<uint32_t>>();
  CHECK(ring->watch(word, 0, 42));
  pid_t child = fork();
  if (child == 0) {
    usleep(50 * 1000);
    word->store(1);
    futex_wake(word, 1);
    _exit(0);
  }
  CHECK(readable(*ring, 10000));
  CHECK(fired(*ring) == std::vector<uint64_t>{42});
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(a_fork_child_letting_go_of_its_copy_leaves_the_parent_ring_working) {
  auto ring = ring_or_note();
  if (!ring) return;
  auto* word = interlock::test::shared_new<std::atomic<uint32_t>>();
  CHECK(ring->watch(word, 0, 5));
  pid_t child = fork();
  if (child == 0) {
    ring->abandon();  // unmaps and closes the child's copies only
    ring.reset();
    auto own = FutexRing::open();  // and a ring of its own works
    std::atomic<uint32_t> mine{1};
    bool ok = own && own->watch(&mine, 0, 1) && readable(*own, 5000);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(!readable(*ring, 50));  // the parent's watch still waits
  word->store(1);
  futex_wake(word, 1);
  CHECK(readable(*ring, 5000));
  CHECK(fired(*ring) == std::vector<uint64_t>{5});
}
