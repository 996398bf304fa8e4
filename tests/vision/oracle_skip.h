// tests/vision/oracle_skip.h: skipping a test whose Python oracle is missing, except in CI
// (ATTNKIT_REQUIRE_ORACLES=1), where the missing oracle is a failure.
#pragma once

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace attnkit::testing {

/// True when ATTNKIT_REQUIRE_ORACLES=1 (CI sets it): a missing reference implementation is then
/// a failure, not a skip, so a broken Python setup cannot turn oracle tests green.
inline bool oracles_required() {
  const char* value = std::getenv("ATTNKIT_REQUIRE_ORACLES");
  return value != nullptr && std::string(value) == "1";
}

/// Skips the test for `reason` (a missing oracle), or fails it when oracles are required.
#define ATTNKIT_SKIP_WITHOUT_ORACLE(reason)                    \
  do {                                                         \
    if (::attnkit::testing::oracles_required()) {              \
      FAIL() << "ATTNKIT_REQUIRE_ORACLES=1, but " << (reason); \
    }                                                          \
    GTEST_SKIP() << (reason);                                  \
  } while (0)

}  // namespace attnkit::testing
