// lifecycle.hpp: the one owner of what fork() does to the core's process-wide state.
//
// Three parts of the core keep state that a fork must see whole: the death watch (its
// registry and watcher thread), the per-process references (references.hpp) and the set of
// mapped arenas (arena.hpp). Each exposes fork steps; this file registers the only
// pthread_atfork handler and runs those steps in one fixed order, so that no two handlers
// race and the lock order is the same as everywhere else (references before arenas):
//
//   prepare (in the forking thread, just before the process is duplicated):
//     1. the death watch's mutex is taken;
//     2. the references' mutex is taken and, for a fork that keeps running Python
//        (announced below), the child's references are counted in (references.hpp);
//     3. the arena set's mutex is taken, so no arena is half-mapped in the child.
//   parent: the three mutexes are released in the reverse order.
//   child:  the cached thread identity is forgotten (the child's one thread has new ids);
//           then the arena set, the references and the death watch are released, and the
//           death watch starts afresh (no watcher thread, no registrations).
//
// Holding the mutexes across fork() is what makes the child's copies consistent: whatever
// another thread was doing, the child sees either all of it or none of it.
//
// A fork "keeps running Python" when an os.register_at_fork "before" hook announced it in
// the forking thread (the bindings' _before_python_fork). subprocess's fork-then-exec runs
// no such hook, so its child takes no references it would never drop.
#pragma once

namespace interlock::core::lifecycle {

// Registers the fork handler (idempotent and thread-safe; every part calls it on first use).
void install();
// The calling thread's next fork() keeps running Python; withdraw_python_fork() undoes it.
// Both are per thread: only the thread that forks announces.
void announce_python_fork();
void withdraw_python_fork();

}  // namespace interlock::core::lifecycle
