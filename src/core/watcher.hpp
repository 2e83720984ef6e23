// watcher.hpp: what an asyncio task's wait needs from whatever sleeps for it.
//
// A task that must wait hands a futex word to a Watcher: "tell me when *word no longer holds
// `expected`, or when someone wakes it". The Watcher sleeps on it in the task's stead and
// reports fired watches by token; the task then retries its operation itself. Two
// implementations: FutexRing (futex_ring.hpp), where the kernel itself sleeps on every word
// and the event loop's thread is woken directly, and Waker (waker.hpp), a thread that sleeps
// on up to 127 words at once, for kernels without io_uring's futex waits.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace interlock::core {

class Watcher {
 public:
  virtual ~Watcher() = default;

  // Adds a watch: `token` fires once *word != expected or the word is woken. `word` must
  // stay mapped until the watch fires or is removed. False: nothing added (full, or the
  // kernel refused); the caller takes another Watcher.
  virtual bool watch(std::atomic<uint32_t>* word, uint32_t expected, uint64_t token) = 0;

  // Removes the watch of `token`. True when it was still waiting, so that no wake-up was
  // consumed for it; false when it had fired already (its token is in, or was taken from,
  // the fired list) or never existed.
  virtual bool unwatch(uint64_t token) = 0;

  // Appends the fired tokens to `out`, in firing order, and forgets them.
  virtual void take_fired(std::vector<uint64_t>& out) = 0;

  // Watches still waiting.
  virtual size_t watching() const = 0;

  // Around a fork (see Waker): stop and restart any thread of the Watcher's own.
  virtual void pause() {}
  virtual void resume() {}

  // In a fork child: let go of what belongs to the parent, touching none of it.
  virtual void abandon() {}
};

}  // namespace interlock::core
