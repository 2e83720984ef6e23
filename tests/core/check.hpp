// check.hpp: the core tests' minimal harness (no framework to fetch: the build is offline).
//
// TEST(name) { ... } defines a test; CHECK(cond) records a failure with its location and
// carries on. main() in main.cpp runs every test, or the ones named on the command line.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace interlock::test {

struct Case {
  const char* name;
  std::function<void()> body;
};

std::vector<Case>& registry();
extern int failures;

struct Registrar {
  Registrar(const char* name, std::function<void()> body) {
    registry().push_back({name, std::move(body)});
  }
};

}  // namespace interlock::test

#define TEST(name)                                                              \
  static void test_##name();                                                    \
  static ::interlock::test::Registrar registrar_##name(#name, &test_##name);    \
  static void test_##name()

#define CHECK(cond)                                                             \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++::interlock::test::failures;                                            \
    }                                                                           \
  } while (0)
