#include "core/lifecycle.hpp"

#include <pthread.h>

#include "core/arena.hpp"
#include "core/death_watch.hpp"
#include "core/errors.hpp"
#include "core/references.hpp"
#include "core/rwlock_robust.hpp"
#include "core/thread_identity.hpp"

namespace interlock::core::lifecycle {

namespace {

// Per thread: only the forking thread's announcement counts, and a fork child's one thread
// is the one that forked, so its copy is cleared in fork_child.
thread_local bool t_python_fork = false;

void fork_prepare() {
  death_watch::fork_prepare();
  rwlock::robust::fork_prepare();
  references::fork_prepare(t_python_fork);
  ArenaSet::instance().lock_for_fork();
}

void fork_parent() {
  ArenaSet::instance().unlock_after_fork();
  references::fork_parent();
  rwlock::robust::fork_parent();
  death_watch::fork_parent();
  t_python_fork = false;
}

void fork_child() {
  detail::forget_identity();
  ArenaSet::instance().unlock_after_fork();
  references::fork_child();
  rwlock::robust::fork_child();
  death_watch::fork_child();
  t_python_fork = false;
}

}  // namespace

void install() {
  // A magic static: registered exactly once, even when threads race here.
  static const int error = pthread_atfork(&fork_prepare, &fork_parent, &fork_child);
  if (error != 0) throw OsError(error, "pthread_atfork");
}

void announce_python_fork() { t_python_fork = true; }

void withdraw_python_fork() { t_python_fork = false; }

}  // namespace interlock::core::lifecycle
