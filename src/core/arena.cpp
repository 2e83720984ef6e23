#include "core/arena.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/errors.hpp"
#include "core/syscalls.hpp"

namespace interlock::core {

namespace {

[[noreturn]] void throw_os(const std::string& what) {
  int err = errno;
  throw OsError(err, what + ": " + std::strerror(err));
}

uint64_t random_u64() {
  uint64_t value = 0;
  if (!random_bytes(&value, sizeof(value))) throw_os("getrandom");
  return value;
}

// A nameless, size-sealed file of kArenaBytes. Falls back to an O_EXCL file in /dev/shm
// (mode 0600, random name) that is unlinked at once where memfd_create is unavailable, or when
// the environment variable INTERLOCK_NO_MEMFD is set (which is how the fallback is tested).
int make_arena_file() {
  static const bool use_memfd = std::getenv("INTERLOCK_NO_MEMFD") == nullptr;
  int fd = use_memfd ? memfd("interlock-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING) : -1;
  if (!use_memfd) errno = ENOSYS;
  if (fd >= 0) {
    if (ftruncate(fd, static_cast<off_t>(kArenaBytes)) != 0) {
      int err = errno;
      close(fd);
      errno = err;
      throw_os("ftruncate(arena)");
    }
    // Nobody may shrink the file under a mapping (that would turn accesses into SIGBUS).
    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    return fd;
  }
  if (errno != ENOSYS && errno != EINVAL) throw_os("memfd_create");
  for (int attempt = 0; attempt < 100; ++attempt) {
    char name[64];
    std::snprintf(name, sizeof(name), "/dev/shm/interlock-%016llx",
                  static_cast<unsigned long long>(random_u64()));
    fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      throw_os("open(/dev/shm arena)");
    }
    unlink(name);
    if (ftruncate(fd, static_cast<off_t>(kArenaBytes)) != 0) {
      int err = errno;
      close(fd);
      errno = err;
      throw_os("ftruncate(arena)");
    }
    return fd;
  }
  errno = EEXIST;
  throw_os("cannot find a free name for an arena in /dev/shm");
}

constexpr size_t kPage = 4096;
constexpr size_t kCompanionBytes = (sizeof(Companion) + kPage - 1) / kPage * kPage;

// Maps the arena file at a multiple of kArenaAlign, followed by its private Companion (see
// "Placement" in arena.hpp): reserve twice the alignment, place both inside it with
// MAP_FIXED (over our own reservation, so nothing else can be replaced), return the rest.
Slot* map_arena(int fd) {
  const size_t span = 2 * kArenaAlign;
  void* reserved = mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                        -1, 0);
  if (reserved == MAP_FAILED) throw_os("mmap(arena reservation)");
  const uintptr_t lo = reinterpret_cast<uintptr_t>(reserved);
  const uintptr_t start = (lo + kArenaAlign - 1) & ~(uintptr_t{kArenaAlign} - 1);
  const uintptr_t used_end = start + kArenaBytes + kCompanionBytes;
  void* shared = mmap(reinterpret_cast<void*>(start), kArenaBytes, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_FIXED, fd, 0);
  void* local = shared == MAP_FAILED
                    ? MAP_FAILED
                    : mmap(reinterpret_cast<void*>(start + kArenaBytes), kCompanionBytes,
                           PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (local == MAP_FAILED) {
    int err = errno;
    munmap(reserved, span);
    errno = err;
    throw_os("mmap(arena)");
  }
  if (start > lo) munmap(reserved, start - lo);
  munmap(reinterpret_cast<void*>(used_end), lo + span - used_end);
  return static_cast<Slot*>(shared);
}

void unmap_arena(Slot* base) { munmap(base, kArenaBytes + kCompanionBytes); }

}  // namespace

std::unique_ptr<Arena> Arena::create() {
  int fd = make_arena_file();
  Slot* base;
  try {
    base = map_arena(fd);
  } catch (...) {
    close(fd);
    throw;
  }
  auto* h = reinterpret_cast<ArenaHeader*>(base);
  h->magic = kArenaMagic;
  h->version = kLayoutVersion;
  h->slot_size = sizeof(Slot);
  h->slot_count = kArenaSlots;
  h->bump.store(1, std::memory_order_relaxed);  // not yet shared: no ordering needed
  h->free_head.store(0, std::memory_order_relaxed);
  h->token = random_u64();
  h->creator_pid = static_cast<uint32_t>(getpid());
  h->live.store(0, std::memory_order_relaxed);
  return std::unique_ptr<Arena>(new Arena(base, fd));
}

Arena::Arena(Slot* base, int fd) : base_(base), fd_(fd) { companion().owner = this; }

std::unique_ptr<Arena> Arena::attach(int fd, uint64_t token) {
  struct stat st;
  if (fstat(fd, &st) != 0) throw_os("fstat(shared segment)");
  if (!S_ISREG(st.st_mode)) throw SegmentError("shared segment is not a regular file");
  if (st.st_size != static_cast<off_t>(kArenaBytes))
    throw SegmentError("shared segment has size " + std::to_string(st.st_size) +
                       ", not the " + std::to_string(kArenaBytes) +
                       " bytes of an interlock arena (truncated, or not interlock's)");
  // Our memfds are sealed against shrinking. A file that could be sealed but is not (seals
  // settable, no F_SEAL_SHRINK) is refused: it could be truncated under the mapping. Files that
  // cannot be sealed at all (F_SEAL_SEAL preset, e.g. the /dev/shm fallback) are accepted.
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals >= 0 && !(seals & (F_SEAL_SHRINK | F_SEAL_SEAL)))
    throw SegmentError("shared segment is a memfd that is not sealed against shrinking");
  Slot* base = map_arena(fd);
  const auto* h = reinterpret_cast<const ArenaHeader*>(base);
  const char* problem = nullptr;
  if (h->magic != kArenaMagic)
    problem = "shared segment is not an interlock arena (bad magic number)";
  else if (h->version != kLayoutVersion)
    problem = "shared segment was made by an interlock with another layout version";
  else if (h->slot_size != sizeof(Slot) || h->slot_count != kArenaSlots)
    problem = "shared segment has an unexpected slot geometry (corrupted?)";
  else if (h->token != token)
    problem = "shared segment is not the arena this reference names (token mismatch)";
  if (problem != nullptr) {
    unmap_arena(base);
    throw SegmentError(problem);
  }
  return std::unique_ptr<Arena>(new Arena(base, fd));
}

Arena::~Arena() {
  unmap_arena(base_);
  close(fd_);
}

uint32_t Arena::pop_free() {
  auto& head = header()->free_head;
  uint64_t h = head.load(std::memory_order_acquire);  // pairs with push_free's release CAS
  while (true) {
    uint32_t top = static_cast<uint32_t>(h);
    if (top == 0) return 0;
    // Shared memory another process can scribble on: never follow a link out of the arena.
    if (top > kArenaSlots) throw SegmentError("shared segment's free list is corrupted");
    uint32_t next = slot(top - 1)->header.next_free.load(std::memory_order_relaxed);
    if (next > kArenaSlots) throw SegmentError("shared segment's free list is corrupted");
    uint64_t replacement = ((h >> 32) + 1) << 32 | next;
    // acquire: the popped slot's cleared state, published by push_free, must be visible.
    if (head.compare_exchange_weak(h, replacement, std::memory_order_acquire,
                                   std::memory_order_acquire))
      return top - 1;
  }
}

void Arena::push_free(uint32_t index) {
  auto& head = header()->free_head;
  uint64_t h = head.load(std::memory_order_relaxed);  // only a starting guess for the CAS
  while (true) {
    slot(index)->header.next_free.store(static_cast<uint32_t>(h), std::memory_order_relaxed);
    uint64_t replacement = ((h >> 32) + 1) << 32 | (index + 1);
    // release: publishes the slot's cleared body and link to the next popper.
    if (head.compare_exchange_weak(h, replacement, std::memory_order_release,
                                   std::memory_order_relaxed))
      return;
  }
}

uint32_t Arena::allocate(Kind kind) {
  auto& live = header()->live;
  // acquire: a retirement that ended before this sees its reset of `bump` and the free list.
  if (live.fetch_add(1, std::memory_order_acquire) & kRetiring) {
    live.fetch_sub(1, std::memory_order_relaxed);  // being reset: try another arena
    return 0;
  }
  uint32_t index = pop_free();
  if (index == 0) {
    auto& bump = header()->bump;
    uint32_t b = bump.load(std::memory_order_relaxed);  // uniqueness only
    do {
      if (b >= kArenaSlots) {
        live.fetch_sub(1, std::memory_order_relaxed);  // full: nothing was allocated
        return 0;
      }
    } while (!bump.compare_exchange_weak(b, b + 1, std::memory_order_relaxed));
    index = b;
  }
  Slot* s = slot(index);
  // The slot is exclusively ours now; its body is zero (fresh, or cleared by release()).
  uint32_t generation = tag_generation(s->header.tag.load(std::memory_order_relaxed)) + 1;
  s->header.refs.store(1, std::memory_order_relaxed);  // published with the tag below
  // release: a process that later checks the tag (check_slot) sees refs and a clean body.
  s->header.tag.store(make_tag(kind, generation & 0xffffffu), std::memory_order_release);
  return index;
}

uint32_t Arena::allocate_linked(Kind kind, Kind linked_kind, uint32_t links) {
  const uint32_t first = allocate(kind);
  if (first == 0) return 0;
  uint32_t last = first;
  for (uint32_t k = 0; k < links; ++k) {
    const uint32_t next = allocate(linked_kind);
    if (next == 0) {
      release(first);  // frees the chain built so far
      return 0;
    }
    // relaxed: the slot is not shared yet; handing it to others orders this store.
    slot(last)->header.linked.store(next + 1, std::memory_order_relaxed);
    last = next;
  }
  return first;
}

void Arena::retain(uint32_t index) {
  // relaxed: the caller holds a reference, so the count cannot concurrently reach zero.
  slot(index)->header.refs.fetch_add(1, std::memory_order_relaxed);
}

void Arena::release(uint32_t index, uint32_t n) {
  Slot* s = slot(index);
  // acq_rel: every other holder's use of the slot happens-before the free below.
  if (s->header.refs.fetch_sub(n, std::memory_order_acq_rel) != n) return;
  uint32_t tag = s->header.tag.load(std::memory_order_relaxed);
  // relaxed: only this thread touches a slot whose count reached zero.
  const uint32_t next = s->header.linked.exchange(0, std::memory_order_relaxed);
  std::memset(static_cast<void*>(&s->body), 0, sizeof(s->body));
  s->header.tag.store(make_tag(Kind::kFree, tag_generation(tag)), std::memory_order_relaxed);
  push_free(index);  // its release CAS publishes the cleared slot
  // acq_rel: see "Giving memory back" in arena.hpp. A slot with links still allocated is not
  // the last one: the arena retires, if at all, after its last link below.
  if (header()->live.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
      used_bound() > kRetireThreshold)
    try_retire();
  if (next != 0) release(next - 1);  // a linked slot's one reference is its owner's
}

void Arena::try_retire() {
  auto& live = header()->live;
  uint32_t expected = 0;
  // acquire: every slot's last use happens-before the reset below.
  if (!live.compare_exchange_strong(expected, kRetiring, std::memory_order_acquire,
                                    std::memory_order_relaxed))
    return;  // an allocation is under way: the arena stays as it is
  ArenaHeader* h = header();
  h->free_head.store(0, std::memory_order_relaxed);  // published by the release below
  h->bump.store(1, std::memory_order_relaxed);
  // Every page but the header's goes back to the kernel and reads as zeros from now on. (Slots
  // need no clearing: a freed slot's body is already zero, and a tag that survives keeps its
  // generation counting up. Where the file cannot punch holes, the memory simply stays.)
  constexpr size_t kFirstPage = 4096;
  fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, kFirstPage,
            static_cast<off_t>(kArenaBytes - kFirstPage));
  // This process's reference counts for the arena are all zero: give their pages back too.
  madvise(&companion().local_refs, sizeof(companion().local_refs), MADV_DONTNEED);
  live.fetch_sub(kRetiring, std::memory_order_release);  // open for allocation again
}

void Arena::check_slot(uint32_t index, Kind kind, uint32_t generation) const {
  if (index == 0 || index >= kArenaSlots)
    throw SegmentError("slot index " + std::to_string(index) + " is outside the arena");
  const Slot* s = slot(index);
  // acquire: pairs with allocate()'s release store of the tag.
  uint32_t tag = s->header.tag.load(std::memory_order_acquire);
  if (tag_kind(tag) != static_cast<uint32_t>(kind))
    throw SegmentError("slot " + std::to_string(index) + " holds another kind of primitive");
  if (tag_generation(tag) != generation)
    throw SegmentError("slot " + std::to_string(index) +
                       " was reused: the primitive it held no longer exists");
  if (s->header.refs.load(std::memory_order_relaxed) == 0)
    throw SegmentError("slot " + std::to_string(index) + " is not referenced by anyone");
}

ArenaSet& ArenaSet::instance() {
  static ArenaSet* set = new ArenaSet();  // never destroyed: mappings live until exit
  return *set;
}

Slot* ArenaSet::allocate(Kind kind) {
  return allocate_with([kind](Arena& arena) { return arena.allocate(kind); });
}

Slot* ArenaSet::allocate_linked(Kind kind, Kind linked_kind, uint32_t links) {
  return allocate_with([=](Arena& arena) { return arena.allocate_linked(kind, linked_kind, links); });
}

template <class Take>
Slot* ArenaSet::allocate_with(Take take) {
  std::lock_guard<std::mutex> guard(mu_);
  if (current_ != nullptr) {
    if (uint32_t index = take(*current_)) return current_->slot(index);
  }
  for (auto& arena : arenas_) {
    if (uint32_t index = take(*arena)) {
      current_ = arena.get();
      return current_->slot(index);
    }
  }
  auto fresh = Arena::create();
  Arena* arena = fresh.get();
  by_token_[arena->token()] = arena;
  arenas_.push_back(std::move(fresh));
  current_ = arena;
  return arena->slot(take(*arena));
}

Arena* ArenaSet::find(uint64_t token) {
  std::lock_guard<std::mutex> guard(mu_);
  auto it = by_token_.find(token);
  return it == by_token_.end() ? nullptr : it->second;
}

Arena* ArenaSet::attach(int fd, uint64_t token) {
  std::lock_guard<std::mutex> guard(mu_);
  auto it = by_token_.find(token);
  if (it != by_token_.end()) {
    Arena* known = it->second;
    struct stat mine, theirs;
    if (fd != known->fd() && fstat(fd, &theirs) == 0 && fstat(known->fd(), &mine) == 0 &&
        mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino)
      close(fd);  // a second descriptor of an arena we already map
    return known;
  }
  auto arena = Arena::attach(fd, token);
  Arena* raw = arena.get();
  by_token_[token] = raw;
  arenas_.push_back(std::move(arena));
  return raw;
}

size_t ArenaSet::arena_count() {
  std::lock_guard<std::mutex> guard(mu_);
  return arenas_.size();
}

}  // namespace interlock::core
