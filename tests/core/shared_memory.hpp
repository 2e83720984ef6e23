// shared_memory.hpp: an anonymous shared mapping that forked children inherit, for the
// core tests' multi-process cases.
#pragma once

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <new>

#include "check.hpp"

namespace interlock::test {

template <class T>
T* shared_new() {
  void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  return new (p) T();
}

// Runs body() in a forked child; returns the child's pid. The child exits 0 after body()
// returns, or 1 if body() failed a CHECK.
template <class Body>
pid_t fork_child(Body&& body) {
  pid_t pid = fork();
  if (pid == 0) {
    int before = failures;
    body();
    _exit(failures == before ? 0 : 1);
  }
  return pid;
}

// Waits for pid; true if it exited with status 0.
inline bool child_succeeded(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace interlock::test
