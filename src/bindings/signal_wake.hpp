// signal_wake.hpp: a signal that arrives while the main thread waits always ends its sleep.
//
// Python runs signal handlers in the main thread, between bytecodes; its C-level handler only
// records the signal. A wait that released the GIL sleeps in the kernel, and a signal
// delivered during that sleep interrupts it (EINTR). But a signal that lands just before the
// sleep starts (after the wait last ran pending handlers, for instance during the spin)
// interrupts no system call, and an untimed sleep would then go on forever.
//
// To close that window without waking up periodically, the handlers installed for the
// watched signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGALRM, SIGUSR1, SIGUSR2; whatever they
// are, Python's included) are wrapped: the wrapper calls the original handler, then bumps
// epoch() and wakes it. A main-thread wait reads the epoch, runs pending handlers, then
// sleeps on its own futex word and on the epoch (futex.hpp, "Interrupt word"). A signal at
// any moment after that read changes the epoch, so the sleep ends at once or never starts.
// Handlers that Python (or anyone) installs later replace the wrapper; every sleep of the main
// thread wraps them again first (seven sigaction queries, about 1 us).
//
// Without futex_waitv (Linux < 5.16) the main thread instead sleeps in slices and looks for
// pending signals between them (kSignalSliceSeconds in native.hpp).
#pragma once

#include <atomic>
#include <cstdint>

namespace interlock::bindings::signal_wake {

// The word the wrappers bump (a futex word private to this process).
std::atomic<uint32_t>& epoch();

// With the GIL held, in the main thread, before each sleep (after pending handlers ran, since
// they may install others): makes sure the watched signals' handlers are wrapped. Returns
// false when the interrupt word is not supported.
bool prepare();

}  // namespace interlock::bindings::signal_wake
