// Arenas: allocation, reference counts, reuse, validation of foreign segments.
#include <sys/mman.h>
#include <unistd.h>

#include <set>
#include <thread>
#include <vector>

#include "check.hpp"
#include "core/arena.hpp"
#include "core/errors.hpp"

using namespace interlock::core;

TEST(allocate_release_reuse_with_new_generation) {
  auto arena = Arena::create();
  uint32_t a = arena->allocate(Kind::kLock);
  uint32_t b = arena->allocate(Kind::kEvent);
  CHECK(a != 0 && b != 0 && a != b);
  uint32_t gen = tag_generation(arena->slot(a)->header.tag.load());
  arena->check_slot(a, Kind::kLock, gen);
  bool threw = false;
  try {
    arena->check_slot(a, Kind::kEvent, gen);
  } catch (const SegmentError&) {
    threw = true;
  }
  CHECK(threw);
  arena->retain(a);
  arena->release(a);
  arena->check_slot(a, Kind::kLock, gen);  // one reference left: still live
  arena->release(a);
  uint32_t again = arena->allocate(Kind::kSemaphore);
  CHECK(again == a);  // the free list hands it out again...
  CHECK(tag_generation(arena->slot(again)->header.tag.load()) == gen + 1);  // ...renamed
  threw = false;
  try {
    arena->check_slot(a, Kind::kLock, gen);
  } catch (const SegmentError&) {
    threw = true;
  }
  CHECK(threw);
}

TEST(linked_slots_come_and_go_with_their_slot) {
  auto arena = Arena::create();
  uint32_t main = arena->allocate_linked(Kind::kRWLock, Kind::kRWLockRecords, 3);
  CHECK(main != 0);
  std::set<uint32_t> chain;
  for (const Slot* s = arena->linked(arena->slot(main)); s != nullptr; s = arena->linked(s)) {
    CHECK(tag_kind(s->header.tag.load()) == static_cast<uint32_t>(Kind::kRWLockRecords));
    chain.insert(arena->index_of(s));
  }
  CHECK(chain.size() == 3 && chain.count(main) == 0);
  arena->release(main);
  for (uint32_t index : chain)
    CHECK(tag_kind(arena->slot(index)->header.tag.load()) == static_cast<uint32_t>(Kind::kFree));
  CHECK(arena->slot(main)->header.linked.load() == 0);
  // Every freed slot is handed out again before any new one.
  std::set<uint32_t> again;
  for (int i = 0; i < 4; ++i) again.insert(arena->allocate(Kind::kLock));
  chain.insert(main);
  CHECK(again == chain);
}

TEST(threads_never_share_a_slot) {
  auto arena = Arena::create();
  std::vector<std::thread> threads;
  std::vector<std::vector<uint32_t>> held(4);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round) {
        for (int i = 0; i < 40; ++i) held[t].push_back(arena->allocate(Kind::kLock));
        for (uint32_t index : held[t]) arena->release(index);
        held[t].clear();
      }
      for (int i = 0; i < 40; ++i) held[t].push_back(arena->allocate(Kind::kLock));
    });
  for (auto& t : threads) t.join();
  std::set<uint32_t> all;
  for (auto& v : held) all.insert(v.begin(), v.end());
  CHECK(all.size() == 160);
  CHECK(all.count(0) == 0);
}

TEST(foreign_or_mismatched_segments_are_refused) {
  auto arena = Arena::create();
  int fd = dup(arena->fd());
  bool threw = false;
  try {
    Arena::attach(fd, arena->token() + 1);
  } catch (const SegmentError&) {
    threw = true;
  }
  CHECK(threw);
  int small = memfd_create("not-an-arena", MFD_CLOEXEC);
  CHECK(ftruncate(small, 4096) == 0);
  threw = false;
  try {
    Arena::attach(small, 1);
  } catch (const SegmentError&) {
    threw = true;
  }
  CHECK(threw);
}
