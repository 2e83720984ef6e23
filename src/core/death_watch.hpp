// death_watch.hpp: wakes a robust lock's waiters the moment its holder's process ends.
//
// A waiter of a robust lock (mutex.hpp) must notice a holder that died, even by SIGKILL, yet
// an idle waiter should cost nothing while it sleeps. Before each sleep, a waiter whose
// holder lives in another process registers (lock word, holder's owner record) here. One
// watcher thread per process, started on first use, waits in epoll on a pidfd of every
// registered holder process; when one ends it wakes every waiter sleeping on the words
// registered for it (FUTEX_WAKE, all), and those waiters find the holder gone and take over.
// Nothing polls: an idle waiter and the watcher sleep until a release or a death. A death can
// come between a waiter's registration and its sleep, where a wake finds nobody asleep; so a
// dead holder's waiters are woken again, at growing intervals up to 64 ms, until each has
// unwatched, and watch() answers kGone for that holder meanwhile.
//
// Holders change while waiters sleep (a woken waiter or a newcomer takes the lock). So that
// every sleeper watches the current holder, a robust lock's unlock wakes all its sleepers,
// not one; each re-registers the new holder before it sleeps again.
//
// A pid may be reused: after opening the pidfd, the process's start stamp is compared with
// the record's (process_identity.hpp); a mismatch means the holder is already gone. A holder
// process is still watched after its last waiter leaves (up to 64 of them), so that waiting
// behind it again costs neither a system call nor a /proc read: a robust waiter's sleep costs
// what any other waiter's does.
//
// The watcher thread blocks every signal and never runs Python. It exists only while needed:
// quiesce() (called before each fork that keeps running Python) stops it when nothing is
// watched, so it never makes a forking process multi-threaded by itself; the next watch()
// starts it again. A fork child starts with no watcher and no registrations.
//
// Without pidfd_open (Linux < 5.3) or when the thread cannot be started, watch() answers
// kUnavailable and the waiter polls its holder instead (mutex.hpp). The environment variable
// INTERLOCK_NO_DEATH_WATCH forces that fallback (for its tests).
#pragma once

#include <atomic>
#include <cstdint>

namespace interlock::core::death_watch {

enum class Result {
  kWatching,     // registered: sleep; the word is woken when the holder's process ends
  kGone,         // the holder's process has ended already
  kUnavailable,  // no pidfds or no watcher thread here: poll instead
};

// Registers `word` (a robust lock's futex word) to be woken when the process named by the
// owner `record` ends. On kWatching, *ticket identifies the registration for unwatch().
Result watch(std::atomic<uint32_t>* word, uint64_t record, int* ticket);
void unwatch(int ticket);

// Stops the watcher thread if nothing is watched (before a fork); watch() restarts it.
void quiesce();

// The fork steps (lifecycle.cpp runs them): prepare takes the mutex, parent releases it, and
// child releases it after forgetting every registration and the parent's watcher thread.
void fork_prepare();
void fork_parent();
void fork_child();

// Registrations now (for tests).
int watched_count();

// How many times the watcher has woken waiters (a holder's death, or a wake again after it).
// A Waker without futex_waitv cannot see those wakes, which leave the word as it was, so it
// fires all its watches whenever this count moves (waker.hpp).
uint32_t wake_count();

}  // namespace interlock::core::death_watch
