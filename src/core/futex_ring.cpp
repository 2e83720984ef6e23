#include "core/futex_ring.hpp"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/futex.hpp"

namespace interlock::core {

namespace {

// The io_uring ABI, restated here so that the build does not depend on the age of the
// system's kernel headers (the manylinux builders' predate futex waits). Layouts are fixed.
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425  // the same number on every architecture
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

struct SqOffsets {
  uint32_t head, tail, ring_mask, ring_entries, flags, dropped, array, resv1;
  uint64_t user_addr;
};
struct CqOffsets {
  uint32_t head, tail, ring_mask, ring_entries, overflow, cqes, flags, resv1;
  uint64_t user_addr;
};
struct Params {
  uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd;
  uint32_t resv[3];
  SqOffsets sq_off;
  CqOffsets cq_off;
};
struct Sqe {
  uint8_t opcode, flags;
  uint16_t ioprio;
  int32_t fd;       // futex waits: the futex2 flags
  uint64_t off;     // futex waits: the expected value
  uint64_t addr;    // futex waits: the word
  uint32_t len;
  uint32_t op_flags;
  uint64_t user_data;
  uint16_t buf_index, personality;
  int32_t file_index;
  uint64_t addr3;   // futex waits: the bitset mask
  uint64_t pad;
};
struct Cqe {
  uint64_t user_data;
  int32_t res;
  uint32_t flags;
};
struct SyncCancel {
  uint64_t addr;  // the user_data of the request to cancel
  int32_t fd;
  uint32_t flags;
  int64_t timeout_sec, timeout_nsec;  // -1, -1: no timeout
  uint64_t pad[4];
};
static_assert(sizeof(Params) == 120 && sizeof(Sqe) == 64 && sizeof(Cqe) == 16 &&
              sizeof(SyncCancel) == 64, "io_uring ABI layouts");

constexpr uint32_t kSetupCqSize = 1u << 3, kSetupClamp = 1u << 4;
constexpr uint32_t kFeatSingleMmap = 1u << 0, kFeatNoDrop = 1u << 1;
constexpr uint32_t kSqCqOverflow = 1u << 1;
constexpr uint32_t kEnterGetEvents = 1u << 0;
constexpr unsigned kRegisterSyncCancel = 24;
constexpr uint8_t kOpFutexWait = 51;  // Linux 6.7
constexpr uint32_t kFutex2SizeU32 = 0x02;  // process-shared: no FUTEX2_PRIVATE
constexpr uint64_t kMatchAnyBit = 0xffffffffu;
constexpr uint64_t kOffSqes = 0x10000000ull;
constexpr uint32_t kSqEntries = 8;     // one submission at a time
constexpr uint32_t kCqEntries = 4096;  // more wait in the kernel (NODROP) until taken
constexpr uint64_t kProbe = 0;         // the probe's user_data (tokens start at 1)

long sys(long rc) { return rc < 0 ? -errno : rc; }

}  // namespace

std::unique_ptr<FutexRing> FutexRing::open() {
  if (std::getenv("INTERLOCK_NO_IO_URING") != nullptr) return nullptr;
  std::unique_ptr<FutexRing> ring(new FutexRing());
  if (!ring->setup() || !ring->probe()) return nullptr;
  return ring;
}

bool FutexRing::setup() {
  Params p;
  std::memset(&p, 0, sizeof p);
  // No IORING_SETUP_COOP_TASKRUN or DEFER_TASKRUN: a completion must interrupt the loop's
  // poll (the kernel signals the submitting thread to run its task work).
  p.flags = kSetupCqSize | kSetupClamp;
  p.cq_entries = kCqEntries;
  fd_ = static_cast<int>(sys(syscall(__NR_io_uring_setup, kSqEntries, &p)));
  if (fd_ < 0) return false;
  if ((p.features & (kFeatSingleMmap | kFeatNoDrop)) != (kFeatSingleMmap | kFeatNoDrop))
    return false;
  rings_.size = std::max<size_t>(p.sq_off.array + p.sq_entries * sizeof(uint32_t),
                                 p.cq_off.cqes + p.cq_entries * sizeof(Cqe));
  void* base = mmap(nullptr, rings_.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                    fd_, 0);
  if (base == MAP_FAILED) return false;
  rings_.base = base;
  entries_.size = p.sq_entries * sizeof(Sqe);
  base = mmap(nullptr, entries_.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_,
              static_cast<off_t>(kOffSqes));
  if (base == MAP_FAILED) return false;
  entries_.base = base;
  auto* at = static_cast<char*>(rings_.base);
  sq_tail_ = reinterpret_cast<std::atomic<uint32_t>*>(at + p.sq_off.tail);
  sq_flags_ = reinterpret_cast<const std::atomic<uint32_t>*>(at + p.sq_off.flags);
  sq_mask_ = *reinterpret_cast<const uint32_t*>(at + p.sq_off.ring_mask);
  sq_array_ = reinterpret_cast<uint32_t*>(at + p.sq_off.array);
  cq_head_ = reinterpret_cast<std::atomic<uint32_t>*>(at + p.cq_off.head);
  cq_tail_ = reinterpret_cast<const std::atomic<uint32_t>*>(at + p.cq_off.tail);
  cq_mask_ = *reinterpret_cast<const uint32_t*>(at + p.cq_off.ring_mask);
  cqes_ = at + p.cq_off.cqes;
  return true;
}

bool FutexRing::probe() {
  // A futex wait for a value the word does not hold must complete at once with EAGAIN; a
  // kernel without futex waits completes it with EINVAL instead. Then a cancel of nothing
  // must say ENOENT (IORING_REGISTER_SYNC_CANCEL, Linux 6.0).
  std::atomic<uint32_t> word{0};
  if (!submit_wait(&word, 1, kProbe)) return false;
  if (sys(syscall(__NR_io_uring_enter, fd_, 0, 1, kEnterGetEvents, nullptr, 0)) < 0)
    return false;
  bool eagain = false;
  // relaxed: only this side writes the head. acquire: the entries are the kernel's writes.
  uint32_t head = cq_head_->load(std::memory_order_relaxed);
  const uint32_t tail = cq_tail_->load(std::memory_order_acquire);
  for (; head != tail; ++head) {
    const Cqe& c = static_cast<const Cqe*>(cqes_)[head & cq_mask_];
    if (c.user_data == kProbe) eagain = c.res == -EAGAIN;
  }
  // release: the kernel may reuse the entries once they have been read.
  cq_head_->store(head, std::memory_order_release);
  if (!eagain) return false;
  SyncCancel cancel;
  std::memset(&cancel, 0, sizeof cancel);
  cancel.addr = kProbe;
  cancel.fd = -1;
  cancel.timeout_sec = cancel.timeout_nsec = -1;
  return sys(syscall(__NR_io_uring_register, fd_, kRegisterSyncCancel, &cancel, 1)) == -ENOENT;
}

FutexRing::~FutexRing() { unmap_and_close(); }

void FutexRing::unmap_and_close() {
  // Nothing but the process's own mappings and descriptor: in a fork child these are
  // copies, and the parent's ring (and its requests) must stay untouched.
  if (entries_.base != nullptr) munmap(entries_.base, entries_.size);
  if (rings_.base != nullptr) munmap(rings_.base, rings_.size);
  entries_ = rings_ = Mapping{};
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void FutexRing::abandon() {
  std::lock_guard<std::mutex> guard(mutex_);
  unmap_and_close();
  waiting_.clear();
  fired_.clear();
}

bool FutexRing::submit_wait(std::atomic<uint32_t>* word, uint32_t expected,
                            uint64_t user_data) {
  // relaxed: only this side writes the SQ tail.
  const uint32_t tail = sq_tail_->load(std::memory_order_relaxed);
  const uint32_t index = tail & sq_mask_;
  Sqe* sqe = static_cast<Sqe*>(entries_.base) + index;
  std::memset(sqe, 0, sizeof *sqe);
  sqe->opcode = kOpFutexWait;
  sqe->fd = static_cast<int32_t>(kFutex2SizeU32);
  sqe->addr = reinterpret_cast<uintptr_t>(word);
  sqe->off = expected;
  sqe->addr3 = kMatchAnyBit;
  sqe->user_data = user_data;
  sq_array_[index] = index;
  // release: the kernel reads the entry after its acquire load of the tail.
  sq_tail_->store(tail + 1, std::memory_order_release);
  for (int attempt = 0; attempt < 4; ++attempt) {
    const long rc = sys(syscall(__NR_io_uring_enter, fd_, 1, 0, 0, nullptr, 0));
    if (rc == 1) return true;
    if (rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) break;
    if (rc != -EINTR && user_data != kProbe) reap();  // completions backed up: take them
  }
  // Not consumed (the kernel reads the tail only inside io_uring_enter): withdraw it.
  // relaxed: as above.
  sq_tail_->store(tail, std::memory_order_relaxed);
  return false;
}

bool FutexRing::watch(std::atomic<uint32_t>* word, uint32_t expected, uint64_t token) {
  std::lock_guard<std::mutex> guard(mutex_);
  if (fd_ < 0 || token == kProbe || waiting_.count(token) != 0) return false;
  if (!submit_wait(word, expected, token)) return false;
  waiting_.emplace(token, word);
  return true;
}

void FutexRing::reap() {
  const Cqe* cqes = static_cast<const Cqe*>(cqes_);
  while (true) {
    // relaxed: only this side writes the head. acquire: pairs with the kernel's release of
    // the tail after it wrote the entries.
    uint32_t head = cq_head_->load(std::memory_order_relaxed);
    const uint32_t tail = cq_tail_->load(std::memory_order_acquire);
    for (; head != tail; ++head) {
      const Cqe& c = cqes[head & cq_mask_];
      auto it = waiting_.find(c.user_data);
      if (it == waiting_.end()) continue;  // the probe's, or a watch abandoned after a fork
      waiting_.erase(it);
      // Cancelled by unwatch(): nothing consumed. Anything else fires: woken (0), the word
      // already differed (EAGAIN), cancelled by the kernel (the submitting thread ended), or
      // an error that the task's retry will meet.
      if (c.res != -ECANCELED || c.user_data != cancelling_) fired_.push_back(c.user_data);
    }
    // release: the kernel may reuse the entries once they have been read.
    cq_head_->store(head, std::memory_order_release);
    // relaxed: a hint to flush; the flush and the next loads above do the ordering.
    if ((sq_flags_->load(std::memory_order_relaxed) & kSqCqOverflow) == 0) return;
    if (sys(syscall(__NR_io_uring_enter, fd_, 0, 0, kEnterGetEvents, nullptr, 0)) < 0)
      return;
  }
}

bool FutexRing::unwatch(uint64_t token) {
  std::lock_guard<std::mutex> guard(mutex_);
  if (fd_ < 0) return false;
  reap();
  auto it = waiting_.find(token);
  if (it == waiting_.end()) return false;  // fired already, or never watched
  std::atomic<uint32_t>* word = it->second;
  SyncCancel cancel;
  std::memset(&cancel, 0, sizeof cancel);
  cancel.addr = token;
  cancel.fd = -1;
  cancel.timeout_sec = cancel.timeout_nsec = -1;
  // Returns once the request has completed, cancelled (ECANCELED) or woken just before;
  // the completion is posted by the time this thread is back from the call.
  cancelling_ = token;
  (void)syscall(__NR_io_uring_register, fd_, kRegisterSyncCancel, &cancel, 1);
  reap();
  cancelling_ = kProbe;
  if (waiting_.count(token) != 0) {
    // No completion yet (not expected): forget the request, and give its word the wake it
    // may yet consume, so that no other waiter sleeps through it.
    waiting_.erase(token);
    futex_wake(word, 1);
    return true;
  }
  auto fired = std::find(fired_.begin(), fired_.end(), token);
  return fired == fired_.end();  // cancelled: true; it had fired (is in fired_): false
}

void FutexRing::take_fired(std::vector<uint64_t>& out) {
  std::lock_guard<std::mutex> guard(mutex_);
  if (fd_ < 0) return;
  reap();
  out.insert(out.end(), fired_.begin(), fired_.end());
  fired_.clear();
}

size_t FutexRing::watching() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return waiting_.size();
}

}  // namespace interlock::core
