// syscalls.hpp: system calls that older C libraries do not wrap.
//
// glibc gained memfd_create in 2.27 and getrandom in 2.25. Calling them through syscall(2)
// keeps the compiled module loadable with any glibc from 2.17 on (so the wheel can carry the
// manylinux2014 tag), and each has a fallback for kernels that lack the call.
#pragma once

#include <cstddef>

namespace interlock::core {

// memfd_create(name, flags); -1 with errno ENOSYS where the kernel has none.
int memfd(const char* name, unsigned int flags);

// Fills `out` with `size` random bytes: getrandom(2), or /dev/urandom on kernels before 3.17.
// False (errno set) when neither works.
bool random_bytes(void* out, size_t size);

}  // namespace interlock::core
