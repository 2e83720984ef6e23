// register_file_lock.cpp: the system-call half of interlock.FileLock and interlock.lockf.
// File locking costs a system call per operation anyway, so these use pybind11's normal
// dispatch; the GIL is released while the kernel waits.
#include <pybind11/pybind11.h>

#include "bindings/native.hpp"
#include "bindings/register.hpp"
#include "core/errors.hpp"
#include "core/file_lock.hpp"

namespace interlock::bindings {

namespace {

namespace filelock = core::filelock;
using core::Status;

// mode: 0 shared, 1 exclusive, 2 unlock. Returns True when applied, False when `wait` is
// false and another holder conflicts, or when the timeout passed.
bool apply(int fd, int mode, int64_t start, int64_t length, int whence, bool wait,
           py::object timeout) {
  if (mode < 0 || mode > 2) throw py::value_error("mode must be 0 (shared), 1 or 2");
  WaitArgs a;
  if (!parse_timeout(timeout.ptr(), &a)) throw py::error_already_set();
  const filelock::Mode m = static_cast<filelock::Mode>(mode);
  const filelock::Range range{start, length, whence};
  const core::Deadline deadline = a.deadline();
  if (!wait) {
    py::gil_scoped_release nogil;  // pybind11 re-takes the GIL before translating a throw
    return filelock::apply(fd, m, range, false, deadline) == Status::kOk;
  }
  bool raised;
  Status s = run_blocking(
      deadline,
      [&](const core::Deadline& slice, core::Spin) {
        return filelock::apply(fd, m, range, true, slice);
      },
      &raised);
  if (raised) throw py::error_already_set();
  return s == Status::kOk;
}

}  // namespace

void register_file_lock(py::module_& m) {
  m.def("file_lock_open", &filelock::open_lock_file, py::arg("path"), py::arg("mode"),
        "Open (creating, never following a symlink) a lock file; returns the descriptor.");
  m.def("file_lock_apply", &apply, py::arg("fd"), py::arg("mode"), py::arg("start"),
        py::arg("length"), py::arg("whence"), py::arg("wait"), py::arg("timeout"),
        "Lock (0 shared, 1 exclusive) or unlock (2) a byte range of fd; see core/file_lock.hpp.");
  m.def("file_lock_uses_ofd", &filelock::using_ofd_locks,
        "True when open-file-description locks are used (False: the flock fallback).");
}

}  // namespace interlock::bindings
