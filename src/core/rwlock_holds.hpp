// rwlock_holds.hpp: the calling thread's read holds on every RWLock (rwlock.hpp).
//
// Read holds are counted per thread so that a release the thread has no hold for is refused
// instead of corrupting the shared count. The holds live in this process's thread-local
// memory, keyed by slot address and tag (a slot reused for another lock has a new tag), and
// are dropped in a fork child, whose thread has a new tid: a child holds nothing.
//
// Nothing here is shared between threads, so there is no memory ordering to speak of.
#pragma once

#include <cstdint>
#include <vector>

#include "core/slot.hpp"
#include "core/thread_identity.hpp"

namespace interlock::core::rwlock::holds {

struct ReadHold {
  const Slot* slot;
  uint32_t tag;  // the slot's tag when the hold was taken
  uint32_t count;
};

// A plain struct in initial-exec TLS (as thread_identity.hpp's identity): looked up on every
// read acquire and release, so one %fs-relative access, no __tls_get_addr call or guard. A
// thread holding reads on more than kInline locks at once spills into `more`.
inline constexpr int kInline = 6;
struct ReadHolds {
  uint32_t tid;  // the thread these holds belong to: a fork child's thread has a new one
  uint32_t used;
  ReadHold inline_holds[kInline];
  std::vector<ReadHold>* more;  // allocated on first spill, kept for the thread's life
};
extern __thread ReadHolds t_reads __attribute__((tls_model("initial-exec")));

inline uint32_t slot_tag(const Slot& slot) {
  return slot.header.tag.load(std::memory_order_relaxed);  // set before the slot is shared
}

inline ReadHolds& mine() {
  const uint32_t tid = current_thread().tid;
  if (t_reads.tid != tid) {  // first use in this thread, or a fork child's copy: none are ours
    t_reads.tid = tid;
    t_reads.used = 0;
    if (t_reads.more != nullptr) t_reads.more->clear();
  }
  return t_reads;
}

// The calling thread's holds on `slot` in `holds` (mine()'s answer), or nullptr.
inline ReadHold* find(ReadHolds& holds, const Slot& slot) {
  const uint32_t tag = slot_tag(slot);
  for (uint32_t i = 0; i < holds.used; ++i) {
    ReadHold& h = holds.inline_holds[i];
    if (h.slot == &slot && h.tag == tag) return &h;
  }
  if (holds.more != nullptr)
    for (ReadHold& h : *holds.more)
      if (h.slot == &slot && h.tag == tag) return &h;
  return nullptr;
}
inline ReadHold* find(const Slot& slot) { return find(mine(), slot); }

// Counts one more hold; `h` is find()'s answer for this slot in `holds`, taken just before.
inline void count(ReadHolds& holds, const Slot& slot, ReadHold* h) {
  if (h != nullptr) {
    ++h->count;
    return;
  }
  const ReadHold fresh{&slot, slot_tag(slot), 1};
  if (holds.used < kInline) {
    holds.inline_holds[holds.used++] = fresh;
    return;
  }
  if (holds.more == nullptr) holds.more = new std::vector<ReadHold>();
  holds.more->push_back(fresh);
}
inline void count(const Slot& slot, ReadHold* h) { count(mine(), slot, h); }

// Counts one hold fewer; `h` (find()'s answer in `holds`) is invalid afterwards.
inline void uncount(ReadHolds& holds, ReadHold* h) {
  if (--h->count != 0) return;
  std::vector<ReadHold>* more = holds.more;
  if (more != nullptr && !more->empty() && h >= more->data() && h < more->data() + more->size()) {
    *h = more->back();
    more->pop_back();
    return;
  }
  // An inline hold: the last inline one takes its place, and a spilled one moves in.
  *h = holds.inline_holds[--holds.used];
  if (more != nullptr && !more->empty()) {
    holds.inline_holds[holds.used++] = more->back();
    more->pop_back();
  }
}
inline void uncount(ReadHold* h) { uncount(mine(), h); }

}  // namespace interlock::core::rwlock::holds
