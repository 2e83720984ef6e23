// deadline.hpp: absolute CLOCK_MONOTONIC deadlines for every timed wait.
//
// A Deadline is fixed once, when a call starts, and never recomputed: a wait that is
// interrupted by a signal resumes against the same absolute time, so it waits only for the
// time that remains. CLOCK_MONOTONIC is used so that changes to the wall clock never stretch
// or shorten a timeout.
#pragma once

#include <ctime>

namespace interlock::core {

class Deadline {
 public:
  // A deadline that never passes.
  static Deadline never() { return Deadline(); }

  // A deadline `seconds` from now. `seconds` must not be NaN; a negative value means "now",
  // and a value too large to represent (or infinity) means never().
  static Deadline after(double seconds);

  // The earlier of two deadlines.
  static Deadline earlier(const Deadline& a, const Deadline& b);

  bool is_infinite() const { return infinite_; }
  // The absolute CLOCK_MONOTONIC time; meaningful only when !is_infinite().
  const timespec& when() const { return when_; }
  // True once CLOCK_MONOTONIC has reached the deadline.
  bool passed() const;

 private:
  Deadline() = default;
  bool infinite_ = true;
  timespec when_{0, 0};
};

}  // namespace interlock::core
