// Runs the core tests: all of them, or those named on the command line.
#include <cstring>

#include "check.hpp"

namespace interlock::test {
std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}
int failures = 0;
}  // namespace interlock::test

int main(int argc, char** argv) {
  using namespace interlock::test;
  int ran = 0;
  for (const Case& c : registry()) {
    bool wanted = argc == 1;
    for (int i = 1; i < argc; ++i) wanted = wanted || std::strcmp(argv[i], c.name) == 0;
    if (!wanted) continue;
    int before = failures;
    c.body();
    std::fprintf(stderr, "%s %s\n", failures == before ? "ok  " : "FAIL", c.name);
    ++ran;
  }
  if (ran == 0) {
    std::fprintf(stderr, "no test matched\n");
    return 2;
  }
  return failures == 0 ? 0 : 1;
}
