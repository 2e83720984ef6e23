// file_lock.hpp: record locks on files that belong to an open file description.
//
// Locks are Linux open-file-description (OFD) locks, F_OFD_SETLK / F_OFD_SETLKW: they belong
// to the open file description, not to the process, so two descriptors opened separately
// (even by two threads of one process) exclude each other, closing some other descriptor of
// the file never drops a lock, and the kernel drops the lock when the last descriptor of that
// description closes, including when its process dies. Waiting happens in the kernel.
//
// Where OFD locks are unavailable (or INTERLOCK_NO_OFD is set, for tests), whole-file locks
// fall back to flock(2), which has the same per-description ownership but no byte ranges;
// a byte-range request then fails with ENOTSUP.
//
// Timeouts: the kernel's blocking lock call has none, so a timed wait arms a per-thread
// CLOCK_MONOTONIC timer that delivers a no-op real-time signal to the waiting thread at the
// deadline; the interrupted call returns EINTR and the deadline decides between "timed out"
// and "interrupted by another signal". No polling.
#pragma once

#include <cstdint>
#include <string>

#include "core/deadline.hpp"
#include "core/futex.hpp"

namespace interlock::core::filelock {

enum class Mode { kShared, kExclusive, kUnlock };

struct Range {
  int64_t start = 0;
  int64_t length = 0;  // 0 = to the end of the file, including later growth
  int whence = 0;      // SEEK_SET, SEEK_CUR or SEEK_END
};

// True when OFD locks are used (probed once).
bool using_ofd_locks();

// Opens (creating if missing, never following a symlink) a lock file. Throws OsError whose
// message names the path.
int open_lock_file(const std::string& path, unsigned mode);

// Applies `mode` to `range` of `fd`. With `wait` false, one attempt: kTimedOut if another
// description holds a conflicting lock. With `wait` true, waits until `deadline`. Returns kOk,
// kTimedOut, or kInterrupted (a signal other than our timer arrived). Throws OsError for any
// other failure (EBADF, EINVAL, ENOLCK, ENOTSUP, ...).
Status apply(int fd, Mode mode, const Range& range, bool wait, const Deadline& deadline);

}  // namespace interlock::core::filelock
