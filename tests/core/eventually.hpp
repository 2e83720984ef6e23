// eventually.hpp: waiting, in a test, for another thread or process to get somewhere.
#pragma once

#include <chrono>
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

}  // namespace interlock::test
