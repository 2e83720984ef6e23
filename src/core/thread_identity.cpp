#include "core/thread_identity.hpp"

#include "core/lifecycle.hpp"
#include "core/process_identity.hpp"

#include <sys/syscall.h>
#include <unistd.h>

namespace interlock::core {

namespace detail {
__thread ThreadIdentity tls_identity __attribute__((tls_model("initial-exec"))) = {0, 0, 0};
}  // namespace detail

void detail::forget_identity() { tls_identity = ThreadIdentity{0, 0, 0}; }

const ThreadIdentity& detail::load_identity() {
  lifecycle::install();  // a fork child must forget what is cached here
  uint32_t tid = static_cast<uint32_t>(syscall(SYS_gettid));
  uint32_t pid = static_cast<uint32_t>(getpid());
  int64_t stamp = process_stamp(pid);  // once per thread; cheap enough (a /proc read)
  tls_identity.owner = make_owner_record(tid, pid, stamp < 0 ? 0 : static_cast<uint32_t>(stamp));
  tls_identity.pid = pid;
  tls_identity.tid = tid;  // last: a nonzero tid marks the identity as loaded
  return tls_identity;
}

}  // namespace interlock::core
