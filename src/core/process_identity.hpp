// process_identity.hpp: who holds a lock, in a form that outlives pid reuse.
//
// A lock's owner record packs, in one 64-bit word, the holder's kernel thread id, its process
// id and a "stamp": the low bits of the process's start time (field 22 of /proc/<pid>/stat, in
// clock ticks since boot). A recycled pid comes with a different start time, so a record whose
// pid is alive but whose stamp differs names a process that is gone.
//
// Linux caps pids and tids at 2^22 (PID_MAX_LIMIT on 64-bit), so the record is
//   bits  0..21  tid
//   bits 22..43  pid
//   bits 44..63  stamp (start time modulo 2^20 ticks)
#pragma once

#include <cstdint>

namespace interlock::core {

inline constexpr int kIdBits = 22;
inline constexpr uint64_t kIdMask = (uint64_t{1} << kIdBits) - 1;
inline constexpr uint64_t kStampMask = (uint64_t{1} << 20) - 1;

inline uint64_t make_owner_record(uint32_t tid, uint32_t pid, uint32_t stamp) {
  return (tid & kIdMask) | (uint64_t{pid} & kIdMask) << kIdBits |
         (uint64_t{stamp} & kStampMask) << (2 * kIdBits);
}
inline uint32_t record_tid(uint64_t r) { return static_cast<uint32_t>(r & kIdMask); }
inline uint32_t record_pid(uint64_t r) { return static_cast<uint32_t>(r >> kIdBits & kIdMask); }
inline uint32_t record_stamp(uint64_t r) { return static_cast<uint32_t>(r >> (2 * kIdBits)); }

// The stamp of process `pid` (kStampMask-wide), or -1 when it does not exist or has exited
// (a zombie counts as exited). Reads /proc; never throws.
int64_t process_stamp(uint32_t pid);

// True when the process a record names is certainly gone: no such pid, a zombie, or a pid
// that now belongs to a process started at another time.
bool record_process_gone(uint64_t record);

}  // namespace interlock::core
