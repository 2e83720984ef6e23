#include "core/death_watch.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/futex.hpp"
#include "core/lifecycle.hpp"
#include "core/process_identity.hpp"

namespace interlock::core::death_watch {

namespace {

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434  // the same number on every architecture that has it
#endif

constexpr uint64_t kStopTag = ~uint64_t{0};  // epoll data of the eventfd that stops the thread
// Holder processes nobody waits for are still watched, so that waiting behind them again
// costs no system call; at most this many (the oldest idle one goes first).
constexpr size_t kIdleHolders = 64;
// After a death, how long the watcher waits before it wakes the dead holder's remaining
// waiters again: the first delay, doubled each time up to the last.
constexpr int kRewakeFirstMs = 1;
constexpr int kRewakeLastMs = 64;

struct Holder {
  int pidfd;       // -1 once the process has ended
  uint32_t stamp;  // the process's start stamp, checked when the pidfd was opened
  uint64_t last_used;
  std::vector<std::pair<int, std::atomic<uint32_t>*>> waiters;  // (ticket, word)
  bool dead = false;  // the process has ended; kept until its last waiter unwatches
};

// Everything below is guarded by `mu`, which a fork also holds (see the fork handlers).
struct State {
  std::mutex mu;
  bool running = false;   // the watcher thread exists
  bool stopping = false;  // quiesce() is stopping it
  pthread_t thread{};
  int epfd = -1;
  int stopfd = -1;
  int next_ticket = 0;
  uint64_t uses = 0;
  size_t idle = 0;  // live holders with no waiter
  std::unordered_map<uint32_t, Holder> holders;  // by pid
  std::unordered_map<int, uint32_t> tickets;     // ticket -> pid
};

// relaxed everywhere: a hint to look again; whoever looks re-checks the holder itself.
std::atomic<uint32_t> g_wakes{0};

State& state() {
  static State* s = new State();  // never destroyed: the watcher may outlive statics
  return *s;
}

void drop_holder(State& st, uint32_t pid) {
  auto it = st.holders.find(pid);
  if (it == st.holders.end()) return;
  Holder& holder = it->second;
  if (!holder.dead && holder.waiters.empty()) --st.idle;
  for (auto& waiter : holder.waiters) st.tickets.erase(waiter.first);
  if (holder.pidfd >= 0) {
    epoll_ctl(st.epfd, EPOLL_CTL_DEL, holder.pidfd, nullptr);
    close(holder.pidfd);
  }
  st.holders.erase(it);
}

// The holder process `pid` has ended (mu held). Protocol: a waiter registers in watch(), then
// sleeps in FUTEX_WAIT on its word, then unwatches. The watcher's FUTEX_WAKE changes nothing
// in the word, so a wake that comes between the registration and the sleep is lost, and the
// waiter would sleep to its deadline. So a dead holder stays registered while it has waiters,
// and the watcher wakes them again, at growing intervals (rewake_dead), until every one has
// unwatched; watch() answers kGone for it meanwhile. A waiter is thus woken at most
// kRewakeLastMs after it falls asleep, and a sleeping one at once.
void mark_dead(State& st, uint32_t pid) {
  auto it = st.holders.find(pid);
  if (it == st.holders.end() || it->second.dead) return;
  Holder& holder = it->second;
  for (auto& waiter : holder.waiters) futex_wake(waiter.second, -1);  // all of them
  g_wakes.fetch_add(1, std::memory_order_relaxed);
  if (holder.waiters.empty()) {
    drop_holder(st, pid);
    return;
  }
  epoll_ctl(st.epfd, EPOLL_CTL_DEL, holder.pidfd, nullptr);
  close(holder.pidfd);
  holder.pidfd = -1;
  holder.dead = true;
}

// Wakes the waiters of every dead holder again (mu held). True if any are left.
bool rewake_dead(State& st) {
  bool any = false;
  for (auto& entry : st.holders) {
    if (!entry.second.dead) continue;
    for (auto& waiter : entry.second.waiters) futex_wake(waiter.second, -1);
    g_wakes.fetch_add(1, std::memory_order_relaxed);
    any = true;
  }
  return any;
}

void* watcher_main(void*) {
  State& st = state();
  int epfd;
  {
    std::lock_guard<std::mutex> guard(st.mu);
    epfd = st.epfd;
  }
  epoll_event events[16];
  int rewake_ms = -1;  // -1: no dead holder has waiters, so nothing to wake again
  while (true) {
    int n = epoll_wait(epfd, events, 16, rewake_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return nullptr;
    }
    std::lock_guard<std::mutex> guard(st.mu);
    bool died = false;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kStopTag) {
        if (st.stopping) return nullptr;
        continue;
      }
      mark_dead(st, static_cast<uint32_t>(events[i].data.u64));
      died = true;
    }
    if (died) rewake_ms = kRewakeFirstMs;
    else if (n == 0 && rewake_ms > 0) rewake_ms = std::min(rewake_ms * 2, kRewakeLastMs);
    if (n == 0 && !rewake_dead(st)) rewake_ms = -1;
  }
}

// Starts the watcher thread (mu held). False when it cannot run here.
bool start(State& st) {
  if (st.running) return true;
  st.epfd = epoll_create1(EPOLL_CLOEXEC);
  st.stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  bool ok = st.epfd >= 0 && st.stopfd >= 0;
  if (ok) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kStopTag;
    ok = epoll_ctl(st.epfd, EPOLL_CTL_ADD, st.stopfd, &ev) == 0;
  }
  if (ok) {
    // The thread blocks every signal, so that none is delivered to it instead of the threads
    // that run Python.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    ok = pthread_create(&st.thread, nullptr, &watcher_main, nullptr) == 0;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  if (!ok) {
    if (st.epfd >= 0) close(st.epfd);
    if (st.stopfd >= 0) close(st.stopfd);
    st.epfd = st.stopfd = -1;
    return false;
  }
  st.running = true;
  return true;
}

int pidfd_open(uint32_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace

Result watch(std::atomic<uint32_t>* word, uint64_t record, int* ticket) {
  // INTERLOCK_NO_DEATH_WATCH set: behave as on a kernel without pidfds (tests the fallback).
  static const bool disabled = std::getenv("INTERLOCK_NO_DEATH_WATCH") != nullptr;
  if (disabled) return Result::kUnavailable;
  lifecycle::install();  // a fork child must start without this process's watcher
  State& st = state();
  const uint32_t pid = record_pid(record);
  std::lock_guard<std::mutex> guard(st.mu);
  if (st.stopping || !start(st)) return Result::kUnavailable;
  auto it = st.holders.find(pid);
  if (it != st.holders.end() && it->second.stamp != record_stamp(record)) {
    // An earlier process with the same pid. While a dead one still has waiters to wake, it
    // keeps its entry and this waiter polls instead (the pid came back within milliseconds).
    if (it->second.dead) return Result::kUnavailable;
    drop_holder(st, pid);
    it = st.holders.end();
  }
  if (it != st.holders.end() && it->second.dead) return Result::kGone;
  if (it == st.holders.end()) {
    int fd = pidfd_open(pid);
    if (fd < 0) return errno == ESRCH ? Result::kGone : Result::kUnavailable;
    // The pidfd names whatever process has this pid now: make sure it is the holder's.
    int64_t stamp = process_stamp(pid);
    if (stamp < 0 || static_cast<uint32_t>(stamp) != record_stamp(record)) {
      close(fd);
      return Result::kGone;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;  // a pidfd becomes readable when its process exits
    ev.data.u64 = pid;
    if (epoll_ctl(st.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      return Result::kUnavailable;
    }
    it = st.holders.emplace(pid, Holder{fd, record_stamp(record), 0, {}}).first;
    ++st.idle;
  }
  if (it->second.waiters.empty()) --st.idle;
  it->second.last_used = ++st.uses;
  *ticket = st.next_ticket++;
  if (st.next_ticket < 0) st.next_ticket = 0;
  it->second.waiters.emplace_back(*ticket, word);
  st.tickets[*ticket] = pid;
  return Result::kWatching;
}

void unwatch(int ticket) {
  State& st = state();
  std::lock_guard<std::mutex> guard(st.mu);
  auto t = st.tickets.find(ticket);
  if (t == st.tickets.end()) return;  // its holder died: already dropped
  const uint32_t pid = t->second;
  st.tickets.erase(t);
  auto it = st.holders.find(pid);
  if (it == st.holders.end()) return;
  auto& waiters = it->second.waiters;
  for (size_t i = 0; i < waiters.size(); ++i) {
    if (waiters[i].first == ticket) {
      waiters[i] = waiters.back();
      waiters.pop_back();
      break;
    }
  }
  if (!waiters.empty()) return;
  if (it->second.dead) {  // its last waiter has seen the death
    st.holders.erase(it);
    return;
  }
  ++st.idle;  // still watched, for the next wait behind this process
  while (st.idle > kIdleHolders) {
    uint32_t oldest = 0;
    uint64_t best = UINT64_MAX;
    for (auto& entry : st.holders)
      if (entry.second.waiters.empty() && entry.second.last_used < best) {
        best = entry.second.last_used;
        oldest = entry.first;
      }
    drop_holder(st, oldest);
  }
}

void quiesce() {
  State& st = state();
  pthread_t thread;
  {
    std::lock_guard<std::mutex> guard(st.mu);
    if (!st.running || st.stopping || !st.tickets.empty()) return;
    while (!st.holders.empty()) drop_holder(st, st.holders.begin()->first);  // all idle
    st.stopping = true;
    uint64_t one = 1;
    ssize_t written = write(st.stopfd, &one, sizeof one);
    (void)written;  // an eventfd write of 1 cannot fail short of overflow
    thread = st.thread;
  }
  pthread_join(thread, nullptr);
  std::lock_guard<std::mutex> guard(st.mu);
  close(st.epfd);
  close(st.stopfd);
  st.epfd = st.stopfd = -1;
  st.running = st.stopping = false;
}

// Fork: hold the mutex across fork() so that the child's copy of the state is consistent;
// the child has no watcher thread, and no waiter, so it starts afresh.
void fork_prepare() { state().mu.lock(); }
void fork_parent() { state().mu.unlock(); }
void fork_child() {
  State& st = state();
  for (auto& entry : st.holders)
    if (entry.second.pidfd >= 0) close(entry.second.pidfd);
  st.holders.clear();
  st.tickets.clear();
  st.idle = 0;
  if (st.epfd >= 0) close(st.epfd);
  if (st.stopfd >= 0) close(st.stopfd);
  st.epfd = st.stopfd = -1;
  st.running = st.stopping = false;
  st.mu.unlock();
}

int watched_count() {
  State& st = state();
  std::lock_guard<std::mutex> guard(st.mu);
  return static_cast<int>(st.tickets.size());
}

uint32_t wake_count() { return g_wakes.load(std::memory_order_relaxed); }

}  // namespace interlock::core::death_watch
