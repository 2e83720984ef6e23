// futex_ring.hpp: asyncio waits that the kernel sleeps through, on io_uring's futex waits.
//
// A FutexRing is an io_uring instance (Linux 6.7+, IORING_OP_FUTEX_WAIT) owned by one event
// loop. Each watch is one futex-wait request on the ring: the kernel queues it on the word
// exactly as it queues a sleeping thread, so a release that wakes one sleeper may wake it,
// and a word that already differs completes it at once. A completion makes the ring's file
// descriptor readable; the event loop polls that descriptor with its other ones, so a wake
// from another process reaches the loop's thread directly, with no thread in between. There
// is no bound on the number of watches, and no thread at all.
//
// Protocol with the kernel (the rings are shared memory; this side is single-threaded under
// `mutex_`):
//   - submission: write the entry, then publish it by storing the SQ tail (release, so that
//     the kernel, which loads the tail with acquire, reads a complete entry), then
//     io_uring_enter, which consumes it before returning;
//   - completion: load the CQ tail (acquire: pairs with the kernel's release after it wrote
//     the entries), read the entries up to it, then store the CQ head (release: the kernel
//     may reuse those entries only after they were read). Completions that found the CQ full
//     wait in the kernel (IORING_FEAT_NODROP) until an io_uring_enter with GETEVENTS flushes
//     them, which take_fired() does while the overflow flag is up;
//   - removal: IORING_REGISTER_SYNC_CANCEL, which returns once the request has completed,
//     cancelled or not; its completion is then read at once and says whether a wake had
//     been consumed.
//
// A completion is posted in the context of the thread that submitted the request, as task
// work that the kernel runs on that thread's way back from any system call (or that
// interrupts its poll). So every call is made from the loop's thread, which is how
// interlock._asyncio uses it.
//
// Fork: the rings are shared memory with the kernel, and a child's copy of the descriptor
// still names the parent's ring. A child only unmaps and closes its copies (abandon(), or the
// destructor): its requests, if it made any, would be the parent's.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/watcher.hpp"

namespace interlock::core {

class FutexRing final : public Watcher {
 public:
  // A new ring, or nullptr where io_uring or its futex waits are unavailable (an older
  // kernel, a seccomp filter, kernel.io_uring_disabled, qemu-user, or the environment
  // variable INTERLOCK_NO_IO_URING). Asked again on each call; cheap when refused.
  static std::unique_ptr<FutexRing> open();

  ~FutexRing() override;  // closes the ring: the kernel cancels what still waits
  FutexRing(const FutexRing&) = delete;
  FutexRing& operator=(const FutexRing&) = delete;

  // Readable while completions wait to be taken.
  int fd() const { return fd_; }

  bool watch(std::atomic<uint32_t>* word, uint32_t expected, uint64_t token) override;
  bool unwatch(uint64_t token) override;
  void take_fired(std::vector<uint64_t>& out) override;
  size_t watching() const override;
  void abandon() override;

 private:
  struct Mapping {
    void* base = nullptr;
    size_t size = 0;
  };

  FutexRing() = default;
  bool setup();
  bool probe();                  // whether futex waits work here (one on a local word)
  bool submit_wait(std::atomic<uint32_t>* word, uint32_t expected, uint64_t user_data);
  void reap();                   // under mutex_: completions into fired_ / cancelled_
  void unmap_and_close();

  int fd_ = -1;
  Mapping rings_, entries_;
  // Pointers into rings_ (their offsets come from the kernel).
  std::atomic<uint32_t>* sq_tail_ = nullptr;
  const std::atomic<uint32_t>* sq_flags_ = nullptr;
  uint32_t sq_mask_ = 0;
  uint32_t* sq_array_ = nullptr;
  std::atomic<uint32_t>* cq_head_ = nullptr;
  const std::atomic<uint32_t>* cq_tail_ = nullptr;
  uint32_t cq_mask_ = 0;
  const void* cqes_ = nullptr;

  mutable std::mutex mutex_;
  // Waiting watches: token -> the word (to pass on a wake that lands after a removal).
  std::unordered_map<uint64_t, std::atomic<uint32_t>*> waiting_;
  std::vector<uint64_t> fired_;  // fired and not yet taken
  uint64_t cancelling_ = 0;      // the token unwatch() is cancelling, else 0 (none)
};

}  // namespace interlock::core
