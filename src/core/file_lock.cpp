#include "core/file_lock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/errors.hpp"
#include "core/syscalls.hpp"

namespace interlock::core::filelock {

namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw OsError(err, what + ": " + std::strerror(err));
}

// --- the deadline timer ---------------------------------------------------------------

void ignore_signal(int) {}

// Whether a timer can signal the calling thread with `sig`. Not every real-time signal can:
// qemu-user (foreign-architecture containers, CI's aarch64 lane) keeps the highest two for
// itself and refuses timers that would send them.
bool timer_can_send(int sig) {
  struct sigevent sev;
  std::memset(&sev, 0, sizeof(sev));
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = sig;
  sev._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
  timer_t probe;
  if (timer_create(CLOCK_MONOTONIC, &sev, &probe) != 0) return false;
  timer_delete(probe);  // never armed: nothing was sent
  return true;
}

// The real-time signal our timers send: the highest one nobody else has a handler for and a
// timer can send. Installed once, without SA_RESTART, so that it interrupts the blocking lock
// call.
int timer_signal() {
  static int signo = [] {
    for (int sig = SIGRTMAX; sig >= SIGRTMIN; --sig) {
      struct sigaction old;
      if (sigaction(sig, nullptr, &old) != 0) continue;
      if (old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO)) continue;
      if (!timer_can_send(sig)) continue;
      struct sigaction sa;
      std::memset(&sa, 0, sizeof(sa));
      sa.sa_handler = ignore_signal;
      sigemptyset(&sa.sa_mask);
      if (sigaction(sig, &sa, nullptr) == 0) return sig;
    }
    return 0;
  }();
  return signo;
}

// Arms a one-shot CLOCK_MONOTONIC timer that signals the calling thread at `deadline`.
class DeadlineTimer {
 public:
  explicit DeadlineTimer(const Deadline& deadline) {
    if (deadline.is_infinite()) return;
    int signo = timer_signal();
    if (signo == 0) throw_errno(EAGAIN, "no free real-time signal for lock timeouts");
    struct sigevent sev;
    std::memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = signo;
    sev._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
    if (timer_create(CLOCK_MONOTONIC, &sev, &timer_) != 0) throw_errno(errno, "timer_create");
    armed_ = true;
    struct itimerspec spec;
    std::memset(&spec, 0, sizeof(spec));
    spec.it_value = deadline.when();
    if (timer_settime(timer_, TIMER_ABSTIME, &spec, nullptr) != 0) {
      int err = errno;
      timer_delete(timer_);
      armed_ = false;
      throw_errno(err, "timer_settime");
    }
  }
  ~DeadlineTimer() {
    if (armed_) timer_delete(timer_);  // also disarms it
  }
  DeadlineTimer(const DeadlineTimer&) = delete;
  DeadlineTimer& operator=(const DeadlineTimer&) = delete;

 private:
  timer_t timer_{};
  bool armed_ = false;
};

// --- the lock calls -------------------------------------------------------------------

bool probe_ofd() {
  if (std::getenv("INTERLOCK_NO_OFD") != nullptr) return false;
  int fd = memfd("interlock-ofd-probe", MFD_CLOEXEC);
  if (fd < 0) return false;
  struct flock fl;
  std::memset(&fl, 0, sizeof(fl));
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  bool ok = fcntl(fd, F_OFD_GETLK, &fl) == 0;
  close(fd);
  return ok;
}

bool is_conflict(int err) { return err == EAGAIN || err == EACCES || err == EWOULDBLOCK; }

// One lock call; returns 0 or an errno value.
int lock_call(int fd, Mode mode, const Range& range, bool wait) {
  if (using_ofd_locks()) {
    struct flock fl;
    std::memset(&fl, 0, sizeof(fl));
    fl.l_type = mode == Mode::kShared ? F_RDLCK : mode == Mode::kExclusive ? F_WRLCK : F_UNLCK;
    fl.l_whence = static_cast<short>(range.whence);
    fl.l_start = static_cast<off_t>(range.start);
    fl.l_len = static_cast<off_t>(range.length);
    fl.l_pid = 0;  // required by F_OFD_*
    return fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0 ? 0 : errno;
  }
  if (range.start != 0 || range.length != 0) return ENOTSUP;
  int op = mode == Mode::kShared ? LOCK_SH : mode == Mode::kExclusive ? LOCK_EX : LOCK_UN;
  return flock(fd, wait ? op : op | LOCK_NB) == 0 ? 0 : errno;
}

}  // namespace

bool using_ofd_locks() {
  static const bool ofd = probe_ofd();
  return ofd;
}

int open_lock_file(const std::string& path, unsigned mode) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) {
    int err = errno;
    if (err == ELOOP) throw OsError(err, "refusing to open lock file '" + path +
                                             "': it is a symbolic link");
    throw OsError(err, "cannot open lock file '" + path + "': " + std::strerror(err));
  }
  return fd;
}

Status apply(int fd, Mode mode, const Range& range, bool wait, const Deadline& deadline) {
  if (range.whence < 0 || range.whence > 2) throw_errno(EINVAL, "whence must be 0, 1 or 2");
  if (!wait || mode == Mode::kUnlock) {
    int err = lock_call(fd, mode, range, false);
    if (err == 0) return Status::kOk;
    if (is_conflict(err) && mode != Mode::kUnlock) return Status::kTimedOut;
    throw_errno(err, "lock");
  }
  if (deadline.passed()) {
    int err = lock_call(fd, mode, range, false);
    if (err == 0) return Status::kOk;
    if (is_conflict(err)) return Status::kTimedOut;
    throw_errno(err, "lock");
  }
  DeadlineTimer timer(deadline);
  int err = lock_call(fd, mode, range, true);
  if (err == 0) return Status::kOk;
  if (err == EINTR) return deadline.passed() ? Status::kTimedOut : Status::kInterrupted;
  throw_errno(err, "lock");
}

}  // namespace interlock::core::filelock
