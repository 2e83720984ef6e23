#include "core/death_watch.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

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

struct Holder {
  int pidfd;
  uint32_t stamp;  // the process's start stamp, checked when the pidfd was opened
  uint64_t last_used;
  std::vector<std::pair<int, std::atomic<uint32_t>*>> waiters;  // (ticket, word)
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
  size_t idle = 0;  // holders with no waiter
  std::unordered_map<uint32_t, Holder> holders;  // by pid
  std::unordered_map<int, uint32_t> tickets;     // ticket -> pid
};

State& state() {
  static State* s = new State();  // never destroyed: the watcher may outlive statics
  return *s;
}

void drop_holder(State& st, uint32_t pid) {
  auto it = st.holders.find(pid);
  if (it == st.holders.end()) return;
  if (it->second.waiters.empty()) --st.idle;
  for (auto& waiter : it->second.waiters) st.tickets.erase(waiter.first);
  epoll_ctl(st.epfd, EPOLL_CTL_DEL, it->second.pidfd, nullptr);
  close(it->second.pidfd);
  st.holders.erase(it);
}

void* watcher_main(void*) {
  State& st = state();
  int epfd;
  {
    std::lock_guard<std::mutex> guard(st.mu);
    epfd = st.epfd;
  }
  epoll_event events[16];
  while (true) {
    int n = epoll_wait(epfd, events, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return nullptr;
    }
    std::lock_guard<std::mutex> guard(st.mu);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kStopTag) {
        if (st.stopping) return nullptr;
        continue;
      }
      auto pid = static_cast<uint32_t>(events[i].data.u64);
      auto it = st.holders.find(pid);
      if (it == st.holders.end()) continue;
      for (auto& waiter : it->second.waiters) futex_wake(waiter.second, -1);  // all of them
      drop_holder(st, pid);
    }
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
    drop_holder(st, pid);  // an earlier process with the same pid
    it = st.holders.end();
  }
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
  for (auto& entry : st.holders) close(entry.second.pidfd);
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

}  // namespace interlock::core::death_watch
