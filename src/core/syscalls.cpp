#include "core/syscalls.hpp"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace interlock::core {

int memfd(const char* name, unsigned int flags) {
#ifdef SYS_memfd_create
  return static_cast<int>(syscall(SYS_memfd_create, name, flags));
#else
  (void)name;
  (void)flags;
  errno = ENOSYS;
  return -1;
#endif
}

namespace {

bool read_urandom(unsigned char* out, size_t size) {
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, out + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      close(fd);
      errno = err;
      return false;
    }
    got += static_cast<size_t>(n);
  }
  close(fd);
  return true;
}

}  // namespace

bool random_bytes(void* out, size_t size) {
  auto* bytes = static_cast<unsigned char*>(out);
  size_t got = 0;
  while (got < size) {
#ifdef SYS_getrandom
    long n = syscall(SYS_getrandom, bytes + got, size - got, 0);
#else
    long n = -1;
    errno = ENOSYS;
#endif
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOSYS) return read_urandom(bytes + got, size - got);
      return false;
    }
    got += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace interlock::core
