// waker.hpp: one thread that sleeps on many futex words at once, for asyncio waiters.
//
// An awaiting task must not block its event loop, and 10,000 of them must not cost 10,000
// threads. A Waker holds up to kCapacity watches, each "tell me when *word no longer holds
// `expected`", and runs one thread that sleeps on all their words in a single futex_waitv
// (Linux 5.16+) together with a private control word; on older kernels it polls the words
// instead (see supported()). When the call returns, every watch
// whose word changed, or was woken, has fired: its token is moved to the fired list and the notification
// file descriptor (an eventfd the event loop reads) is written. The loop then takes the fired
// tokens and retries each waiter's operation itself, inline: the Waker never acquires
// anything on anyone's behalf, so a task cancelled at any moment leaves no hold behind.
//
// A fired watch is only a hint that the word moved. The waiter that owns it re-checks its
// condition with the primitive's own non-blocking operation, and watches again (with a fresh
// expected value) if it lost the race.
//
// Protocol: watch() and unwatch() change the table under `mutex_`, then bump `control_` and
// wake the thread, which rebuilds its futex_waitv request from the table. The thread reads
// `control_` under the mutex while it copies the table, and the kernel compares every word,
// the control word included, atomically with the sleep: a watch added after the copy
// changes `control_` and makes the sleep return at once (EAGAIN), and a word that changed
// before the sleep makes it return at once as well. So no change is ever slept through.
//
// The thread blocks every signal and never runs Python. It is stopped around every fork
// (pause/resume, from interlock's fork hooks), so a Waker never makes a forking process
// multi-threaded; a child drops the Wakers it inherited (their tables are the parent's).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/watcher.hpp"

namespace interlock::core {

class Waker final : public Watcher {
 public:
  // futex_waitv takes at most 128 words; one is the control word.
  static constexpr size_t kCapacity = 127;

  // `notify_fd` is written (8 bytes, an eventfd increment) whenever watches fire; -1: none.
  explicit Waker(int notify_fd);
  // Stops and joins the thread (unless abandoned). Watches that have not fired are dropped.
  ~Waker() override;
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;

  // Whether this kernel has futex_waitv. Without it a Waker still works, but its thread
  // polls the words (every 1 ms, backing off to 16 ms while nothing fires) instead of
  // sleeping on them all at once.
  static bool supported();

  // Adds a watch: `token` fires once *word != expected. `word` must stay mapped until the
  // watch fires or is removed. False (nothing added) when the table is full or the thread
  // could not be started. Starts the thread on first use.
  bool watch(std::atomic<uint32_t>* word, uint32_t expected, uint64_t token) override;

  // Removes the watch of `token`. True when it was still waiting; false when it had fired
  // already (its token is in, or was taken from, the fired list) or never existed.
  bool unwatch(uint64_t token) override;

  // Appends the fired tokens to `out`, in firing order, and forgets them.
  void take_fired(std::vector<uint64_t>& out) override;

  // Watches still waiting, and room for more.
  size_t watching() const override;
  bool full() const { return watching() >= kCapacity; }

  // Before a fork: stops the thread, keeping the table, so that the process forks with no
  // Waker thread (a fork of a multi-threaded process is unsafe, and CPython 3.12+ warns).
  // Watches added meanwhile wait in the table. resume() (in the parent, after the fork)
  // starts the thread again if anything is watched.
  void pause() override;
  void resume() override;

  // In a fork child whose parent forked without pause(): forget the parent's thread, which
  // does not exist here, so the destructor does not join it. Not to be used afterwards.
  void abandon() override;

 private:
  struct Watch {
    std::atomic<uint32_t>* word;
    uint32_t expected;
    uint64_t token;
  };

  static constexpr long kFirstPollNs = 1000000;   // polling (no futex_waitv): 1 ms ...
  static constexpr long kLastPollNs = 16000000;   // ... doubling up to 16 ms while idle

  void run();
  void changed();  // after a change to the table, under mutex_: wakes the thread
  bool start();    // under mutex_: starts the thread; false if it could not be started

  mutable std::mutex mutex_;
  std::vector<Watch> watches_;   // waiting watches (guarded by mutex_)
  std::vector<uint64_t> fired_;  // fired and not yet taken (guarded by mutex_)
  std::atomic<uint32_t> control_{0};  // bumped by every change the thread must see
  bool stopping_ = false;             // guarded by mutex_: the thread must return
  bool paused_ = false;               // guarded by mutex_: no thread until resume()
  bool abandoned_ = false;
  int notify_fd_;
  std::unique_ptr<std::thread> thread_;  // leaked, not joined, once abandoned
};

}  // namespace interlock::core
