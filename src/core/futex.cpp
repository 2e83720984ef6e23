#include "core/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>

namespace interlock::core {

namespace {

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449  // the same number on every architecture that has it
#endif

// futex_waitv's request, as <linux/futex.h> (5.16+) defines it; spelled out here so that the
// core builds against older kernel headers too.
struct WaitvEntry {
  uint64_t val;
  uint64_t uaddr;
  uint32_t flags;
  uint32_t reserved;
};
constexpr uint32_t kFutex2SizeU32 = 0x02;
constexpr uint32_t kFutex2Private = 128;  // FUTEX_PRIVATE_FLAG

thread_local const std::atomic<uint32_t>* t_interrupt_word = nullptr;
thread_local uint32_t t_interrupt_value = 0;

Status wait_with_interrupt_word(std::atomic<uint32_t>* word, uint32_t expected,
                                const Deadline& deadline) {
  const std::atomic<uint32_t>* iword = t_interrupt_word;
  WaitvEntry entries[2] = {
      {expected, reinterpret_cast<uint64_t>(word), kFutex2SizeU32, 0},
      {t_interrupt_value, reinterpret_cast<uint64_t>(iword), kFutex2SizeU32 | kFutex2Private, 0},
  };
  const timespec* when = deadline.is_infinite() ? nullptr : &deadline.when();
  long rc = syscall(SYS_futex_waitv, entries, 2, 0, when, CLOCK_MONOTONIC);
  if (rc == 0) return Status::kOk;           // woken on `word`
  if (rc == 1) return Status::kInterrupted;  // woken on the interrupt word
  switch (errno) {
    case ETIMEDOUT:
      return Status::kTimedOut;
    case EINTR:
      return Status::kInterrupted;
    default:  // EAGAIN: one of the words had already changed. relaxed: the value is all we need.
      return iword->load(std::memory_order_relaxed) != t_interrupt_value ? Status::kInterrupted
                                                                          : Status::kOk;
  }
}

}  // namespace

namespace {

Status plain_wait(std::atomic<uint32_t>* word, uint32_t expected, const Deadline& deadline,
                  int private_flag) {
  const timespec* when = deadline.is_infinite() ? nullptr : &deadline.when();
  // FUTEX_WAIT_BITSET without FUTEX_CLOCK_REALTIME measures an absolute CLOCK_MONOTONIC time.
  long rc = syscall(SYS_futex, reinterpret_cast<uint32_t*>(word),
                    FUTEX_WAIT_BITSET | private_flag, expected, when, nullptr,
                    FUTEX_BITSET_MATCH_ANY);
  if (rc == 0) return Status::kOk;
  switch (errno) {
    case ETIMEDOUT:
      return Status::kTimedOut;
    case EINTR:
      return Status::kInterrupted;
    default:  // EAGAIN: the word had already changed.
      return Status::kOk;
  }
}

}  // namespace

Status futex_wait(std::atomic<uint32_t>* word, uint32_t expected, const Deadline& deadline) {
  if (t_interrupt_word != nullptr) return wait_with_interrupt_word(word, expected, deadline);
  return plain_wait(word, expected, deadline, 0);
}

Status futex_wait_private(std::atomic<uint32_t>* word, uint32_t expected,
                          const Deadline& deadline) {
  return plain_wait(word, expected, deadline, FUTEX_PRIVATE_FLAG);
}

long futex_wait_many(const WaitEntry* entries, size_t count) {
  WaitvEntry request[128];
  if (count > 128) count = 128;
  for (size_t i = 0; i < count; ++i)
    request[i] = {entries[i].expected, reinterpret_cast<uint64_t>(entries[i].word),
                  kFutex2SizeU32 | (entries[i].private_word ? kFutex2Private : 0u), 0};
  long rc = syscall(SYS_futex_waitv, request, count, 0, nullptr, CLOCK_MONOTONIC);
  return rc >= 0 ? rc : -1;
}

void futex_wake(std::atomic<uint32_t>* word, int count) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, count < 0 ? INT_MAX : count,
          nullptr, nullptr, 0);
}

void futex_wake_private(std::atomic<uint32_t>* word, int count) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE,
          count < 0 ? INT_MAX : count, nullptr, nullptr, 0);
}

bool interrupt_word_supported() {
  // An empty request is refused with EINVAL by a kernel that has the call, ENOSYS otherwise
  // (or EPERM under a seccomp filter that forbids it).
  static const bool supported = [] {
    // INTERLOCK_NO_FUTEX_WAITV set: behave as on an older kernel (tests the fallback).
    if (std::getenv("INTERLOCK_NO_FUTEX_WAITV") != nullptr) return false;
    long rc = syscall(SYS_futex_waitv, nullptr, 0, 0, nullptr, CLOCK_MONOTONIC);
    return rc == -1 && errno == EINVAL;
  }();
  return supported;
}

ScopedInterruptWord::ScopedInterruptWord(const std::atomic<uint32_t>* word, uint32_t value)
    : saved_word_(t_interrupt_word), saved_value_(t_interrupt_value) {
  t_interrupt_word = word;
  t_interrupt_value = value;
}

ScopedInterruptWord::~ScopedInterruptWord() {
  t_interrupt_word = saved_word_;
  t_interrupt_value = saved_value_;
}

}  // namespace interlock::core
