// Suite-level setup shared by every e2e binary: root check, bpffs, and removal of stale
// egressd-test-* leftovers (cgroups, netns, veths, pin dirs, temp dirs) of crashed runs.
// A leftover counts as stale only when the pid embedded in its name is gone, so suites
// running concurrently (ctest -j) never clean up each other's objects.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace egressd::test {

// Removes stale leftovers; returns a description of each removed object.
std::vector<std::string> cleanupStaleLeftovers();

class SuiteEnvironment : public ::testing::Environment {
 public:
  void SetUp() override;
};

// Exit code of an e2e binary that cannot run here (not root); CTest maps it to "Skipped".
inline constexpr int kSkipExitCode = 77;

}  // namespace egressd::test
