#include "core/deadline.hpp"

#include <cmath>

namespace interlock::core {

namespace {
// Timeouts beyond this many seconds (about 31 years) are treated as "forever".
constexpr double kForeverSeconds = 1e9;
}  // namespace

Deadline Deadline::after(double seconds) {
  Deadline d;
  if (!(seconds < kForeverSeconds)) return d;  // also catches +inf
  if (seconds < 0) seconds = 0;
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  double whole = std::floor(seconds);
  long nanos = static_cast<long>((seconds - whole) * 1e9);
  d.infinite_ = false;
  d.when_.tv_sec = now.tv_sec + static_cast<time_t>(whole);
  d.when_.tv_nsec = now.tv_nsec + nanos;
  if (d.when_.tv_nsec >= 1000000000L) {
    d.when_.tv_sec += 1;
    d.when_.tv_nsec -= 1000000000L;
  }
  return d;
}

Deadline Deadline::earlier(const Deadline& a, const Deadline& b) {
  if (a.infinite_) return b;
  if (b.infinite_) return a;
  bool a_first = a.when_.tv_sec < b.when_.tv_sec ||
                 (a.when_.tv_sec == b.when_.tv_sec && a.when_.tv_nsec <= b.when_.tv_nsec);
  return a_first ? a : b;
}

bool Deadline::passed() const {
  if (infinite_) return false;
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec > when_.tv_sec || (now.tv_sec == when_.tv_sec && now.tv_nsec >= when_.tv_nsec);
}

}  // namespace interlock::core
