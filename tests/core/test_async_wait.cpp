// The steps of an awaited wait (async_wait.hpp), slept through by a Waker, beside threads
// that wait the ordinary way on the same primitive.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "check.hpp"
#include "core/async_wait.hpp"
#include "core/event.hpp"
#include "core/mutex.hpp"
#include "core/semaphore.hpp"
#include "core/waker.hpp"
#include "eventually.hpp"

using namespace interlock::core;
using interlock::test::EventFd;
using interlock::test::eventually;
using interlock::test::notified;

TEST(async_lock_waiter_takes_the_lock_its_watch_was_woken_for) {
  EventFd efd;
  const int fd = efd.fd;
  Waker waker(fd);
  Slot slot{};
  std::atomic<int> step{0};
  std::thread holder([&] {
    CHECK(mutex::lock_try_acquire(slot.body.mutex));
    step.store(1);
    while (step.load() != 2) std::this_thread::yield();
    mutex::lock_release(slot.body.mutex);
  });
  CHECK(eventually([&] { return step.load() == 1; }));
  async_wait::Watch w = async_wait::lock_prepare(slot.body.mutex);
  CHECK(w.word != nullptr && (w.expected & mutex::kWaitersBit));
  CHECK(!async_wait::lock_try_after_wake(slot.body.mutex));
  CHECK(waker.watch(w.word, w.expected, 1));
  CHECK(!notified(fd, 30));
  step.store(2);  // the holder unlocks and, seeing the waiters bit, wakes one: the Waker
  CHECK(notified(fd, 5000));
  CHECK(async_wait::lock_try_after_wake(slot.body.mutex));
  CHECK(mutex::owner_tid(slot.body.mutex) == current_thread().tid);
  holder.join();
  mutex::lock_release(slot.body.mutex);
  CHECK(async_wait::lock_prepare(slot.body.mutex).word == nullptr);  // free: try now
}

TEST(async_semaphore_waiter_that_leaves_passes_its_wake_to_a_thread) {
  EventFd efd;
  const int fd = efd.fd;
  Waker waker(fd);
  Slot slot{};
  semaphore::init(slot.body.semaphore, 0, semaphore::kValueMax);
  SemaphoreState& s = slot.body.semaphore;
  // A thread asleep in acquire() and a task watching through the Waker: release(1) wakes one
  // of the two sleepers, whichever the kernel picks.
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    got.store(semaphore::acquire(s, Deadline::after(20), Spin::kNo) == Status::kOk);
  });
  CHECK(eventually([&] { return s.waiters.load() == 1; }));
  async_wait::semaphore_join(s);
  async_wait::Watch w = async_wait::semaphore_prepare(s);
  CHECK(w.word == &s.value);
  CHECK(waker.watch(w.word, w.expected, 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // both are asleep by now
  CHECK(semaphore::release(s, 1));
  bool task_woken = false;
  CHECK(eventually([&] { return got.load() || (task_woken = notified(fd, 0)); }));
  // The task is cancelled: it leaves without the permit, passing on a wake it consumed, so
  // the thread is not left asleep beside a free permit.
  async_wait::semaphore_leave(s, /*pass_wake=*/task_woken);
  const auto t0 = std::chrono::steady_clock::now();
  waiter.join();
  CHECK(got.load());
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  CHECK(s.waiters.load() == 0 && semaphore::value(s) == 0);
}

TEST(async_event_watch_sees_a_pulse) {
  EventFd efd;
  const int fd = efd.fd;
  Waker waker(fd);
  Slot slot{};
  EventState& e = slot.body.event;
  const uint32_t since = event::snapshot(e);
  async_wait::event_join(e);
  async_wait::Watch w = async_wait::event_prepare(e, since);
  CHECK(w.word == &e.word && w.expected == since);
  CHECK(waker.watch(w.word, w.expected, 9));
  event::set(e);
  event::clear(e);  // a pulse: the word moved on twice, and the flag is clear again
  CHECK(notified(fd, 5000));
  CHECK(async_wait::event_prepare(e, since).word == nullptr);  // it was set since `since`
  async_wait::event_leave(e);
  CHECK(event::waiters(e) == 0);
}
