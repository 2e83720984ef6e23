#include "core/waker.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "core/death_watch.hpp"
#include "core/futex.hpp"

namespace interlock::core {


Waker::Waker(int notify_fd) : notify_fd_(notify_fd) {}

Waker::~Waker() {
  if (abandoned_) return;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    stopping_ = true;
    changed();
  }
  if (thread_) thread_->join();
}

bool Waker::supported() { return interrupt_word_supported(); }

void Waker::changed() {
  // relaxed: mutex_ orders the table; the kernel compares the word itself (see the header).
  control_.fetch_add(1, std::memory_order_relaxed);
  futex_wake_private(&control_, 1);
}

bool Waker::start() {
  try {
    // The thread must not take signals meant for Python's main thread.
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    thread_ = std::make_unique<std::thread>([this] { run(); });
    pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    return true;
  } catch (...) {
    return false;
  }
}

bool Waker::watch(std::atomic<uint32_t>* word, uint32_t expected, uint64_t token) {
  std::lock_guard<std::mutex> guard(mutex_);
  // (While pause() joins the thread, stopping_ is set too: the watch waits in the table.)
  if (abandoned_ || (stopping_ && !paused_) || watches_.size() >= kCapacity) return false;
  if (!thread_ && !paused_ && !start()) return false;
  watches_.push_back({word, expected, token});
  changed();
  return true;
}

void Waker::pause() {
  std::unique_ptr<std::thread> thread;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    if (abandoned_) return;
    paused_ = true;
    if (!thread_) return;
    stopping_ = true;
    changed();
    thread = std::move(thread_);
  }
  thread->join();
  std::lock_guard<std::mutex> guard(mutex_);
  stopping_ = false;
}

void Waker::resume() {
  std::lock_guard<std::mutex> guard(mutex_);
  if (abandoned_) return;
  paused_ = false;
  // A watch that cannot get its thread back stays in the table; the next watch() retries.
  if (!thread_ && !watches_.empty()) start();
}

bool Waker::unwatch(uint64_t token) {
  std::lock_guard<std::mutex> guard(mutex_);
  auto it = std::find_if(watches_.begin(), watches_.end(),
                         [token](const Watch& w) { return w.token == token; });
  if (it == watches_.end()) return false;
  watches_.erase(it);
  changed();
  return true;
}

void Waker::take_fired(std::vector<uint64_t>& out) {
  std::lock_guard<std::mutex> guard(mutex_);
  out.insert(out.end(), fired_.begin(), fired_.end());
  fired_.clear();
}

size_t Waker::watching() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return watches_.size();
}

void Waker::abandon() {
  // The thread is the parent's: it does not exist here, and its mutex may have been held.
  abandoned_ = true;
  (void)thread_.release();
}

void Waker::run() {
  // Without futex_waitv (Linux < 5.16, or INTERLOCK_NO_FUTEX_WAITV) the thread polls: it
  // sleeps on the control word alone, for 1 ms doubling up to 16 ms while nothing fires, and
  // then looks at every word. A death-watch wake leaves a word as it was, so then every watch
  // fires when the death watch's wake count moves (each waiter re-checks for itself).
  const bool polling = !supported();
  long poll_ns = kFirstPollNs;
  uint32_t deaths_seen = death_watch::wake_count();
  std::vector<WaitEntry> entries;
  entries.reserve(kCapacity + 1);
  std::atomic<uint32_t>* woken = nullptr;  // the word the last sleep was woken on
  bool fire_all = false;
  while (true) {
    bool fired = false;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      if (stopping_) return;
      // Fire every watch whose word has moved. acquire: pairs with the release of whoever
      // changed the word, though the waiter's own retry is what decides.
      // A woken word fires too, moved or not: a wake is a reason to look (the death watch
      // wakes a robust lock's word when its holder dies, without changing it).
      auto moved = [&](const Watch& w) {
        if (!fire_all && w.word != woken &&
            w.word->load(std::memory_order_acquire) == w.expected)
          return false;
        fired_.push_back(w.token);
        fired = true;
        return true;
      };
      watches_.erase(std::remove_if(watches_.begin(), watches_.end(), moved), watches_.end());
      if (fired && notify_fd_ >= 0) {
        const uint64_t one = 1;
        ssize_t written = write(notify_fd_, &one, sizeof one);
        (void)written;  // an eventfd at its maximum is still readable: nothing is lost
      }
      entries.clear();
      if (!polling) {
        for (const Watch& w : watches_)
          entries.push_back({w.word, w.expected, false});
      }
      // relaxed: read under mutex_, and compared again by the kernel (see the header).
      entries.push_back({&control_, control_.load(std::memory_order_relaxed), true});
    }
    fire_all = false;
    if (polling) {
      // The control word ends the sleep at once when the table changes (the kernel compares
      // it with the value read under the mutex, as futex_waitv would).
      poll_ns = fired ? kFirstPollNs : std::min(poll_ns * 2, kLastPollNs);
      futex_wait_private(&control_, entries.back().expected,
                 Deadline::after(static_cast<double>(poll_ns) * 1e-9));
      const uint32_t deaths = death_watch::wake_count();
      fire_all = deaths != deaths_seen;
      deaths_seen = deaths;
      continue;
    }
    // Returns the index of the woken word, or -1 when a word already differed (EAGAIN) or
    // a signal came; either way, look again.
    long rc = futex_wait_many(entries.data(), entries.size());
    const size_t last = entries.size() - 1;  // the control word
    woken = rc >= 0 && static_cast<size_t>(rc) < last
                ? const_cast<std::atomic<uint32_t>*>(entries[rc].word)
                : nullptr;
  }
}

}  // namespace interlock::core
