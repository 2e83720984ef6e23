// eventually.hpp: waiting, in a test, for another thread or process to get somewhere.
#pragma once

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <thread>

namespace interlock::test {

// Polls `cond` every millisecond for up to 10 s; true as soon as it holds, false if it never
// did. For steps of other threads or processes that a test cannot be told about directly.
template <class Cond>
bool eventually(Cond&& cond) {
  for (int i = 0; i < 10000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// Waits up to `ms` for the eventfd `fd` to be readable, and drains it: whether it was.
inline bool notified(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, ms) != 1) return false;
  uint64_t count = 0;
  return read(fd, &count, sizeof count) == sizeof count && count > 0;
}

// A non-blocking eventfd, closed when it goes out of scope. Declare it before the Waker that
// writes to it: objects are destroyed in reverse order, so the Waker's thread has been joined
// by the time the descriptor closes (a close while that thread may still write would let a
// new descriptor that reuses the number receive the write).
struct EventFd {
  const int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  EventFd() = default;
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;
  ~EventFd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace interlock::test
