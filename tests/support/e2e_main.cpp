// main() of every e2e binary: not root -> exit 77 (CTest "Skipped", with the reason on
// stderr; never a silent pass); otherwise GTest with the suite environment installed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "environment.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (::geteuid() != 0) {
    std::fprintf(stderr, "SKIPPED: egressd e2e tests need root (cgroups, netns, BPF)\n");
    return egressd::test::kSkipExitCode;
  }
  ::testing::AddGlobalTestEnvironment(new egressd::test::SuiteEnvironment());
  return RUN_ALL_TESTS();
}
