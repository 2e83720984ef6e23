// eventually.hpp: waiting, in a test, for another thread or process to get somewhere.
#pragma once

#include <poll.h>
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

}  // namespace interlock::test
