#include "core/process_identity.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace interlock::core {

int64_t process_stamp(uint32_t pid) {
  // The path is opened relative to a descriptor of /proc, not as "/proc/<pid>/stat": qemu-user
  // (which runs foreign-architecture containers, and CI's aarch64 lane) answers that absolute
  // path for its own pid with a start time that a fork child inherits from its parent, so a
  // child's stamp of itself would not match what every other process reads. A relative path
  // reaches the kernel's file on every system.
  int proc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (proc < 0) return -1;
  char path[24];
  std::snprintf(path, sizeof path, "%u/stat", pid);
  int fd = openat(proc, path, O_RDONLY | O_CLOEXEC);
  close(proc);
  if (fd < 0) return -1;
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  // "pid (comm) state ppid ...": comm may hold spaces and ')', so parse after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ') return -1;
  p += 2;
  if (*p == 'Z' || *p == 'X') return -1;  // exited, not yet (or just) reaped
  // Fields after the state: ppid is field 4; starttime is field 22.
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr) return -1;
    ++p;
  }
  unsigned long long start = std::strtoull(p, nullptr, 10);
  return static_cast<int64_t>(start & kStampMask);
}

bool record_process_gone(uint64_t record) {
  uint32_t pid = record_pid(record);
  if (pid == 0) return false;  // no record: nothing is known, so nothing is presumed dead
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return true;
  int64_t stamp = process_stamp(pid);
  return stamp < 0 || static_cast<uint32_t>(stamp) != record_stamp(record);
}

}  // namespace interlock::core
