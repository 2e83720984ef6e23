// errors.hpp: the exceptions the core throws. The bindings map each to a Python exception.
#pragma once

#include <stdexcept>
#include <string>

namespace interlock::core {

// A system call failed. Carries errno; becomes OSError (or the matching subclass).
class OsError : public std::runtime_error {
 public:
  OsError(int err, const std::string& what) : std::runtime_error(what), errno_(err) {}
  int error_number() const { return errno_; }

 private:
  int errno_;
};

// A shared segment, or a reference into one, is not interlock's, is of another layout
// version, is truncated or corrupted, or names a slot of the wrong kind. Becomes
// interlock.SegmentError, a ValueError.
class SegmentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace interlock::core
